"""Feature transforms: one protocol-level input scaling, applied identically for every method.

:func:`apply_feature_transform` maps both modalities of a dataset before a method sees them.
Statistics (where a transform has any) come from the **training rows only**, then the
same map is applied to every row (query, database and val rows included), so nothing of
the evaluation rows leaks into the features. Each modality is handled on its own.

Names (:data:`FEATURE_TRANSFORMS`):

* ``none`` — the features as given: what every record of schema 1 used, and what the
  official codes do (NRCH's equality check against its official code runs with it).
* ``zscore`` — per dimension j, ``(x_j − μ_j) / σ_j`` with the mean μ_j and the population
  standard deviation σ_j (ddof 0, as scikit-learn's ``StandardScaler``) over the training
  rows. A dimension that is constant on the training rows (min = max, e.g. a word never
  used in training) carries no information the model could have learnt from: it is set to
  0 in every row, so it stays finite and contributes nothing.
* ``scale`` — one positive scalar per modality, ``s = √d / mean_i ‖x_i‖₂`` over the
  training rows, so that the training rows' mean L2 norm becomes √d. Why √d: the default
  initialisations of linear layers (PyTorch's U(−1/√d, 1/√d), Xavier, Kaiming) give a
  first-layer pre-activation of variance ∝ ‖x‖²/d, so ‖x‖ ≈ √d makes it O(1), whatever
  the native scale of the features and however sparse they are — a vector with entries of
  unit second moment has exactly that norm, which is also the norm ``zscore`` leads to on
  average. Unlike ``zscore`` it changes nothing else: sign, sparsity, zero entries, the
  relative scale of the dimensions and the angles between rows are kept; only the
  arbitrary global scale (issue 20: wiki features ×10⁻³ or ×10³) is removed. A modality
  whose training rows are all zero is left as given (factor 1, flagged in ``info``).
* ``l2`` — each row divided by its L2 norm (rows that are all zero stay zero); no
  statistics, so no split is involved.

Outputs are new C-contiguous float32 arrays (``none`` returns its inputs unchanged); the
inputs are never modified. Work is done in row blocks with float64 statistics, so no
float64 copy of a large matrix is made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nrchbench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

__all__ = ["FEATURE_TRANSFORMS", "apply_feature_transform"]

#: name → one line, for ``--feature-transform`` choices and docs.
FEATURE_TRANSFORMS: dict[str, str] = {
    "none": "features as given (schema-1 meaning; the official codes' input)",
    "zscore": "per dimension: subtract the training mean, divide by the training std (constant dims → 0)",
    "scale": "one factor per modality: training rows' mean L2 norm becomes √d",
    "l2": "each row divided by its L2 norm",
}

_BLOCK_ELEMENTS = 1 << 22  # float64 elements per block (32 MiB)


def _rows(x: np.ndarray, idx: np.ndarray | None) -> Iterator[np.ndarray]:
    """Blocks of rows (all rows, or the rows ``idx`` in order) as float64."""
    n = x.shape[0] if idx is None else idx.size
    step = max(1, _BLOCK_ELEMENTS // max(1, x.shape[1]))
    for r0 in range(0, n, step):
        rows = slice(r0, r0 + step) if idx is None else idx[r0 : r0 + step]
        yield np.asarray(x[rows], dtype=np.float64)


def _map_rows(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = np.empty(x.shape, dtype=np.float32)
    r0 = 0
    for block in _rows(x, None):
        out[r0 : r0 + block.shape[0]] = fn(block)
        r0 += block.shape[0]
    return out


def _summary(v: np.ndarray) -> dict[str, float] | None:
    if v.size == 0:
        return None
    return {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())}


def _zscore(x: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    d = x.shape[1]
    total = np.zeros(d)
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    for block in _rows(x, train):
        total += block.sum(axis=0)
        np.minimum(lo, block.min(axis=0, initial=np.inf), out=lo)
        np.maximum(hi, block.max(axis=0, initial=-np.inf), out=hi)
    mean = total / train.size
    sq = np.zeros(d)
    for block in _rows(x, train):
        sq += ((block - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / train.size)
    constant = lo == hi
    inv = np.zeros(d)
    inv[~constant] = 1.0 / std[~constant]
    out = _map_rows(x, lambda b: (b - mean) * inv)
    info = {
        "dim": d,
        "constant_dims": int(constant.sum()),
        "mean": _summary(mean),
        "std": _summary(std[~constant]),
    }
    return out, info


def _row_norms(block: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", block, block))


def _scale(x: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    d = x.shape[1]
    mean_norm = sum(float(_row_norms(b).sum()) for b in _rows(x, train)) / train.size
    target = float(np.sqrt(d))
    degenerate = not mean_norm > 0
    factor = 1.0 if degenerate else target / mean_norm
    if degenerate:
        log.warning("feature transform 'scale': every training row is zero; the modality is left as given")
    info = {"dim": d, "mean_norm": mean_norm, "target_norm": target, "factor": factor, "all_zero": degenerate}
    return _map_rows(x, lambda b: b * factor), info


def _l2(x: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    zero = 0

    def rows(block: np.ndarray) -> np.ndarray:
        nonlocal zero
        norms = _row_norms(block)
        zero += int((norms == 0).sum())
        norms[norms == 0] = 1.0
        return block / norms[:, None]

    out = _map_rows(x, rows)
    return out, {"dim": x.shape[1], "zero_rows": zero}


def _check(name: str, image: Any, text: Any, train_idx: Any) -> np.ndarray:
    if name not in FEATURE_TRANSFORMS:
        raise ConfigError(f"unknown feature transform {name!r}; available: {', '.join(FEATURE_TRANSFORMS)}")
    for what, x in (("image", image), ("text", text)):
        if np.ndim(x) != 2:
            raise DataError(f"feature transform {name!r}: {what} features must be a 2-D matrix, got {np.shape(x)}")
    n = int(np.shape(image)[0])
    if int(np.shape(text)[0]) != n:
        raise DataError(f"feature transform {name!r}: image has {n} rows but text has {np.shape(text)[0]}")
    train = np.asarray(train_idx).ravel()
    if train.dtype.kind not in "iu":
        raise DataError(f"feature transform {name!r}: train_idx must be integer row indices, got {train.dtype}")
    if train.size == 0:
        raise DataError(f"feature transform {name!r}: the training split is empty; nothing to fit statistics on")
    if train.min() < 0 or train.max() >= n:
        raise DataError(f"feature transform {name!r}: train_idx has indices outside [0, {n})")
    return train.astype(np.int64)


def apply_feature_transform(
    name: str, image: np.ndarray, text: np.ndarray, train_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Transform both modalities with statistics of the training rows (module docstring).

    Args:
        name: ``none``, ``zscore``, ``scale`` or ``l2``.
        image: N×d1 image features (every row of the dataset).
        text: N×d2 text features.
        train_idx: indices of the training rows (the only rows statistics come from).

    Returns:
        ``(image, text, info)``: N×d1 and N×d2 float32 arrays (``none``: the inputs
        themselves), and a JSON dict for the record: ``name``, ``fit_rows`` (training rows
        the statistics came from; 0 where there are none), and per modality (``image``,
        ``text``) a summary — ``dim`` plus, for ``zscore``, ``constant_dims`` and
        min/max/mean of the per-dimension ``mean`` and ``std``; for ``scale``,
        ``mean_norm`` (before), ``target_norm`` (√d), ``factor`` and ``all_zero``; for
        ``l2``, ``zero_rows``.

    Raises:
        ConfigError: unknown name.
        DataError: shapes that do not pair, or an empty or out-of-range ``train_idx``.
    """
    train = _check(name, image, text, train_idx)
    if name == "none":
        return image, text, {"name": "none", "fit_rows": 0}
    if name == "l2":
        (img, img_info), (txt, txt_info) = _l2(image), _l2(text)
        return img, txt, {"name": "l2", "fit_rows": 0, "image": img_info, "text": txt_info}
    fit = _zscore if name == "zscore" else _scale
    (img, img_info), (txt, txt_info) = fit(image, train), fit(text, train)
    return img, txt, {"name": name, "fit_rows": int(train.size), "image": img_info, "text": txt_info}
