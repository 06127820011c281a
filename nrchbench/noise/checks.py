"""Validation of a noise model's inputs (labels, rate, seed, features) and the exact count
⌊rate·N⌋ (PROTOCOL.md §2); every failure is one line naming what to fix."""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Integral, Real
from typing import Any

import numpy as np

from nrchbench.errors import ConfigError, DataError

__all__ = ["MODALITIES", "check_features", "check_labels", "check_rate", "check_seed", "n_to_corrupt"]


def check_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a C-contiguous uint8 N×C array or raise a one-line error."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D N×C array of 0/1, got shape {arr.shape}; reshape it to (samples, classes)"
        )
    if arr.shape[1] == 0:
        raise DataError(f"{name} has no classes (shape {arr.shape}); expected N×C with C ≥ 1")
    if arr.dtype == np.uint8 or arr.dtype == np.bool_:
        bad = arr.dtype == np.uint8 and arr.size and int(arr.max()) > 1
    elif np.issubdtype(arr.dtype, np.number):
        bad = arr.size and not bool(((arr == 0) | (arr == 1)).all())
    else:
        raise DataError(f"{name} must be numeric 0/1, got dtype {arr.dtype}")
    if bad:
        r, c = np.argwhere((arr != 0) & (arr != 1))[0]
        raise DataError(
            f"{name} must be binary (0/1): found {arr[r, c]!r} at row {r}, column {c}; binarise the label matrix"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def check_rate(rate: Any) -> float:
    """Return ``rate`` as a float in [0, 1] or raise a one-line :class:`ConfigError`."""
    if isinstance(rate, bool) or not isinstance(rate, Real) or not math.isfinite(float(rate)):
        raise ConfigError(f"noise rate must be a number in [0, 1], got {rate!r}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ConfigError(f"noise rate must be in [0, 1], got {rate!r}")
    return float(rate)


def check_seed(seed: Any) -> int:
    """Return ``seed`` as a non-negative int or raise a one-line :class:`ConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ConfigError(f"noise seed must be a non-negative integer, got {seed!r}")
    return int(seed)


MODALITIES = ("image", "text")


def check_features(features: Any, n: int, needed: tuple[str, ...], owner: str) -> dict[str, np.ndarray]:
    """The needed modalities of ``features = (image, text)`` as checked N-row arrays (dtype kept).

    Args:
        features: a pair ``(image, text)`` of N×d arrays (numpy, torch or anything
            ``np.asarray`` reads); a modality that is not needed may be ``None``.
        n: the number of label rows the features must match.
        needed: the modalities used (``"image"``, ``"text"``).
        owner: who asks, for messages (e.g. ``"noise model 'instance'"``).

    Raises:
        ConfigError: no features or not a pair. DataError: a needed modality is missing, not
            2-D with N rows, not numeric, or not finite.
    """
    if features is None:
        raise ConfigError(
            f"{owner} needs the training features: pass features=(image, text) with one row per label row"
        )
    if not isinstance(features, (tuple, list)) or len(features) != 2:
        raise ConfigError(
            f"{owner}: features must be a pair (image, text) of N-row arrays, got {type(features).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    for name, value in zip(MODALITIES, features):
        if name not in needed:
            continue
        if value is None:
            raise DataError(f"{owner} uses the {name} features but features[{MODALITIES.index(name)}] is None")
        if hasattr(value, "detach") and callable(value.detach):  # torch.Tensor
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
            raise DataError(
                f"{owner}: {name} features must be a 2-D array with {n} rows (one per label row) and at least one "
                f"column, got shape {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise DataError(f"{owner}: {name} features must be numeric, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise DataError(f"{owner}: {name} features must be real numbers, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            r, c = np.argwhere(~np.isfinite(arr))[0]
            raise DataError(f"{owner}: {name} features hold a non-finite value ({arr[r, c]}) at row {r}, column {c}")
        out[name] = arr
    return out


def n_to_corrupt(rate: float, n: int) -> int:
    """⌊rate·n⌋ with ``rate`` read as the decimal it prints as (0.29·100 → 29, not 28)."""
    return math.floor(Fraction(repr(float(rate))) * n)
