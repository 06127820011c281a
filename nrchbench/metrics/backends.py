"""The compiled (numba) and torch backends, and the chunking both CPU backends share.

Each backend fills a :class:`~nrchbench.metrics.summary.PerQuery` with the same sums; which one
runs only changes speed (:func:`nrchbench.metrics.evaluate` picks). The numpy backends
(``counting``, ``argsort``) live in :mod:`nrchbench.metrics.sorting`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from nrchbench.metrics.codes import pack
from nrchbench.metrics.inputs import at_least_one_word, label_words, torch_codes, torch_labels
from nrchbench.metrics.summary import PerQuery

__all__ = ["chunk_plan", "for_each_chunk", "load_numba_kernel", "run_numba", "run_torch"]

log = logging.getLogger(__name__)
_numba_kernel: Any = None  # nrchbench.metrics._kernels.rank_queries once imported; False if unavailable

INT32_MAX = 2**31 - 1
_CHUNK_CACHE_BYTES = 16 * 2**20  # per worker: default chunks of a few dozen queries (fewer, larger numpy calls)
TORCH_BYTES_PER_PAIR = 48  # float32 product, int16 distances, sorted values, int64 order, cumsums, float64 terms


def load_numba_kernel():
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


def chunk_plan(q: int, m: int, bytes_per_pair: int, chunk_size: int | None, budget: int, workers: int) -> int:
    """Queries per chunk: ``chunk_size`` if given, else at most 16 MiB of buffers per worker and
    ``budget`` for all workers together; at least one query."""
    if chunk_size is None:
        chunk_size = min(_CHUNK_CACHE_BYTES, budget // max(workers, 1)) // (bytes_per_pair * m)
    return int(max(1, min(chunk_size, q, INT32_MAX // m)))


def for_each_chunk(nq: int, qc: int, workers: int, make_step: Any, one_torch_thread: bool = False) -> None:
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


def run_numba(qb, db, ql, dl, acc: PerQuery, chunk_size: int | None, workers: int) -> None:
    """CPU, compiled: two linear passes per query (see :mod:`nrchbench.metrics._kernels`), a thread
    pool over query chunks (the kernel releases the GIL). Memory: packed codes and label masks
    plus 6 bytes × M of scratch per thread."""
    kernel = load_numba_kernel()
    nq, bits = qb.shape
    m = db.shape[0]
    # at least one word each (zero words: distance 0 / never relevant), as the kernel reads word 0
    qw, dw, qm, dm = (at_least_one_word(w) for w in (pack(qb), pack(db), label_words(ql), label_words(dl)))
    dw_t, dm_t = np.ascontiguousarray(dw.T), np.ascontiguousarray(dm.T)
    cuts = np.ascontiguousarray(acc.cuts, dtype=np.int64)
    qc = chunk_size or max(1, min(64, -(-nq // (8 * max(workers, 1)))))

    def make_step():
        dbuf = np.empty((2, m), dtype=np.uint16)
        rbuf = np.empty((2, m), dtype=np.uint8)

        def step(s: int) -> None:
            kernel(qw, dw_t, qm, dm_t, s, min(nq, s + qc), bits, cuts,
                   acc.n, acc.r, acc.ap, acc.top_sum, acc.cut_cnt, dbuf, rbuf)  # fmt: skip

        return step

    for_each_chunk(nq, qc, workers, make_step)


def run_torch(qb, db, ql, dl, acc: PerQuery, chunk_size: int | None, budget: int, device: torch.device) -> None:
    """Any torch device: matmul distances, ``torch.sort(stable=True)``, dense cumulative sums.

    Per chunk of queries: the relevance flags in rank order give the relevant count at every
    rank (``cs``), the AP terms P/K (``t``), and, by ``searchsorted`` of the sorted distances,
    each distance group's end; the per-query sums are gathers of these at the group ends and
    the cut-offs."""
    nq, bits = qb.shape
    m = db.shape[0]
    bins = bits + 1
    qc_max = chunk_plan(nq, m, TORCH_BYTES_PER_PAIR, chunk_size, budget, 1)
    qb, db = torch_codes(qb, device), torch_codes(db, device)
    ql, dl = torch_labels(ql, device), torch_labels(dl, device)
    db_t, dl_t = db.T, dl.T
    dtype = torch.int16 if bits < 2**15 else torch.int32
    grid = torch.arange(bins, device=device, dtype=dtype)
    pos = torch.arange(1, m + 1, device=device, dtype=torch.float64)
    cut_idx = torch.as_tensor(acc.cuts - 1, device=device, dtype=torch.long)
    top_idx = cut_idx[torch.as_tensor(acc.top_cols, device=device, dtype=torch.long)]
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
        acc.n[s : s + qc] = torch.diff(ends, dim=1, prepend=torch.zeros_like(ends[:, :1])).cpu().numpy()
        acc.r[s : s + qc] = torch.diff(before, dim=1, prepend=torch.zeros_like(before[:, :1])).cpu().numpy()
        acc.ap[s : s + qc] = t.sum(1).cpu().numpy()
        acc.cut_cnt[s : s + qc] = cs.gather(1, cut_idx.expand(qc, -1)).cpu().numpy()
        if len(acc.top_cols):
            acc.top_sum[s : s + qc, acc.top_cols] = t.cumsum(1).gather(1, top_idx.expand(qc, -1)).cpu().numpy()
