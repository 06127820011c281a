"""Compiled ranking kernel (numba): every per-query metric sum in two linear passes, no sort.

Imported lazily by :mod:`nrchbench.metrics.backends` (``backend="numba"``, the CPU default when
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
the sort. Top-k cut-offs (for ``map@k``, ``precision@k``, ``recall@k`` and the top-K curve)
cost one compare per item: inside a distance group, items arrive in rank order, so the item
whose rank equals a cut-off (the first beyond it) records the relevant count and AP sum ranked
before it; a cut-off that ends its group takes the group's totals.
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
def _histogram(i, bits, cuts, dbuf, rbuf, hist, seen, seen_rel, cut_group, next_cut, thresh, out_n, out_r):
    """Pass 1b for query i: items / relevant items per distance, the rank counters' starts, the
    distance group holding each cut-off's last rank, and per group its first cut-off (``next_cut``)
    and the 0-based rank that crosses it (``thresh``; −1 for a group without cut-offs)."""
    m = dbuf.shape[0]
    bins = bits + 1
    n_cut = cuts.shape[0]
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
    c = 0
    for g in range(bins):
        h_non = hist[0, 2 * g] + hist[1, 2 * g] + hist[2, 2 * g] + hist[3, 2 * g]
        h_rel = hist[0, 2 * g + 1] + hist[1, 2 * g + 1] + hist[2, 2 * g + 1] + hist[3, 2 * g + 1]
        out_n[i, g] = h_non + h_rel
        out_r[i, g] = h_rel
        seen[g] = before
        seen_rel[g] = before_rel
        next_cut[g] = c
        thresh[g] = cuts[c] if c < n_cut and cuts[c] <= before + h_non + h_rel else -1
        while c < n_cut and cuts[c] <= before + h_non + h_rel:  # cuts ascending, each > before
            cut_group[c] = g
            c += 1
        before += h_non + h_rel
        before_rel += h_rel


@njit(nogil=True, cache=True, boundscheck=False)
def _walk(dbuf, rbuf, cuts, seen, seen_rel, apg, cut_group, next_cut, thresh, cnt_at, top_at):
    """Pass 2 for two queries at once (row t of every argument is query t's): each query's
    counters form a chain of dependent loads and stores, and two independent chains keep the core
    busy. Item j of query t: its 0-based rank k = seen[d] and relevant count P, the AP term
    P/(k + 1) (0 for a non-relevant item, without a branch) into its distance group's sum. The
    first item ranked beyond a cut-off (k = cut) records the sums ranked before it: one compare
    per item, as a group's cut-offs are crossed in ascending order.

    The body is written out here, not in an inlined helper: a helper taking array views, with a
    branch inside, makes numba keep reference counts per item (10× slower). 1/(k + 1) is divided
    out rather than read from a table: a table of M doubles gathered at ~L running ranks misses
    the cache on large databases (1.4× slower at 188,321 items)."""
    n_cut = cuts.shape[0]
    for j in range(dbuf.shape[1]):
        for t in range(2):
            g = np.int64(dbuf[t, j])
            k = seen[t, g]
            seen[t, g] = k + 1
            rj = np.int64(rbuf[t, j])
            p0 = seen_rel[t, g]
            p = p0 + rj
            seen_rel[t, g] = p
            if k == thresh[t, g]:
                c = next_cut[t, g]
                cnt_at[t, c] = p0
                top_at[t, c] = apg[t, g]
                c += 1
                next_cut[t, g] = c
                thresh[t, g] = cuts[c] if c < n_cut and cut_group[t, c] == g else -1
            apg[t, g] += (p * rj) * (1.0 / (k + 1))  # 1/(k + 1) rounded, as numpy's 1 / arange


@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _finish(i, bits, cuts, apg, cut_group, seen_rel, cnt_at, top_at, out_ap, out_top, out_cnt):
    """Per-group AP sums → AP·R, and each cut-off's sums: the groups before its group plus the
    part of its group recorded in pass 2, or the whole group when the cut-off ends it."""
    total = 0.0
    c = 0
    n_cut = cuts.shape[0]
    for g in range(bits + 1):
        while c < n_cut and cut_group[c] == g:
            if cnt_at[c] >= 0:
                out_cnt[i, c] = cnt_at[c]
                out_top[i, c] = total + top_at[c]
            else:  # the cut-off is the group's last rank: no item crossed it
                out_cnt[i, c] = seen_rel[g]
                out_top[i, c] = total + apg[g]
            c += 1
        total += apg[g]
    out_ap[i] = total


@njit(nogil=True, cache=True, boundscheck=False)
def rank_queries(qw, dw_t, qm, dm_t, lo, hi, bits, cuts, out_n, out_r, out_ap, out_top, out_cnt, dbuf, rbuf):
    """Per-query sums for queries ``lo..hi-1`` (releases the GIL; rows of the outputs are disjoint
    between calls, so threads may run calls on different query ranges at once).

    Args:
        qw: (Q, W) uint64 packed query codes. dw_t: (W, M) packed database codes, word-major.
        qm: (Q, CW) uint64 query label masks. dm_t: (CW, M) database label masks, word-major.
        lo, hi: the query range. bits: code length L.
        cuts: (n_cut,) int64 top-k cut-offs, strictly ascending, each in 1..M.
        out_n, out_r: (Q, L+1) int64 items / relevant items per distance (written).
        out_ap: (Q,) float64 Σ over relevant items of P/K (written).
        out_top: (Q, n_cut) float64 the same sum over ranks ≤ k (written).
        out_cnt: (Q, n_cut) int64 relevant items at ranks ≤ k (written).
        dbuf: (2, M) uint16, rbuf: (2, M) uint8 scratch of the calling thread.
    """
    bins = bits + 1
    n_cut = cuts.shape[0]
    hist = np.zeros((4, 2 * bins), np.int64)
    seen = np.empty((2, bins), np.int64)  # running rank counters (all items), per distance
    seen_rel = np.empty((2, bins), np.int64)  # running counters of relevant items, per distance
    apg = np.empty((2, bins), np.float64)  # Σ P/K per distance group
    next_cut = np.empty((2, bins), np.int64)  # per group: its next cut-off not yet crossed
    thresh = np.empty((2, bins), np.int64)  # per group: the 0-based rank crossing it, or −1
    cut_group = np.empty((2, n_cut), np.int64)
    cnt_at = np.empty((2, n_cut), np.int64)  # relevant items ranked before the crossing item
    top_at = np.empty((2, n_cut), np.float64)  # its group's AP sum before the crossing item
    for i0 in range(lo, hi, 2):
        nq = min(2, hi - i0)
        for t in range(2):
            i = min(i0 + t, hi - 1)  # an odd last query runs in both chains; the second copy is dropped
            _distances(qw, dw_t, qm, dm_t, i, dbuf[t], rbuf[t])
            _histogram(i, bits, cuts, dbuf[t], rbuf[t], hist, seen[t], seen_rel[t], cut_group[t],
                       next_cut[t], thresh[t], out_n, out_r)  # fmt: skip
            apg[t, :] = 0.0
            cnt_at[t, :] = -1
        _walk(dbuf, rbuf, cuts, seen, seen_rel, apg, cut_group, next_cut, thresh, cnt_at, top_at)
        for t in range(nq):
            _finish(i0 + t, bits, cuts, apg[t], cut_group[t], seen_rel[t], cnt_at[t], top_at[t],
                    out_ap, out_top, out_cnt)  # fmt: skip
