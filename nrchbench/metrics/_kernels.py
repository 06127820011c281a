"""Compiled ranking kernel (numba): every per-query metric sum in two linear passes, no sort.

Imported lazily by :mod:`nrchbench.metrics.ranking` (``backend="numba"``, the CPU default when
numba imports). The first call compiles the kernel (a few seconds); ``cache=True`` keeps the
machine code beside this file (or in numba's user cache directory when that is read-only), so
later processes load it in well under a second.

Why no sort: for one query, item j (database order) with distance d_j ranks after every item
with a smaller distance and after the items of its own distance with a smaller index, so its
1-based rank (ties by ascending index) is K_j = C_<(d_j) + #{i ≤ j : d_i = d_j}, and the
number of relevant items ranked up to it is P_j = R_<(d_j) + #{relevant i ≤ j : d_i = d_j},
where C_< and R_< count all / relevant items at smaller distances. Pass 1 computes the
distances (popcount of XOR-ed 64-bit words), relevance (AND of label bit masks) and the
per-distance histograms n_d and r_d; pass 2 walks the database in index order with one
running counter per distance for all items and one for relevant items, which gives K_j and
P_j directly, and adds P_j / K_j for every relevant item. That is the stable-sort AP without
the sort. Items whose rank falls below a top-k cut-off also feed ``map@k`` and
``precision@k``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["rank_queries"]


@intrinsic
def _popcount64(typingctx, x):
    """Hardware population count (LLVM ``ctpop``) of a uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _distances(qw, dw_t, qm, dm_t, i, dbuf, rbuf):
    """Pass 1a for query i: Hamming distances and relevance flags (plain loops: they vectorise)."""
    n_words, m = dw_t.shape
    qv = qw[i, 0]
    for j in range(m):
        dbuf[j] = _popcount64(qv ^ dw_t[0, j])
    for w in range(1, n_words):
        qv = qw[i, w]
        for j in range(m):
            dbuf[j] += _popcount64(qv ^ dw_t[w, j])
    lv = qm[i, 0]
    for j in range(m):
        rbuf[j] = (lv & dm_t[0, j]) != 0
    for c in range(1, dm_t.shape[0]):
        lv = qm[i, c]
        for j in range(m):
            rbuf[j] |= (lv & dm_t[c, j]) != 0


@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _histogram(i, bits, cuts, dbuf, rbuf, hist, seen, seen_rel, cut_group, out_n, out_r):
    """Pass 1b for query i: items / relevant items per distance, the rank counters' starts, and the
    distance group holding each cut-off's last rank (−1 for a cut of 0)."""
    m = dbuf.shape[0]
    bins = bits + 1
    hist[:] = 0
    m4 = m - m % 4
    for j in range(0, m4, 4):  # four interleaved copies: no store-to-load stalls
        hist[0, 2 * np.int64(dbuf[j]) + rbuf[j]] += 1
        hist[1, 2 * np.int64(dbuf[j + 1]) + rbuf[j + 1]] += 1
        hist[2, 2 * np.int64(dbuf[j + 2]) + rbuf[j + 2]] += 1
        hist[3, 2 * np.int64(dbuf[j + 3]) + rbuf[j + 3]] += 1
    for j in range(m4, m):
        hist[0, 2 * np.int64(dbuf[j]) + rbuf[j]] += 1
    before = 0
    before_rel = 0
    for c in range(cuts.shape[0]):
        cut_group[c] = -1
    for g in range(bins):
        h_non = hist[0, 2 * g] + hist[1, 2 * g] + hist[2, 2 * g] + hist[3, 2 * g]
        h_rel = hist[0, 2 * g + 1] + hist[1, 2 * g + 1] + hist[2, 2 * g + 1] + hist[3, 2 * g + 1]
        out_n[i, g] = h_non + h_rel
        out_r[i, g] = h_rel
        seen[g] = before
        seen_rel[g] = before_rel
        for c in range(cuts.shape[0]):
            if before < cuts[c] <= before + h_non + h_rel:
                cut_group[c] = g
        before += h_non + h_rel
        before_rel += h_rel


@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _visit(j, dbuf, rbuf, inv, cuts, seen, seen_rel, apg, boundary, cut_group, part_cnt, part_top):
    """Pass 2, item j of one query: its rank K = seen[d] + 1 and relevant count P, the AP term
    P/K (0 for a non-relevant item, without a branch) into its distance group's sum, and, in a
    group that holds a top-k cut-off, the parts inside each cut-off."""
    g = np.int64(dbuf[j])
    k = seen[g]  # 0-based rank K − 1
    seen[g] = k + 1
    rj = np.int64(rbuf[j])
    p = seen_rel[g] + rj
    seen_rel[g] = p
    v = (p * rj) * inv[k]
    apg[g] += v
    if boundary[g]:
        for c in range(cuts.shape[0]):
            if cut_group[c] == g and k < cuts[c]:
                part_cnt[c] += rj
                part_top[c] += v


@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _finish(i, bits, cuts, n_top, apg, cut_group, part_cnt, part_top, out_r, out_ap, out_top, out_cnt):
    """Per-group AP sums → AP·R and the top-k sums: whole groups before a cut-off's group plus the
    part of that group inside the cut-off (accumulated item by item in pass 2)."""
    total = 0.0
    for g in range(bits + 1):
        total += apg[g]
    out_ap[i] = total
    for c in range(cuts.shape[0]):
        gc = cut_group[c]
        cnt = 0
        top = 0.0
        if gc >= 0:
            for g in range(gc):
                cnt += out_r[i, g]
                top += apg[g]
            cnt += part_cnt[c]
            top += part_top[c]
        out_cnt[i, c] = cnt
        if c < n_top:
            out_top[i, c] = top


@njit(nogil=True, cache=True, boundscheck=False)
def rank_queries(
    qw, dw_t, qm, dm_t, lo, hi, bits, inv, cuts, n_top, out_n, out_r, out_ap, out_top, out_cnt, dbuf, rbuf
):
    """Per-query sums for queries ``lo..hi-1`` (releases the GIL; rows of the outputs are disjoint
    between calls, so threads may run calls on different query ranges at once).

    Pass 2 walks two queries at once: each query's counters form a chain of dependent loads and
    stores, and two independent chains keep the core busy.

    Args:
        qw: (Q, W) uint64 packed query codes. dw_t: (W, M) packed database codes, word-major.
        qm: (Q, CW) uint64 query label masks. dm_t: (CW, M) database label masks, word-major.
        lo, hi: the query range. bits: code length L.
        inv: (M,) float64, inv[k] = 1 / (k + 1).
        cuts: (n_cut,) int64 top-k cut-offs (each ≤ M); the first ``n_top`` are ``map@k``'s.
        out_n, out_r: (Q, L+1) int64 items / relevant items per distance (written).
        out_ap: (Q,) float64 Σ over relevant items of P/K (written).
        out_top: (Q, n_top) float64 the same sum over ranks ≤ k (written).
        out_cnt: (Q, n_cut) int64 relevant items at ranks ≤ k (written).
        dbuf: (2, M) uint16, rbuf: (2, M) uint8 scratch of the calling thread.
    """
    m = dw_t.shape[1]
    bins = bits + 1
    n_cut = cuts.shape[0]
    hist = np.zeros((4, 2 * bins), np.int64)
    seen = np.empty((2, bins), np.int64)  # running rank counters (all items), per distance
    seen_rel = np.empty((2, bins), np.int64)  # running counters of relevant items, per distance
    apg = np.empty((2, bins), np.float64)  # Σ P/K per distance group
    cut_group = np.empty((2, n_cut), np.int64)
    boundary = np.zeros((2, bins), np.bool_)  # groups holding some cut-off's last rank
    part_cnt = np.empty((2, n_cut), np.int64)
    part_top = np.empty((2, n_cut), np.float64)
    for i0 in range(lo, hi, 2):
        nq = min(2, hi - i0)
        for t in range(nq):
            _distances(qw, dw_t, qm, dm_t, i0 + t, dbuf[t], rbuf[t])
            _histogram(i0 + t, bits, cuts, dbuf[t], rbuf[t], hist, seen[t], seen_rel[t], cut_group[t], out_n, out_r)
            apg[t, :] = 0.0
            boundary[t, :] = False
            for c in range(n_cut):
                part_cnt[t, c] = 0
                part_top[t, c] = 0.0
                if cut_group[t, c] >= 0:
                    boundary[t, cut_group[t, c]] = True
        if nq == 2:
            for j in range(m):  # two independent dependency chains per iteration
                _visit(j, dbuf[0], rbuf[0], inv, cuts, seen[0], seen_rel[0], apg[0], boundary[0],
                       cut_group[0], part_cnt[0], part_top[0])  # fmt: skip
                _visit(j, dbuf[1], rbuf[1], inv, cuts, seen[1], seen_rel[1], apg[1], boundary[1],
                       cut_group[1], part_cnt[1], part_top[1])  # fmt: skip
        else:
            for j in range(m):
                _visit(j, dbuf[0], rbuf[0], inv, cuts, seen[0], seen_rel[0], apg[0], boundary[0],
                       cut_group[0], part_cnt[0], part_top[0])  # fmt: skip
        for t in range(nq):
            _finish(i0 + t, bits, cuts, n_top, apg[t], cut_group[t], part_cnt[t], part_top[t],
                    out_r, out_ap, out_top, out_cnt)  # fmt: skip
