"""From per-query sums to the metric dict: the zero-relevant policy, closed forms, curves.

Every backend fills the same per-query sums (:class:`PerQuery`): items and relevant items per
Hamming distance (n_d, r_d), AP·R under the index tie order, and, at every top-k cut-off, the
relevant items ranked up to it and their AP sum. Everything in the result is a function of
those sums, so every backend gives the same numbers and a new metric costs no extra pass:
``map_tie``, the Hamming-radius metrics and the PR curve are closed forms over n_d and r_d,
the rank metrics read the cut-off sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ZERO_RELEVANT", "PerQuery", "Request", "default_curve_k", "summarize", "tie_aware_ap"]

# Policies for queries without any relevant database item (PROTOCOL §4).
ZERO_RELEVANT = {
    "exclude": "dropped from every mean (the NRCH / SCBCH convention)",
    "zero": "count 0 in every per-query metric; means divide by all queries (the DCMH / DJSRH code)",
}


@dataclass(frozen=True)
class Request:
    """What :func:`summarize` reports (checked by :func:`nrchbench.metrics.evaluate`).

    Attributes:
        topk: the k of ``map@<k>``, ``precision@<k>`` and ``recall@<k>`` (any k ≥ 1).
        radius: the r of ``hamming_precision@<r>`` and ``hamming_recall@<r>`` (any r ≥ 0).
        curve_k: the K points of ``topk_curve`` (empty: no curve).
        pr_curve: include the Hamming-radius precision–recall curve.
        zero_relevant: a key of :data:`ZERO_RELEVANT`.
    """

    topk: tuple[int, ...]
    radius: tuple[int, ...]
    curve_k: tuple[int, ...]
    pr_curve: bool
    zero_relevant: str

    def cutoffs(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The distinct rank cut-offs min(k, M), ascending, and the columns of those that need
        an AP sum (``map@<k>``)."""
        cuts = np.unique(np.minimum(np.array(self.topk + self.curve_k, dtype=np.int64), m))
        top = np.unique(np.searchsorted(cuts, np.minimum(np.array(self.topk, dtype=np.int64), m)))
        return cuts, top


def default_curve_k(m: int) -> tuple[int, ...]:
    """Default K points of the top-K curves for a database of ``m`` items: 1, 50, 100, 200, …,
    1,000 (the range of published top-K precision plots), then 2,000, …, 10,000 (the
    ``1000:1000:10000`` grid of MATLAB hashing evaluation scripts; DCMH's
    ``calcMapTopkMapTopkPreTopkRecLabel.m`` takes any such K vector), then 20,000, 50,000,
    100,000, … (1-2-5 steps), each below M, and M itself (where recall is 1)."""
    points = [1, 50, *range(100, 1001, 100), *range(2000, 10_001, 1000)]
    step = 20_000
    while step < m:
        points.append(step)
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return (*(k for k in points if k < m), m)


class PerQuery:
    """Per-query sums, filled chunk by chunk by a backend (O(Q × (L + 1 + cut-offs)) memory).

    Attributes:
        n, r: (Q, L+1) int64 items / relevant items per Hamming distance.
        ap: (Q,) float64 AP·R with ties ranked by ascending database index.
        cuts: (C,) int64 distinct rank cut-offs, ascending, each in 1..M.
        top_cols: columns of ``cuts`` whose AP sums are read (``map@<k>``).
        top_sum: (Q, C) float64 AP sums over ranks ≤ cut (backends fill at least ``top_cols``).
        cut_cnt: (Q, C) int64 relevant items at ranks ≤ cut.
    """

    def __init__(self, q: int, bits: int, cuts: np.ndarray, top_cols: np.ndarray) -> None:
        self.n = np.zeros((q, bits + 1), dtype=np.int64)
        self.r = np.zeros((q, bits + 1), dtype=np.int64)
        self.ap = np.zeros(q, dtype=np.float64)
        self.cuts = cuts
        self.top_cols = top_cols
        self.top_sum = np.zeros((q, len(cuts)), dtype=np.float64)
        self.cut_cnt = np.zeros((q, len(cuts)), dtype=np.int64)


# --------------------------------------------------------------------------- closed forms


def _harmonic_table(m: int) -> np.ndarray:
    """H[0..m] in extended precision (differences H[a] − H[b] lose digits in float64)."""
    h = np.zeros(m + 1, dtype=np.longdouble)
    np.cumsum(1.0 / np.arange(1, m + 1, dtype=np.longdouble), out=h[1:])
    return h


def tie_aware_ap(n: np.ndarray, r: np.ndarray, harmonic: np.ndarray | None = None) -> np.ndarray:
    """Expected AP under a uniformly random order inside each tie group (exact).

    The groups (ascending distance) of one query have n_g items, r_g of them relevant; N and R
    count the items and relevant items ranked before the group. The i-th position of the group
    (rank N + i) holds a relevant item with probability r/n; given that, the number of relevant
    items before it inside the group is hypergeometric with mean (i − 1)(r − 1)/(n − 1). The
    denominator N + i is fixed given the position, so by linearity the group contributes

        (r/n) Σ_{i=1..n} (R + 1 + (i − 1)(r − 1)/(n − 1)) / (N + i)
        = (r/n) [ (R + 1) ΔH + (r − 1)/(n − 1) · (n − (N + 1) ΔH) ],   ΔH = H_{N+n} − H_N,

    (He et al., CVPR 2018), with the second term 0 when n = 1. AP is the sum over groups / R.

    Args:
        n: (..., G) item counts per group, in ranking order.
        r: (..., G) relevant counts per group.
        harmonic: optional precomputed harmonic numbers H[0..Σn].

    Returns:
        (...) float64 AP; 0 where a row has no relevant item.
    """
    n = np.asarray(n, dtype=np.int64)
    r = np.asarray(r, dtype=np.int64)
    if harmonic is None:
        harmonic = _harmonic_table(int(n.sum(axis=-1).max(initial=0)))
    big_n = np.cumsum(n, axis=-1) - n
    big_r = np.cumsum(r, axis=-1) - r
    total = r.sum(axis=-1)
    # Only groups with a relevant item contribute: evaluate the closed form on those alone.
    row = np.broadcast_to(np.arange(total.size).reshape((*total.shape, 1)), n.shape)
    hit = r > 0
    n, r, big_n, big_r, row = n[hit], r[hit], big_n[hit], big_r[hit], row[hit]
    ld = np.longdouble
    dh = harmonic[big_n + n] - harmonic[big_n]
    slope = (r - 1).astype(ld) / np.maximum(n - 1, 1)
    contrib = (r.astype(ld) / n) * ((big_r + 1) * dh + slope * (n - (big_n + 1) * dh))
    s = np.bincount(row, weights=contrib.astype(np.float64), minlength=total.size).reshape(total.shape)
    return np.divide(s, total, out=np.zeros(total.shape), where=total > 0)


# --------------------------------------------------------------------------- the result dict


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den per query, 0 where den = 0."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None


def _means(x: np.ndarray) -> list[float | None]:
    """Column means of a (queries × points) array; None everywhere when no query counts."""
    return [float(v) for v in x.mean(axis=0)] if x.shape[0] else [None] * x.shape[1]


def summarize(acc: PerQuery, req: Request, bits: int, m: int) -> dict[str, Any]:
    """The metric dict (keys in :mod:`nrchbench.metrics.ranking`) from the per-query sums.

    Every per-query value of a query with R = 0 relevant items is 0; ``req.zero_relevant``
    decides whether such queries enter the means (``zero``) or not (``exclude``).
    """
    big_r = acc.r.sum(axis=1)
    ok = big_r > 0
    rows = ok if req.zero_relevant == "exclude" else np.ones_like(ok)
    rv = big_r[rows].astype(np.float64)
    n, r = acc.n[rows], acc.r[rows]

    def col(k: int) -> int:
        return int(np.searchsorted(acc.cuts, min(k, m)))

    out: dict[str, Any] = {
        "map": _mean(_ratio(acc.ap[rows], rv)),
        "map_tie": _mean(tie_aware_ap(n, r, _harmonic_table(m))),
    }
    for k in req.topk:
        cnt = acc.cut_cnt[rows, col(k)]
        out[f"map@{k}"] = _mean(_ratio(acc.top_sum[rows, col(k)], cnt))
    for k in req.topk:
        out[f"precision@{k}"] = _mean(acc.cut_cnt[rows, col(k)] / min(k, m))
    for k in req.topk:
        out[f"recall@{k}"] = _mean(_ratio(acc.cut_cnt[rows, col(k)], rv))
    if req.radius:
        got, hit = np.cumsum(n, axis=1), np.cumsum(r, axis=1)
        for rad in req.radius:  # DeepHash's convention: nothing within the radius → precision 0
            out[f"hamming_precision@{rad}"] = _mean(_ratio(hit[:, min(rad, bits)], got[:, min(rad, bits)]))
        for rad in req.radius:
            out[f"hamming_recall@{rad}"] = _mean(_ratio(hit[:, min(rad, bits)], rv))
    out["chance"] = _mean(rv / m)
    out["num_queries"] = len(big_r)
    out["num_queries_no_relevant"] = int((~ok).sum())
    out["bits"] = bits
    out["db_size"] = m
    if req.pr_curve:
        out["pr_curve"] = _pr_curve(n, r, rv, bits)
    if req.curve_k:
        cnt = acc.cut_cnt[rows][:, [col(k) for k in req.curve_k]]
        out["topk_curve"] = {
            "k": list(req.curve_k),
            "precision": _means(cnt / np.minimum(req.curve_k, m)),
            "recall": _means(_ratio(cnt, rv[:, None])),
        }
    return out


def _pr_curve(n: np.ndarray, r: np.ndarray, rv: np.ndarray, bits: int) -> dict[str, list]:
    """Hamming-ball retrieval at every radius 0..L: precision over the queries that retrieve
    something (``support`` of them), recall over all counted queries."""
    got = np.cumsum(n, axis=1)
    hit = np.cumsum(r, axis=1)
    support = (got > 0).sum(axis=0)
    prec = _ratio(hit, got).sum(axis=0)
    return {
        "radius": list(range(bits + 1)),
        "precision": [float(p / s) if s else 0.0 for p, s in zip(prec, support)],
        "recall": [float(x) for x in _ratio(hit, rv[:, None]).mean(axis=0)] if len(rv) else [0.0] * (bits + 1),
        "support": [int(s) for s in support],
    }
