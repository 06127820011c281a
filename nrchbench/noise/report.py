"""The realised-noise report of a noise model (PROTOCOL.md §2): flipped entries, corrupted
samples and the fraction of pairwise similarities that changed (exact, or estimated from a
seeded pair sample on large sets)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nrchbench.noise.draws import CHUNK_ROWS, DRAW_VERSION, STREAM_PAIRS, stream

__all__ = [
    "EXACT_PAIRS_MAX_N",
    "PAIR_SAMPLES",
    "crossmodal_pairs_changed",
    "noise_report",
    "pairs_changed",
    "row_flips",
]

#: Above this many samples ``frac_pairs_changed`` is estimated from sampled pairs.
EXACT_PAIRS_MAX_N = 50_000
#: Number of sampled pairs for the estimate.
PAIR_SAMPLES = 1_000_000
#: Target size (entries) of one block of the exact pairwise computation.
_PAIR_BLOCK = 1 << 22


def row_flips(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """Number of entries that differ per row (int64 N), computed in row blocks."""
    out = np.empty(clean.shape[0], dtype=np.int64)
    for start in range(0, clean.shape[0], CHUNK_ROWS):
        blk = slice(start, start + CHUNK_ROWS)
        out[blk] = np.count_nonzero(noisy[blk] != clean[blk], axis=1)
    return out


def pairs_changed(clean: np.ndarray, noisy: np.ndarray, changed: np.ndarray, seed: int) -> dict[str, Any]:
    """Fraction of pairs i<j whose similarity 1[share ≥ 1 label] differs between clean and noisy.

    Exact for ``N ≤ EXACT_PAIRS_MAX_N``: only pairs touching a changed row can change, so
    the changed rows are put first and each is compared (float32 label products, exact
    for counts < 2²⁴) with every row after it. Above that size, ``PAIR_SAMPLES`` unordered
    pairs are drawn uniformly (with replacement, :data:`STREAM_PAIRS`) and the result is
    an estimate (``pairs_estimated: true`` with its standard error).
    """
    n = clean.shape[0]
    total_pairs = n * (n - 1) // 2
    if total_pairs == 0:
        return {"frac_pairs_changed": 0.0, "pairs_estimated": False}
    idx = np.flatnonzero(changed)
    m = idx.size
    if m == 0:
        return {"frac_pairs_changed": 0.0, "pairs_estimated": False}
    if n <= EXACT_PAIRS_MAX_N:
        order = np.concatenate([idx, np.flatnonzero(~changed)])
        yc = clean[order].astype(np.float32)
        yn = noisy[order].astype(np.float32)
        count = 0
        block = max(1, _PAIR_BLOCK // n)
        for a in range(0, m, block):
            b = min(m, a + block)
            # Rows a..b-1 against every row after a: (row t, column j) is the pair
            # (a+t, a+1+j), valid when j ≥ t.
            sc = (yc[a:b] @ yc[a + 1 :].T) > 0.5
            sn = (yn[a:b] @ yn[a + 1 :].T) > 0.5
            d = sc != sn
            w = min(b - a, d.shape[1])
            count += int(np.count_nonzero(d)) - int(np.count_nonzero(np.tril(d[:, :w], k=-1)))
        return {"frac_pairs_changed": count / total_pairs, "pairs_estimated": False}
    i, j = _pair_sample(n, seed)
    touched = changed[i] | changed[j]
    it, jt = i[touched], j[touched]
    return _estimated(int(np.count_nonzero((clean[it] & clean[jt]).any(1) != (noisy[it] & noisy[jt]).any(1))))


def _pair_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``PAIR_SAMPLES`` pairs (i, j), i ≠ j, uniform with replacement (:data:`STREAM_PAIRS`)."""
    u = stream(seed, STREAM_PAIRS).random((PAIR_SAMPLES, 2))
    i = np.minimum((u[:, 0] * n).astype(np.int64), n - 1)
    j = np.minimum((u[:, 1] * (n - 1)).astype(np.int64), n - 2)
    j += j >= i  # uniform over j ≠ i
    return i, j


def _estimated(n_changed: int) -> dict[str, Any]:
    p = n_changed / PAIR_SAMPLES
    return {
        "frac_pairs_changed": p,
        "pairs_estimated": True,
        "pairs_sampled": PAIR_SAMPLES,
        "frac_pairs_changed_se": math.sqrt(max(p * (1 - p), 0.0) / PAIR_SAMPLES),
    }


def crossmodal_pairs_changed(y: np.ndarray, text_index: np.ndarray, seed: int) -> dict[str, Any]:
    """Fraction of ordered training pairs (image i, text row k), i ≠ k, whose similarity is wrong.

    After a pairing corruption the labels still say that image ``i`` and the text at row
    ``k`` are similar iff ``y_i·y_k > 0``; in truth that text is the text of row
    ``t = text_index[k]``, so they are similar iff ``y_i·y_t > 0``. For label noise the same
    count over ordered pairs equals :func:`pairs_changed` over unordered pairs (both
    directions of a pair change together), so the two statistics are one quantity: the
    fraction of pairwise similarities a method is told wrongly.

    Exact for ``N ≤ EXACT_PAIRS_MAX_N`` (only columns ``k`` with ``t ≠ k`` can differ);
    above that, ``PAIR_SAMPLES`` ordered pairs are drawn (:data:`STREAM_PAIRS`) and the
    result is an estimate with its standard error.
    """
    n = y.shape[0]
    total = n * (n - 1)
    moved = np.flatnonzero(text_index != np.arange(n))
    if total == 0 or moved.size == 0:
        return {"frac_pairs_changed": 0.0, "pairs_estimated": False}
    if n <= EXACT_PAIRS_MAX_N:
        yf = y.astype(np.float32)
        count = 0
        block = max(1, _PAIR_BLOCK // n)
        for a in range(0, moved.size, block):
            cols = moved[a : a + block]
            told = (yf @ yf[cols].T) > 0.5
            true = (yf @ yf[text_index[cols]].T) > 0.5
            d = told != true
            d[cols, np.arange(cols.size)] = False  # i = k is the pair itself, not counted here
            count += int(np.count_nonzero(d))
        return {"frac_pairs_changed": count / total, "pairs_estimated": False}
    i, k = _pair_sample(n, seed)  # ordered: (image i, text row k)
    t = text_index[k]
    touched = t != k
    it, kt, tt = i[touched], k[touched], t[touched]
    return _estimated(int(np.count_nonzero((y[it] & y[kt]).any(1) != (y[it] & y[tt]).any(1))))


def noise_report(
    clean: np.ndarray,
    noisy: np.ndarray,
    corrupted: np.ndarray,
    *,
    model: str,
    rate: float,
    seed: int,
    params: dict[str, Any],
    unit: str,
    extra: dict[str, Any] | None = None,
    flips: np.ndarray | None = None,
    pairs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The realised-noise report (PROTOCOL §2): every value a JSON number, bool, string or list.

    ``flips`` (optional) is :func:`row_flips` of (clean, noisy) if the caller has it;
    ``pairs`` (optional) replaces the label-pair statistic of :func:`pairs_changed` (a
    pairing corruption gives :func:`crossmodal_pairs_changed`).
    """
    n, c = clean.shape
    per_row = row_flips(clean, noisy) if flips is None else flips
    flipped = int(per_row.sum())
    changed = per_row > 0
    rep: dict[str, Any] = {
        "model": model,
        "draw_version": DRAW_VERSION,
        "rate": float(rate),
        "seed": int(seed),
        "params": params,
        "unit": unit,
        "n_samples": int(n),
        "n_classes": int(c),
        "n_corrupted": int(np.count_nonzero(corrupted)),
        "frac_samples_corrupted": float(np.count_nonzero(corrupted) / n) if n else 0.0,
        "frac_entries_flipped": float(flipped / (n * c)) if n else 0.0,
    }
    rep.update(pairs_changed(clean, noisy, changed, seed) if pairs is None else pairs)
    rep["cardinality_clean_mean"] = float(clean.sum(dtype=np.int64) / n) if n else 0.0
    rep["cardinality_noisy_mean"] = float(noisy.sum(dtype=np.int64) / n) if n else 0.0
    rep.update(extra or {})
    return rep
