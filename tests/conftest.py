"""Shared fixtures: where the real data lives, tiny synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    env = os.environ.get("NRCHBENCH_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO / ".." / "shared" / "data"]
    for c in candidates:
        if (c / "wiki" / "raw_features.mat").is_file():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data directory (``$NRCHBENCH_DATA`` or ``../shared/data``); skips if absent."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set NRCHBENCH_DATA or place it at ../shared/data")
    return d
