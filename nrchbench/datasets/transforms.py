"""Feature transforms of the protocol (applied identically to every method; statistics from
the training split only)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: name → one-line description.
TRANSFORMS: dict[str, str] = {"none": "features as given (what the official codes use)"}


def apply_feature_transform(
    name: str, image: np.ndarray, text: np.ndarray, train_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Transform both modalities; returns (image, text, info for the record)."""
    if name != "none":
        raise ValueError(f"unknown feature transform {name!r}")
    return image, text, {"name": "none"}
