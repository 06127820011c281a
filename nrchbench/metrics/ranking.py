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

Algorithm. Distances are integers in 0..L, so nothing is sorted by comparison. For a chunk of
queries, one float32 matrix product gives the distances (and, when exact, the label overlaps in
the same product: the query side carries −2K × labels, so the float32 result is
``K·overlap + query × (L+1) + distance``, exact below 2^24); on the CPU a **stable counting sort** of every query row by distance (one
C pass, ``scipy``'s COO→CSR kernel, with keys ``query × (L+1) + distance``) yields each row's
relevance flags in tie-broken rank order and the per-distance counts n_d in the same pass. The
positions of the relevant items then give ``map``, ``map@k``, ``precision@k``, and the
per-distance relevant counts r_d; ``map_tie`` and ``pr_curve`` are closed forms over the L+1
counts. Chunks run on a small thread pool (the kernels release the GIL). On a torch device
(CUDA), ``torch.sort(stable=True)`` replaces the counting sort.

Memory. Besides the inputs, ``evaluate`` holds the query and database codes and labels as
float32 ((Q + M) × (L + C) × 4 bytes), O(M) float64 vectors (ranks, harmonic numbers) and, per
worker thread, chunk buffers of ``chunk_size × M × 10`` bytes with the default CPU backend (30
with ``argsort``, about 48 per pair with ``torch``). By default ``chunk_size`` is chosen so that
all workers' chunk buffers together stay within ``memory_budget`` (256 MiB on the CPU, 1 GiB on
a torch accelerator), with at least one query per chunk. Across chunks only per-query vectors
of length L + 1 are kept; no query × database matrix of the whole set is ever built, so a
10⁶-item database works. Example: NUS-WIDE scale (2,100 × 188,321, 128 bits, 21 classes) on
two threads holds 112 MB of float32 database + 2 × 128 MiB of buffers.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from nrchbench.errors import ConfigError, RegistryError
from nrchbench.metrics.codes import sign_codes, unpack

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

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # CPU
DEFAULT_MEMORY_BUDGET_ACCELERATOR = 2**30  # CUDA and other torch devices
_CPU_BYTES_PER_PAIR = 10  # float32 product (reused as the kernel's scratch) + int32 keys + 2 × bool
_ARGSORT_BYTES_PER_PAIR = 30  # + uint16 distances, int64 order, intp bincount keys
_TORCH_BYTES_PER_PAIR = 48  # float32 product, int16 distances, sorted values, int64 order, cumsums, float64 terms
_INT32_MAX = 2**31 - 1


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
    ld = np.longdouble
    dh = harmonic[big_n + n] - harmonic[big_n]
    nz = np.maximum(n, 1).astype(ld)
    slope = (r - 1).clip(min=0).astype(ld) / np.maximum(n - 1, 1).astype(ld)
    contrib = (r.astype(ld) / nz) * ((big_r + 1).astype(ld) * dh + slope * (n.astype(ld) - (big_n + 1).astype(ld) * dh))
    total = r.sum(axis=-1)
    s = np.where(r > 0, contrib, 0).sum(axis=-1).astype(np.float64)
    return np.divide(s, total, out=np.zeros_like(s), where=total > 0)


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


def _reduce_sorted_rows(
    rel_sorted: np.ndarray, n: np.ndarray, start: int, acc: _Acc, cuts: np.ndarray, ar: np.ndarray, inv: np.ndarray
) -> None:
    """Per-query sums from relevance flags in rank order (numpy rows) and distance counts.

    ``ar`` is 1, 2, …, M and ``inv`` is 1/1, 1/2, …, 1/M (float64), shared by all chunks.
    """
    qc, bins = n.shape
    ends = np.cumsum(n, axis=1)
    acc.n[start : start + qc] = n
    n_top = acc.top_sum.shape[1]
    for i in range(qc):
        p = np.flatnonzero(rel_sorted[i])  # 0-based ranks of the relevant items, ascending
        if p.size == 0:
            continue
        t = inv[p]
        t *= ar[: p.size]  # k / p_k (elementwise + sum: BLAS dot spins threads, slow on a busy machine)
        below = np.searchsorted(p, np.concatenate((ends[i], cuts)))  # relevant items ranked before each bound
        q = start + i
        acc.r[q, 0] = below[0]
        acc.r[q, 1:] = np.diff(below[:bins])
        acc.ap[q] = t.sum()
        acc.cut_cnt[q] = below[bins:]
        for j in range(n_top):
            acc.top_sum[q, j] = t[: below[bins + j]].sum()


def _chunk_plan(q: int, m: int, bytes_per_pair: int, chunk_size: int | None, budget: int, workers: int) -> int:
    if chunk_size is None:
        chunk_size = max(1, budget // (bytes_per_pair * m * max(workers, 1)))
    return int(max(1, min(chunk_size, q, _INT32_MAX // m)))


def _run_cpu(qb, db, ql, dl, acc, cuts, chunk_size, budget, workers, use_counting):
    """CPU: one matmul per chunk, stable counting sort per row, numpy reductions; threads over chunks."""
    nq, bits = qb.shape
    m, c = db.shape[0], ql.shape[1]
    bins = bits + 1
    workers = max(1, min(workers, nq))
    per_pair = _CPU_BYTES_PER_PAIR if use_counting else _ARGSORT_BYTES_PER_PAIR
    qc_max = _chunk_plan(nq, m, per_pair, chunk_size, budget, workers)
    workers = max(1, min(workers, -(-nq // qc_max)))
    key_span = 1 << max(0, (qc_max * bins - 1).bit_length())  # power of two ≥ every sort key
    # One product gives distance keys and label overlaps when float32 stays exact (< 2^24).
    combined = bits + 2 * key_span * c < 2**24
    width = bits + c if combined else bits
    a_np = np.empty((nq, width), dtype=np.float32)
    b_np = np.empty((m, width), dtype=np.float32)
    _fill_codes(a_np[:, :bits], qb)
    _fill_codes(b_np[:, :bits], db)
    if combined:
        _fill_labels(a_np[:, bits:], ql, -2.0 * key_span)
        _fill_labels(b_np[:, bits:], dl)
    else:
        ql_np, dl_np = np.empty((nq, c), dtype=np.float32), np.empty((m, c), dtype=np.float32)
        _fill_labels(ql_np, ql)
        _fill_labels(dl_np, dl)
        ql, dl_t = torch.from_numpy(ql_np), torch.from_numpy(dl_np).T
    a_all, b_t = torch.from_numpy(a_np), torch.from_numpy(b_np).T
    off = (torch.arange(qc_max, dtype=torch.float32) * bins + bits / 2).unsqueeze(1)
    ar = np.arange(1, m + 1, dtype=np.float64)
    inv = 1.0 / ar
    zeros = np.zeros(qc_max * m, dtype=np.int32)  # the kernel's column array; never written, never paged in
    starts = list(range(0, nq, qc_max))

    def work(my_starts: list[int]) -> None:
        sbuf = np.empty(qc_max * m, dtype=np.float32)  # the product, then the kernel's unused column output
        keys = np.empty(qc_max * m, dtype=np.int32)
        rel = np.empty(qc_max * m, dtype=np.bool_)
        rel_sorted = np.empty(qc_max * m, dtype=np.bool_)
        ptr = np.empty(qc_max * bins + 1, dtype=np.int32)
        for s in my_starts:
            qc = min(qc_max, nq - s)
            nnz = qc * m
            s_t = torch.from_numpy(sbuf[:nnz]).view(qc, m)
            torch.addmm(off[:qc], a_all[s : s + qc], b_t, alpha=-0.5, out=s_t)
            # Elementwise work in numpy: single-threaded (the pool gives the parallelism).
            np.copyto(keys[:nnz], sbuf[:nnz], casting="unsafe")  # exact integers: offset + d (+ K·overlap)
            if combined:
                np.greater_equal(keys[:nnz], key_span, out=rel[:nnz])
                np.bitwise_and(keys[:nnz], key_span - 1, out=keys[:nnz])
            else:
                torch.mm(ql[s : s + qc], dl_t, out=s_t)
                np.greater(sbuf[:nnz], 0, out=rel[:nnz])
            if use_counting:
                _coo_tocsr(qc * bins, m, nnz, keys[:nnz], zeros[:nnz], rel[:nnz], ptr[: qc * bins + 1],
                           sbuf.view(np.int32)[:nnz], rel_sorted[:nnz])  # fmt: skip
                n = np.diff(ptr[: qc * bins + 1]).reshape(qc, bins)
                rows = rel_sorted[:nnz].reshape(qc, m)
            else:
                k2 = keys[:nnz].reshape(qc, m)
                n = np.bincount(keys[:nnz], minlength=qc * bins).reshape(qc, bins)
                d = (k2 - (np.arange(qc, dtype=np.int32) * bins)[:, None]).astype(np.uint16)
                order = np.argsort(d, axis=1, kind="stable")
                rows = np.take_along_axis(rel[:nnz].reshape(qc, m), order, axis=1)
            _reduce_sorted_rows(rows, n, s, acc, cuts, ar, inv)

    if workers == 1:
        work(starts)
        return
    # The pool is the parallelism: one intra-op thread per matmul avoids oversubscribing the
    # cores with OpenMP teams that spin while the other workers need them (restored after).
    intra = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nrch-eval") as ex:
            for f in [ex.submit(work, starts[w::workers]) for w in range(workers)]:
                f.result()
    finally:
        torch.set_num_threads(intra)


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
        chunk_size: queries per chunk; default from ``memory_budget``.
        device: ``None`` (CUDA if the code tensors live there, else CPU), ``"cpu"``, ``"cuda"``,
            ``"auto"``.
        bits: code length for packed inputs.
        backend: ``"auto"``; ``"counting"`` (CPU counting sort), ``"argsort"`` (CPU, numpy stable
            argsort) or ``"torch"`` (any device; ``torch.sort(stable=True)``). All give the same
            numbers; the choice only changes speed.
        num_threads: CPU worker threads (default: ``torch.get_num_threads()``, at most 8). With
            more than one, torch's intra-op threads are set to 1 during the call and restored.
        memory_budget: bytes for all chunk buffers together (default 256 MiB on the CPU, 1 GiB
            on a torch accelerator).

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
    topk = tuple(int(k) for k in topk)
    precision_k = tuple(int(k) for k in precision_k)
    if any(k < 1 for k in topk + precision_k):
        raise ConfigError(f"topk={topk}, precision_k={precision_k}: every k must be a positive integer")
    cuts = np.minimum(np.array(topk + precision_k, dtype=np.int64), m)
    acc = _Acc(nq, nbits, len(topk), len(cuts))

    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET if dev.type == "cpu" else DEFAULT_MEMORY_BUDGET_ACCELERATOR
    if backend == "auto":
        backend = "torch" if dev.type != "cpu" else ("counting" if _coo_tocsr is not None else "argsort")
    if backend in ("counting", "argsort"):
        if dev.type != "cpu":
            raise ConfigError(f"backend={backend!r} runs on the CPU only; use backend='torch' for device {dev}")
        if backend == "counting" and _coo_tocsr is None:
            raise ConfigError("backend='counting' needs scipy's sparsetools; use backend='argsort'")
        workers = num_threads if num_threads is not None else min(torch.get_num_threads(), 8)
        _run_cpu(qb, db, ql, dl, acc, cuts, chunk_size, memory_budget, workers, backend == "counting")
    elif backend == "torch":
        _run_torch(qb, db, ql, dl, acc, cuts, len(topk), chunk_size, memory_budget, dev)
    else:
        raise ConfigError(f"backend={backend!r}: expected auto, counting, argsort or torch")
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
