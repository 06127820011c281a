"""The numpy backends: a stable counting sort (``counting``) or argsort (``argsort``) per chunk.

Per chunk of queries: popcount distances and label-mask relevance (a float32 label product
beyond 64 classes), then a **stable counting sort** of every row by distance (scipy's COO→CSR
kernel, keys ``query × (L+1) + distance``) yields the relevance flags in rank order and the
per-distance counts n_d; the positions of the relevant items give every per-query sum
(:class:`_ChunkReducer`). ``argsort`` is the same with numpy's stable argsort. A thread pool
runs the chunks (the numpy and scipy kernels release the GIL). Without numba, ``auto`` runs
``counting``.
"""

from __future__ import annotations

import numpy as np
import torch

from nrchbench.metrics.backends import INT32_MAX, chunk_plan, for_each_chunk
from nrchbench.metrics.codes import pack
from nrchbench.metrics.inputs import as_numpy, label_masks
from nrchbench.metrics.summary import PerQuery

__all__ = ["coo_tocsr", "run_sorting"]

# Chunk bytes per (query, database item): uint64 XOR words, 2 distance bytes, int32 keys, int32
# kernel scratch, 2 flags, the reducer's 2 float64 + int64 positions, and (shared by the workers,
# counted per worker to stay conservative) the float64 1/(k+1) and 1, 2, 3, … tables.
CPU_BYTES_PER_PAIR = 60
ARGSORT_BYTES_PER_PAIR = 78  # + int64 order, sorted flags, intp bincount keys


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


coo_tocsr = _load_counting_sort()


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

    def __init__(self, qc_max: int, m: int, acc: PerQuery, inv_tiled: np.ndarray, ar: np.ndarray):
        self.m, self.acc, self.cuts = m, acc, acc.cuts
        self.inv_tiled, self.ar = inv_tiled, ar  # shared, read-only: 1/(k+1) per flat position; 1, 2, 3, …
        self.t = np.empty(qc_max * m + 1, dtype=np.float64)
        self.u = np.empty(qc_max * m + 1, dtype=np.float64)

    def __call__(self, rel_sorted: np.ndarray, n: np.ndarray, start: int) -> None:
        acc, m, cuts = self.acc, self.m, self.cuts
        qc, bins = n.shape
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
        for j, end in enumerate([pos[:, bins]] + [pos[:, 1 + bins + c] for c in acc.top_cols]):
            idx[1::2] = end
            seg = np.add.reduceat(u, idx)[0::2]
            seg[end == first] = 0.0  # reduceat returns the element at an empty segment's start
            if j == 0:
                acc.ap[start : start + qc] = seg
            else:
                acc.top_sum[start : start + qc, acc.top_cols[j - 1]] = seg
        acc.n[start : start + qc] = n
        acc.r[start : start + qc, 0] = below[:, 0]
        acc.r[start : start + qc, 1:] = np.diff(below[:, :bins], axis=1)
        acc.cut_cnt[start : start + qc] = below[:, bins:]


def run_sorting(
    qb, db, ql, dl, acc: PerQuery, chunk_size: int | None, budget: int, workers: int, counting: bool
) -> None:
    """CPU: popcount distances and label-mask relevance per chunk, a stable counting sort of
    every row by distance, numpy reductions; a thread pool over chunks (the kernels release the
    GIL). Beyond 64 classes, relevance comes from a float32 label product instead."""
    nq, bits = qb.shape
    m = db.shape[0]
    bins = bits + 1
    workers = max(1, min(workers, nq))
    per_pair = CPU_BYTES_PER_PAIR if counting else ARGSORT_BYTES_PER_PAIR
    qc_max = chunk_plan(nq, m, per_pair, chunk_size, budget, workers)
    qc_max = min(qc_max, INT32_MAX // bins)
    qw = pack(qb)
    dw_t = np.ascontiguousarray(pack(db).T)  # (words, M): one contiguous row per word
    n_words = qw.shape[1]
    d_type = np.uint8 if bits < 256 else np.uint16
    masks = label_masks(ql, dl)
    if masks is None:
        ql_t = torch.from_numpy(np.ascontiguousarray(as_numpy(ql) > 0, dtype=np.float32))
        dl_t = torch.from_numpy(np.ascontiguousarray((as_numpy(dl) > 0).T, dtype=np.float32))
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
        reduce = _ChunkReducer(qc_max, m, acc, inv_tiled, ar)

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
            if counting:
                coo_tocsr(qc * bins, m, nnz, keys[:nnz], zeros[:nnz], rel[:nnz], ptr[: qc * bins + 1],
                           scratch[:nnz], rel_sorted[:nnz])  # fmt: skip
                n = np.diff(ptr[: qc * bins + 1]).reshape(qc, bins)
                rows = rel_sorted[:nnz].reshape(qc, m)
            else:
                n = np.bincount(keys[:nnz], minlength=qc * bins).reshape(qc, bins)
                order = np.argsort(d, axis=1, kind="stable")
                rows = np.take_along_axis(r2, order, axis=1)
            reduce(rows, n, s)

        return step

    for_each_chunk(nq, qc_max, workers, make_step, one_torch_thread=True)
