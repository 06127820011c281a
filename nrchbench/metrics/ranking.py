"""Retrieval metrics for one direction (queries of one modality against a database of the other).

:func:`evaluate` returns a plain dict (JSON numbers and lists only). Keys:

``map``
    mAP@all. Per query, AP = (1/R) Σ_k k / p_k over its R relevant items at 1-based ranks
    p_1 < … < p_R, the database ranked by ascending Hamming distance with **equal distances
    ranked by ascending database index** (a stable sort), so the value is deterministic.
``map_tie``
    Tie-aware mAP@all: the expected AP over a uniformly random order inside each distance
    (He et al., "Hashing as Tie-Aware Learning to Rank", CVPR 2018), exact closed form (see
    :func:`tie_aware_ap`). Invariant to any permutation of the database.
``map@<k>``
    for each ``k`` in ``topk``: AP over the top-k positions (stable order as for ``map``),
    normalised by the number of relevant items inside the top k; a query with none there
    scores 0. With k ≥ database size it equals ``map``.
``precision@<k>``
    for each ``k`` in ``precision_k``: relevant items among the top min(k, database size),
    divided by min(k, database size).
``pr_curve``
    ``{"radius": [0..L], "precision": [...], "recall": [...], "support": [...]}`` for
    Hamming-ball retrieval (every item with d ≤ radius). ``recall`` is the mean over counted
    queries of (relevant retrieved / R). ``precision`` is the mean of (relevant retrieved /
    retrieved) over the counted queries that retrieve at least one item (**empty retrievals are
    excluded**); ``support`` is the number of such queries, and precision is 0.0 where it is 0.
    Only present when ``pr_curve=True``.
``chance``
    mean over counted queries of R / database size: the (approximate) mAP of a random ranking.
``num_queries``
    number of queries given (counted or not).
``num_queries_no_relevant``
    queries with no relevant database item (R = 0). They are excluded from every mean above.
    If every query has R = 0, the means are ``None``.
``bits``
    code length L.
``db_size``
    number of database items.

Relevance: a query and a database item are relevant iff their label vectors share at least
one positive entry (ℓ_qᵀ ℓ_r > 0). Hamming distance d = (L − b_qᵀ b_r) / 2.

Algorithm. Distances are integers in 0..L, so nothing needs a comparison sort. With ties ranked
by ascending database index, item j's 1-based rank is K_j = C_<(d_j) + #{i ≤ j : d_i = d_j}
(C_<: items at smaller distances), and the relevant items ranked up to it number
P_j = R_<(d_j) + #{relevant i ≤ j : d_i = d_j}; AP·R = Σ over relevant j of P_j / K_j.

* ``backend="numba"`` (the CPU default; :mod:`nrchbench.metrics._kernels`): per query, pass 1
  computes distances by popcount of XOR-ed 64-bit words, relevance by AND of label bit masks,
  and the per-distance counts n_d, r_d; pass 2 walks the database in index order with one
  running counter per distance, which yields K_j and P_j without sorting. The kernel is
  compiled once (cached on disk) and releases the GIL; a thread pool runs query chunks.
* ``backend="counting"`` (CPU, numpy/scipy only; the fallback when numba is missing): per chunk
  of queries, popcount distances and label-mask relevance (a float32 label product beyond 64
  classes), then a **stable counting sort** of every row by distance (scipy's COO→CSR kernel,
  keys ``query × (L+1) + distance``) yields the relevance flags in rank order and n_d; the
  positions of the relevant items give ``map``, ``map@k``, ``precision@k`` and r_d.
* ``backend="argsort"``: as ``counting`` with numpy's stable argsort.
* ``backend="torch"`` (CUDA and other torch devices): matmul distances,
  ``torch.sort(stable=True)``, dense cumulative sums.

All backends give the same numbers (to float64 rounding of the sums). ``map_tie`` and
``pr_curve`` are closed forms over the L+1 counts n_d, r_d.

Memory. Besides the inputs, ``evaluate`` holds O(M) float64 vectors (1/k, harmonic numbers) and
per-query vectors of length L + 1 (no query × database matrix of the whole set is ever built,
so a 10⁶-item database works). ``numba`` holds the packed codes and label masks
((Q + M) × 8 × (⌈L/64⌉ + ⌈C/64⌉) bytes) and 6 × M bytes of scratch per thread, and ignores
``memory_budget``. ``counting`` holds ``chunk_size × M × 60`` bytes per worker thread (78 with
``argsort``, about 48 with ``torch``); by default ``chunk_size`` keeps all workers' chunk
buffers within ``memory_budget`` (256 MiB on the CPU, 1 GiB on a torch accelerator) and each
worker's within 16 MiB, with at least one query per chunk. Example: NUS-WIDE scale (2,100 ×
188,321, 128 bits, 21 classes) peaks at +26 MiB with ``numba`` (benchmarks/metrics_speed.py).
"""

from __future__ import annotations

import difflib
import logging
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from nrchbench.errors import ConfigError, RegistryError
from nrchbench.metrics.codes import pack, sign_codes, unpack

__all__ = ["METRICS", "MetricInfo", "evaluate", "evaluate_cross_modal", "metric_info", "tie_aware_ap"]


def _load_counting_sort():
    """scipy's COO→CSR kernel: a stable counting sort in C that releases the GIL. It is private
    API (unchanged for a decade), so it is checked once on a tiny input; if it is missing or
    behaves differently, ``backend="auto"`` falls back to numpy's stable argsort."""
    try:
        from scipy.sparse._sparsetools import coo_tocsr

        keys = np.array([1, 0, 1, 0], dtype=np.int32)
        ptr, idx, out = np.empty(3, np.int32), np.empty(4, np.int32), np.empty(4, np.bool_)
        coo_tocsr(2, 4, 4, keys, np.arange(4, dtype=np.int32), np.array([1, 0, 0, 1], bool), ptr, idx, out)
        ok = ptr.tolist() == [0, 2, 4] and idx.tolist() == [1, 3, 0, 2] and out.tolist() == [0, 1, 1, 0]
    except Exception:  # pragma: no cover - depends on the scipy build
        return None
    return coo_tocsr if ok else None


_coo_tocsr = _load_counting_sort()
log = logging.getLogger(__name__)
_numba_kernel: Any = None  # nrchbench.metrics._kernels.rank_queries once imported; False if unavailable


def _load_numba_kernel():
    """The compiled ranking kernel, or None when numba cannot be imported (then ``auto`` uses the
    numpy counting sort: the same numbers, slower)."""
    global _numba_kernel
    if _numba_kernel is None:
        try:
            from nrchbench.metrics._kernels import rank_queries

            _numba_kernel = rank_queries
        except Exception as exc:  # pragma: no cover - numba is a dependency; this guards broken installs
            log.warning("numba kernel unavailable (%s); evaluation uses the slower numpy path", exc)
            _numba_kernel = False
    return _numba_kernel or None


DEFAULT_MEMORY_BUDGET = 256 * 2**20  # CPU
DEFAULT_MEMORY_BUDGET_ACCELERATOR = 2**30  # CUDA and other torch devices
# Chunk bytes per (query, database item): uint64 XOR words, 2 distance bytes, int32 keys, int32
# kernel scratch, 2 flags, the reducer's 2 float64 + int64 positions, and (shared by the workers,
# counted per worker to stay conservative) the float64 1/(k+1) and 1, 2, 3, … tables.
_CPU_BYTES_PER_PAIR = 60
_ARGSORT_BYTES_PER_PAIR = 78  # + int64 order, sorted flags, intp bincount keys
_TORCH_BYTES_PER_PAIR = 48  # float32 product, int16 distances, sorted values, int64 order, cumsums, float64 terms
_INT32_MAX = 2**31 - 1
_CHUNK_CACHE_BYTES = 16 * 2**20  # per worker: default chunks of a few dozen queries (fewer, larger numpy calls)


# --------------------------------------------------------------------------- metric metadata


@dataclass(frozen=True)
class MetricInfo:
    """Declared meaning of one scalar metric key.

    Attributes:
        key: the key in the :func:`evaluate` dict (``map@100`` for parametrised ones).
        higher_is_better: True for scores; None for descriptive numbers (counts, chance).
        range: (low, high) of possible values.
        description: one line.
    """

    key: str
    higher_is_better: bool | None
    range: tuple[float, float]
    description: str


METRICS: dict[str, MetricInfo] = {
    m.key: m
    for m in (
        MetricInfo("map", True, (0.0, 1.0), "mAP@all, ties ranked by ascending database index"),
        MetricInfo("map_tie", True, (0.0, 1.0), "tie-aware mAP@all (expected AP over random order within ties)"),
        MetricInfo("map@k", True, (0.0, 1.0), "AP over the top k, normalised by relevant items in the top k"),
        MetricInfo("precision@k", True, (0.0, 1.0), "fraction of relevant items among the top k"),
        MetricInfo("chance", None, (0.0, 1.0), "mean fraction of relevant database items (random-ranking mAP)"),
        MetricInfo("num_queries", None, (0.0, math.inf), "queries evaluated"),
        MetricInfo("num_queries_no_relevant", None, (0.0, math.inf), "queries without relevant items (excluded)"),
        MetricInfo("bits", None, (1.0, math.inf), "code length"),
        MetricInfo("db_size", None, (1.0, math.inf), "database items"),
    )
}


def metric_info(key: str) -> MetricInfo:
    """Metadata for a metric key, including parametrised keys such as ``map@100``.

    Raises:
        RegistryError: unknown key (the message lists the closest known keys).
    """
    if key in METRICS:
        return METRICS[key]
    name, sep, k = key.partition("@")
    if sep and k.isdigit() and int(k) > 0 and f"{name}@k" in METRICS:
        return replace(METRICS[f"{name}@k"], key=key)
    close = difflib.get_close_matches(key, list(METRICS), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise RegistryError(f"unknown metric {key!r}: {hint}known: {', '.join(METRICS)} (k a positive integer)")


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


# --------------------------------------------------------------------------- input handling


def _prepare_codes(x: Any, bits: int | None, name: str) -> np.ndarray | torch.Tensor:
    """Validate codes; packed words are unpacked. Returns the (unsigned-free) array or tensor as is."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or (not x.is_floating_point() and not x.is_signed()):
            raise ConfigError(f"{name}: expected {{-1,+1}} or real-valued codes, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ConfigError(f"{name}: expected a 2-D tensor (items × bits), got shape {tuple(x.shape)}")
        return x.detach()
    a = np.asarray(x)
    if a.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D array (items × bits), got shape {a.shape}")
    if a.dtype == np.uint64:
        if bits is None:
            raise ConfigError(f"{name}: packed uint64 codes need bits=<code length>")
        return unpack(a, bits)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.signedinteger) or np.issubdtype(a.dtype, np.floating)):
        raise ConfigError(
            f"{name}: expected {{-1,+1}} or real-valued codes (or uint64 words from metrics.pack), got dtype {a.dtype}"
        )
    return a


def _np(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else x


def _fill_codes(dst: np.ndarray, x: np.ndarray | torch.Tensor) -> None:
    """dst (float32 view) ← sign(x) with 0 → +1, without full-size temporaries."""
    np.greater_equal(_np(x), 0, out=dst)
    dst *= 2
    dst -= 1


def _fill_labels(dst: np.ndarray, x: np.ndarray | torch.Tensor, scale: float = 1.0) -> None:
    np.greater(_np(x), 0, out=dst)
    if scale != 1.0:
        dst *= scale


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _torch_codes(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = _as_tensor(x)
    return sign_codes(t.to(device)).to(torch.float32)


def _torch_labels(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = _as_tensor(x)
    return (t.to(device) > 0).to(torch.float32)


def _prepare_labels(query_labels: Any, db_labels: Any) -> tuple[Any, Any]:
    """Validate labels (positive entries = labels present); 1-D integer class ids become one-hot rows."""
    out = []
    for x, name in ((query_labels, "query_labels"), (db_labels, "db_labels")):
        t = x.detach() if isinstance(x, torch.Tensor) else np.asarray(x)
        is_int = (
            not (t.is_floating_point() or t.dtype == torch.bool)
            if isinstance(t, torch.Tensor)
            else (np.issubdtype(t.dtype, np.integer))
        )
        if t.ndim == 1 and not is_int:
            raise ConfigError(f"{name}: 1-D labels must be integer class ids, got dtype {t.dtype}")
        if t.ndim not in (1, 2):
            raise ConfigError(f"{name}: expected a 2-D label matrix (items × classes), got shape {tuple(t.shape)}")
        out.append(t)
    if out[0].ndim == 1 or out[1].ndim == 1:
        if out[0].ndim != out[1].ndim:
            raise ConfigError("query_labels and db_labels: give both as class ids (1-D) or both as matrices (2-D)")
        out = [_np(t) for t in out]
        k = int(max(out[0].max(initial=0), out[1].max(initial=0))) + 1
        out = [np.arange(k) == t[:, None] for t in out]
    return out[0], out[1]


def _resolve_device(device: Any, *tensors: Any) -> torch.device:
    if device is None:
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.device.type != "cpu":
                return t.device
        return torch.device("cpu")
    from nrchbench.utils import resolve_device

    return resolve_device(device)


# --------------------------------------------------------------------------- accumulators


class _Acc:
    """Per-query results, filled chunk by chunk (only O(Q × (L + 1)) memory)."""

    def __init__(self, q: int, bits: int, n_top: int, n_cut: int) -> None:
        self.n = np.zeros((q, bits + 1), dtype=np.int64)
        self.r = np.zeros((q, bits + 1), dtype=np.int64)
        self.ap = np.zeros(q, dtype=np.float64)
        self.top_sum = np.zeros((q, n_top), dtype=np.float64)
        self.cut_cnt = np.zeros((q, n_cut), dtype=np.int64)


class _ChunkReducer:
    """Per-query sums from relevance flags in rank order, a whole chunk per call.

    A few large numpy calls per chunk, no per-row Python loop: in a thread pool, many short
    calls convoy on the GIL. For the chunk's flags (qc × M, rank order) P = the flat positions
    i·M + k of the relevant items (ascending), t_g = 1/(k_g + 1) for the g-th of them, and row
    i owns P[f_i:e_i]. Its AP·R = Σ_m m / p_m = Σ_{g∈[f_i,e_i)} (g + 1 − f_i) t_g, one segment
    sum (``np.add.reduceat``, in rank order: the same numbers whatever the chunking). One
    ``searchsorted`` of P gives every row's relevant counts before each distance-group end and
    each top-k cut-off.
    """

    def __init__(self, qc_max: int, m: int, acc: _Acc, cuts: np.ndarray, inv_tiled: np.ndarray, ar: np.ndarray):
        self.m, self.acc, self.cuts = m, acc, cuts
        self.inv_tiled, self.ar = inv_tiled, ar  # shared, read-only: 1/(k+1) per flat position; 1, 2, 3, …
        self.t = np.empty(qc_max * m + 1, dtype=np.float64)
        self.u = np.empty(qc_max * m + 1, dtype=np.float64)

    def __call__(self, rel_sorted: np.ndarray, n: np.ndarray, start: int) -> None:
        acc, m, cuts = self.acc, self.m, self.cuts
        qc, bins = n.shape
        n_top = acc.top_sum.shape[1]
        p = np.flatnonzero(rel_sorted)
        n_p = p.size
        base = np.arange(qc, dtype=np.int64) * m
        bnd = np.empty((qc, 1 + bins + len(cuts)), dtype=np.int64)
        bnd[:, 0] = 0
        np.cumsum(n, axis=1, out=bnd[:, 1 : 1 + bins])
        bnd[:, 1 + bins :] = cuts
        bnd += base[:, None]
        pos = np.searchsorted(p, bnd.ravel()).reshape(bnd.shape)
        first = pos[:, 0]
        below = pos[:, 1:] - first[:, None]  # relevant items ranked before each bound
        t, u = self.t[:n_p], self.u[: n_p + 1]
        np.take(self.inv_tiled, p, out=t, mode="clip")
        # m (1-based rank among the row's relevant items) = g + 1 − f_i, exact in float64
        np.subtract(self.ar[:n_p], np.repeat(first.astype(np.float64), pos[:, bins] - first), out=u[:n_p])
        u[:n_p] *= t
        u[n_p] = 0.0  # sentinel: every segment start is a valid index
        idx = np.empty(2 * qc, dtype=np.intp)
        idx[0::2] = first
        for j, end in enumerate([pos[:, bins]] + [pos[:, 1 + bins + c] for c in range(n_top)]):
            idx[1::2] = end
            seg = np.add.reduceat(u, idx)[0::2]
            seg[end == first] = 0.0  # reduceat returns the element at an empty segment's start
            if j == 0:
                acc.ap[start : start + qc] = seg
            else:
                acc.top_sum[start : start + qc, j - 1] = seg
        acc.n[start : start + qc] = n
        acc.r[start : start + qc, 0] = below[:, 0]
        acc.r[start : start + qc, 1:] = np.diff(below[:, :bins], axis=1)
        acc.cut_cnt[start : start + qc] = below[:, bins:]


def _chunk_plan(q: int, m: int, bytes_per_pair: int, chunk_size: int | None, budget: int, workers: int) -> int:
    if chunk_size is None:
        # At most _CHUNK_CACHE_BYTES of buffers per worker; the budget caps all workers together.
        chunk_size = min(_CHUNK_CACHE_BYTES, budget // max(workers, 1)) // (bytes_per_pair * m)
    return int(max(1, min(chunk_size, q, _INT32_MAX // m)))


def _label_masks(ql: Any, dl: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Label sets as bit masks in the smallest unsigned type (None beyond 64 classes)."""
    c = ql.shape[1]
    if c > 64:
        return None
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.dtype(t).itemsize * 8 >= c)
    return tuple(_label_words(x)[:, 0].astype(dtype) for x in (ql, dl))


def _label_words(x: Any) -> np.ndarray:
    """Label sets (positive entries) as packed uint64 bit masks, one row per item."""
    return pack(np.where(_np(x) > 0, np.int8(1), np.int8(-1)))


def _for_each_chunk(nq: int, qc: int, workers: int, make_step: Any, one_torch_thread: bool = False) -> None:
    """Call ``step(start)`` for every chunk of ``qc`` queries on ``workers`` threads, each with its
    own ``step = make_step()`` (its scratch buffers). Chunks are handed out one at a time, so no
    thread idles while chunks remain. ``one_torch_thread``: torch's intra-op threads are set to 1
    during the call (the pool is the parallelism; OpenMP teams would oversubscribe the cores)."""
    chunks = iter(range(0, nq, qc))
    lock = threading.Lock()

    def work() -> None:
        step = make_step()
        while True:
            with lock:
                s = next(chunks, None)
            if s is None:
                return
            step(s)

    workers = max(1, min(workers, -(-nq // qc)))
    if workers == 1:
        work()
        return
    intra = torch.get_num_threads()
    if one_torch_thread:
        torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nrch-eval") as ex:
            for f in [ex.submit(work) for _ in range(workers)]:
                f.result()
    finally:
        torch.set_num_threads(intra)


def _run_cpu(qb, db, ql, dl, acc, cuts, chunk_size, budget, workers, use_counting):
    """CPU: popcount distances and label-mask relevance per chunk, a stable counting sort of
    every row by distance, numpy reductions; a thread pool over chunks (the kernels release the
    GIL). Beyond 64 classes, relevance comes from a float32 label product instead."""
    nq, bits = qb.shape
    m = db.shape[0]
    bins = bits + 1
    workers = max(1, min(workers, nq))
    per_pair = _CPU_BYTES_PER_PAIR if use_counting else _ARGSORT_BYTES_PER_PAIR
    qc_max = _chunk_plan(nq, m, per_pair, chunk_size, budget, workers)
    qc_max = min(qc_max, _INT32_MAX // bins)
    qw = pack(qb)
    dw_t = np.ascontiguousarray(pack(db).T)  # (words, M): one contiguous row per word
    n_words = qw.shape[1]
    d_type = np.uint8 if bits < 256 else np.uint16
    masks = _label_masks(ql, dl)
    if masks is None:
        ql_t = torch.from_numpy(np.ascontiguousarray(_np(ql) > 0, dtype=np.float32))
        dl_t = torch.from_numpy(np.ascontiguousarray((_np(dl) > 0).T, dtype=np.float32))
    else:
        qm, dm = masks
    row_off = (np.arange(qc_max, dtype=np.int32) * bins)[:, None]
    inv_tiled = np.tile(1.0 / np.arange(1, m + 1, dtype=np.float64), qc_max)
    ar = np.arange(1, qc_max * m + 1, dtype=np.float64)
    zeros = np.zeros(qc_max * m, dtype=np.int32)  # the kernel's column array; never written, never paged in

    def make_step():
        xbuf = np.empty(qc_max * m, dtype=np.uint64)  # XOR words, then the label-mask AND
        dist = np.empty(qc_max * m, dtype=d_type)
        dtmp = np.empty(qc_max * m, dtype=d_type) if n_words > 1 else None
        keys = np.empty(qc_max * m, dtype=np.int32)
        scratch = np.empty(qc_max * m, dtype=np.int32)  # the kernel's (unused) column output
        rel = np.empty(qc_max * m, dtype=np.bool_)
        rel_sorted = np.empty(qc_max * m, dtype=np.bool_)
        ptr = np.empty(qc_max * bins + 1, dtype=np.int32)
        reduce = _ChunkReducer(qc_max, m, acc, cuts, inv_tiled, ar)

        def step(s: int) -> None:
            qc = min(qc_max, nq - s)
            nnz = qc * m
            x = xbuf[:nnz].reshape(qc, m)
            d = dist[:nnz].reshape(qc, m)
            for w in range(n_words):
                np.bitwise_xor(qw[s : s + qc, w, None], dw_t[w], out=x)
                if w == 0:
                    np.bitwise_count(x, out=d)
                else:
                    np.bitwise_count(x, out=dtmp[:nnz].reshape(qc, m))
                    d += dtmp[:nnz].reshape(qc, m)
            k2 = keys[:nnz].reshape(qc, m)
            np.add(d, row_off[:qc], out=k2)  # query × (L + 1) + distance
            r2 = rel[:nnz].reshape(qc, m)
            if masks is None:
                prod = scratch[:nnz].view(np.float32).reshape(qc, m)
                torch.mm(ql_t[s : s + qc], dl_t, out=torch.from_numpy(prod))
                np.greater(prod, 0, out=r2)
            else:
                both = xbuf[:nnz].view(np.uint8)[: nnz * dm.itemsize].view(dm.dtype).reshape(qc, m)
                np.bitwise_and(qm[s : s + qc, None], dm, out=both)
                np.not_equal(both, 0, out=r2)
            if use_counting:
                _coo_tocsr(qc * bins, m, nnz, keys[:nnz], zeros[:nnz], rel[:nnz], ptr[: qc * bins + 1],
                           scratch[:nnz], rel_sorted[:nnz])  # fmt: skip
                n = np.diff(ptr[: qc * bins + 1]).reshape(qc, bins)
                rows = rel_sorted[:nnz].reshape(qc, m)
            else:
                n = np.bincount(keys[:nnz], minlength=qc * bins).reshape(qc, bins)
                order = np.argsort(d, axis=1, kind="stable")
                rows = np.take_along_axis(r2, order, axis=1)
            reduce(rows, n, s)

        return step

    _for_each_chunk(nq, qc_max, workers, make_step, one_torch_thread=True)


def _at_least_one_word(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w if w.shape[1] else np.zeros((w.shape[0], 1), dtype=np.uint64))


def _run_numba(qb, db, ql, dl, acc, cuts, n_top, chunk_size, workers) -> None:
    """CPU, compiled: two linear passes per query (see :mod:`nrchbench.metrics._kernels`), a thread
    pool over query chunks (the kernel releases the GIL). Memory: packed codes and label masks
    plus 6 bytes × M of scratch per thread."""
    kernel = _load_numba_kernel()
    nq, bits = qb.shape
    m = db.shape[0]
    # at least one word each (zero words: distance 0 / never relevant), as the kernel reads word 0
    qw, dw, qm, dm = (_at_least_one_word(w) for w in (pack(qb), pack(db), _label_words(ql), _label_words(dl)))
    dw_t, dm_t = np.ascontiguousarray(dw.T), np.ascontiguousarray(dm.T)
    inv = 1.0 / np.arange(1, m + 1, dtype=np.float64)
    cuts = np.ascontiguousarray(cuts, dtype=np.int64)
    qc = chunk_size or max(1, min(64, -(-nq // (8 * max(workers, 1)))))

    def make_step():
        dbuf = np.empty((2, m), dtype=np.uint16)
        rbuf = np.empty((2, m), dtype=np.uint8)

        def step(s: int) -> None:
            kernel(qw, dw_t, qm, dm_t, s, min(nq, s + qc), bits, inv, cuts, n_top,
                   acc.n, acc.r, acc.ap, acc.top_sum, acc.cut_cnt, dbuf, rbuf)  # fmt: skip

        return step

    _for_each_chunk(nq, qc, workers, make_step)


def _run_torch(qb, db, ql, dl, acc, cuts, n_top, chunk_size, budget, device):
    """Any torch device: matmul distances, ``torch.sort(stable=True)``, dense cumulative sums."""
    nq, bits = qb.shape
    m = db.shape[0]
    bins = bits + 1
    qc_max = _chunk_plan(nq, m, _TORCH_BYTES_PER_PAIR, chunk_size, budget, 1)
    qb, db = _torch_codes(qb, device), _torch_codes(db, device)
    ql, dl = _torch_labels(ql, device), _torch_labels(dl, device)
    db_t, dl_t = db.T, dl.T
    dtype = torch.int16 if bits < 2**15 else torch.int32
    grid = torch.arange(bins, device=device, dtype=dtype)
    pos = torch.arange(1, m + 1, device=device, dtype=torch.float64)
    cut_idx = torch.as_tensor(np.minimum(cuts, m) - 1, device=device, dtype=torch.long)
    half = torch.full((1, 1), bits / 2, device=device)
    for s in range(0, nq, qc_max):
        qc = min(qc_max, nq - s)
        d = torch.addmm(half, qb[s : s + qc], db_t, alpha=-0.5).to(dtype)
        rel = (ql[s : s + qc] @ dl_t) > 0
        sd, idx = torch.sort(d, dim=1, stable=True)
        rel_s = rel.gather(1, idx)
        del d, rel, idx
        cs = rel_s.cumsum(1, dtype=torch.int32)
        ends = torch.searchsorted(sd, grid.expand(qc, bins).contiguous(), right=True)
        before = torch.where(ends > 0, cs.gather(1, (ends - 1).clamp(min=0)), 0)
        t = torch.where(rel_s, cs / pos, 0.0)
        tcum_at = t.cumsum(1).gather(1, cut_idx[:n_top].expand(qc, -1)) if n_top else None
        acc.n[s : s + qc] = torch.diff(ends, dim=1, prepend=torch.zeros_like(ends[:, :1])).cpu().numpy()
        acc.r[s : s + qc] = torch.diff(before, dim=1, prepend=torch.zeros_like(before[:, :1])).cpu().numpy()
        acc.ap[s : s + qc] = t.sum(1).cpu().numpy()
        acc.cut_cnt[s : s + qc] = cs.gather(1, cut_idx.expand(qc, -1)).cpu().numpy()
        if n_top:
            acc.top_sum[s : s + qc] = tcum_at.cpu().numpy()


# --------------------------------------------------------------------------- public API


def evaluate(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    *,
    topk: Sequence[int] = (100,),
    precision_k: Sequence[int] = (100, 1000),
    pr_curve: bool = True,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    bits: int | None = None,
    backend: str = "auto",
    num_threads: int | None = None,
    memory_budget: int | None = None,
) -> dict[str, Any]:
    """Retrieval metrics for one direction; see the module docstring for every key.

    Args:
        query_codes: Q × L codes: {−1,+1} or real values (sign with 0 → +1 is applied), numpy
            or torch; or ``uint64`` words from :func:`nrchbench.metrics.pack` with ``bits``.
        db_codes: M × L codes, same forms.
        query_labels: Q × C label matrix (nonzero = positive) or Q integer class ids.
        db_labels: M × C label matrix or M class ids.
        topk: the k of each ``map@<k>`` key.
        precision_k: the k of each ``precision@<k>`` key.
        pr_curve: include the Hamming-radius precision–recall curve.
        chunk_size: queries per chunk (a unit of work for one thread); default from
            ``memory_budget`` (``counting``, ``argsort``, ``torch``) or about Q / (8 × threads), at
            most 64 (``numba``).
        device: ``None`` (CUDA if the code tensors live there, else CPU), ``"cpu"``, ``"cuda"``,
            ``"auto"``.
        bits: code length for packed inputs.
        backend: ``"auto"`` (``"numba"`` on the CPU when numba imports, else ``"counting"``;
            ``"torch"`` on other devices); ``"numba"`` (CPU, compiled two-pass kernel),
            ``"counting"`` (CPU counting sort), ``"argsort"`` (CPU, numpy stable argsort) or
            ``"torch"`` (any device; ``torch.sort(stable=True)``). All give the same numbers;
            the choice only changes speed.
        num_threads: CPU worker threads (default: ``torch.get_num_threads()``, at most 8). With
            more than one on the ``counting``/``argsort`` backends, torch's intra-op threads are
            set to 1 during the call and restored.
        memory_budget: bytes for all chunk buffers together (default 256 MiB on the CPU, 1 GiB
            on a torch accelerator); the ``numba`` backend needs O(M) per thread and ignores it.

    Returns:
        dict of JSON numbers and lists.

    Raises:
        ConfigError: inconsistent shapes, bad codes, unknown backend.
    """
    dev = _resolve_device(device, query_codes, db_codes)
    qb = _prepare_codes(query_codes, bits, "query_codes")
    db = _prepare_codes(db_codes, bits, "db_codes")
    if qb.shape[1] != db.shape[1]:
        raise ConfigError(
            f"query_codes have {qb.shape[1]} bits but db_codes have {db.shape[1]}; encode both with one model"
        )
    ql, dl = _prepare_labels(query_labels, db_labels)
    if ql.shape[0] != qb.shape[0] or dl.shape[0] != db.shape[0] or ql.shape[1] != dl.shape[1]:
        raise ConfigError(
            f"shapes disagree: query codes {tuple(qb.shape)}, query labels {tuple(ql.shape)}, "
            f"db codes {tuple(db.shape)}, db labels {tuple(dl.shape)}; expected Q×L, Q×C, M×L, M×C"
        )
    nq, nbits = qb.shape
    m = db.shape[0]
    if nq == 0 or m == 0:
        raise ConfigError(f"evaluate: need at least one query and one database item (got {nq} and {m})")
    if nbits == 0:
        raise ConfigError("query_codes and db_codes have 0 bits: expected codes of length L ≥ 1")
    topk = tuple(int(k) for k in topk)
    precision_k = tuple(int(k) for k in precision_k)
    if any(k < 1 for k in topk + precision_k):
        raise ConfigError(f"topk={topk}, precision_k={precision_k}: every k must be a positive integer")
    cuts = np.minimum(np.array(topk + precision_k, dtype=np.int64), m)
    acc = _Acc(nq, nbits, len(topk), len(cuts))

    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET if dev.type == "cpu" else DEFAULT_MEMORY_BUDGET_ACCELERATOR
    if backend == "auto":
        if dev.type != "cpu":
            backend = "torch"
        elif nbits < 2**16 and _load_numba_kernel() is not None:
            backend = "numba"
        else:
            backend = "counting" if _coo_tocsr is not None else "argsort"
    workers = num_threads if num_threads is not None else min(torch.get_num_threads(), 8)
    if backend == "numba":
        if dev.type != "cpu":
            raise ConfigError(f"backend='numba' runs on the CPU only; use backend='torch' for device {dev}")
        if _load_numba_kernel() is None:
            raise ConfigError("backend='numba' needs numba (pip install numba); use backend='counting'")
        if nbits >= 2**16:
            raise ConfigError(f"backend='numba' handles codes of fewer than 65,536 bits, got {nbits}")
        _run_numba(qb, db, ql, dl, acc, cuts, len(topk), chunk_size, workers)
    elif backend in ("counting", "argsort"):
        if dev.type != "cpu":
            raise ConfigError(f"backend={backend!r} runs on the CPU only; use backend='torch' for device {dev}")
        if backend == "counting" and _coo_tocsr is None:
            raise ConfigError("backend='counting' needs scipy's sparsetools; use backend='argsort'")
        _run_cpu(qb, db, ql, dl, acc, cuts, chunk_size, memory_budget, workers, backend == "counting")
    elif backend == "torch":
        _run_torch(qb, db, ql, dl, acc, cuts, len(topk), chunk_size, memory_budget, dev)
    else:
        raise ConfigError(f"backend={backend!r}: expected auto, numba, counting, argsort or torch")
    return _finalize(acc, nbits, m, topk, precision_k, pr_curve)


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None


def _finalize(acc: _Acc, bits: int, m: int, topk, precision_k, pr_curve: bool) -> dict[str, Any]:
    big_r = acc.r.sum(axis=1)
    ok = big_r > 0
    rv = big_r[ok].astype(np.float64)
    out: dict[str, Any] = {
        "map": _mean(acc.ap[ok] / rv),
        "map_tie": _mean(tie_aware_ap(acc.n[ok], acc.r[ok], _harmonic_table(m))),
    }
    for j, k in enumerate(topk):
        cnt = acc.cut_cnt[ok, j]
        out[f"map@{k}"] = _mean(np.divide(acc.top_sum[ok, j], cnt, out=np.zeros(len(cnt)), where=cnt > 0))
    for j, k in enumerate(precision_k):
        out[f"precision@{k}"] = _mean(acc.cut_cnt[ok, len(topk) + j] / min(k, m))
    out["chance"] = _mean(rv / m)
    out["num_queries"] = len(big_r)
    out["num_queries_no_relevant"] = int((~ok).sum())
    out["bits"] = bits
    out["db_size"] = m
    if pr_curve:
        got = np.cumsum(acc.n[ok], axis=1)
        hit = np.cumsum(acc.r[ok], axis=1)
        support = (got > 0).sum(axis=0)
        prec = np.divide(hit, got, out=np.zeros(got.shape), where=got > 0).sum(axis=0)
        out["pr_curve"] = {
            "radius": list(range(bits + 1)),
            "precision": [float(p / s) if s else 0.0 for p, s in zip(prec, support)],
            "recall": [float(x) for x in (hit / rv[:, None]).mean(axis=0)] if ok.any() else [0.0] * (bits + 1),
            "support": [int(s) for s in support],
        }
    return out


def evaluate_cross_modal(
    query_image: Any,
    query_text: Any,
    db_image: Any,
    db_text: Any,
    query_labels: Any,
    db_labels: Any,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Both directions and their mean: ``{"i2t": ..., "t2i": ..., "avg": ...}``.

    I2T ranks the text database for image queries, T2I the image database for text queries
    (PROTOCOL §4). ``avg`` holds the mean of the two directions for every scalar key that both
    have (keys that are ``None`` in either direction are left out). Keyword names match :func:`nrchbench.metrics.save_codes`, so
    ``evaluate_cross_modal(**load_codes(path))`` re-evaluates a saved run. ``kwargs`` go to
    :func:`evaluate`.
    """
    i2t = evaluate(query_image, db_text, query_labels, db_labels, **kwargs)
    t2i = evaluate(query_text, db_image, query_labels, db_labels, **kwargs)
    avg = {
        k: (v + t2i[k]) / 2
        for k, v in i2t.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(t2i.get(k), (int, float))
    }
    return {"i2t": i2t, "t2i": t2i, "avg": avg}
