"""Data for the benchmark scripts: a dataset's parts through the package's own loaders."""

from __future__ import annotations

import numpy as np


def load_parts(name: str, data_root: str | None) -> dict[str, tuple[np.ndarray, ...]] | None:
    """{split: (image, text, clean labels)} for train, query and database, or None (with the
    reason printed) when the dataset's files are not under ``data_root``."""
    from nrchbench.datasets import load_dataset
    from nrchbench.errors import NrchbenchError

    try:
        ds = load_dataset(name, data_root=data_root)
    except NrchbenchError as exc:
        print(f"[skip] {name}: {exc}")
        return None
    return {s: ds.part(s) for s in ("train", "query", "database")}
