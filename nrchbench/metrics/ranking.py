"""Retrieval metrics for one direction (queries of one modality against a database of the other).

:func:`evaluate` returns a plain dict (JSON numbers and lists only). Keys:

``map``
    mAP@all. Per query, AP = (1/R) Σ_k k / p_k over its R relevant items at 1-based ranks
    p_1 < … < p_R, the database ranked by ascending Hamming distance with **equal distances
    ranked by ascending database index** (a stable sort), so the value is deterministic.
``map_tie``
    Tie-aware mAP@all: the expected AP over a uniformly random order inside each distance
    (He et al., "Hashing as Tie-Aware Learning to Rank", CVPR 2018), exact closed form (see
    :func:`~nrchbench.metrics.summary.tie_aware_ap`). Invariant to any permutation of the database.
``map@<k>``
    for each ``k`` in ``topk``: AP over the top-k positions (stable order as for ``map``),
    normalised by the number of relevant items inside the top k; a query with none there
    scores 0. With k ≥ database size it equals ``map``.
``precision@<k>``
    for each ``k`` in ``topk``: relevant items among the top min(k, M), divided by min(k, M)
    (M = database size; so k > M gives the fraction of relevant items in the whole database).
``recall@<k>``
    for each ``k`` in ``topk``: relevant items among the top min(k, M), divided by R (1 for k ≥ M).
``hamming_precision@<r>``, ``hamming_recall@<r>``
    for each ``r`` in ``radius``: retrieval of every item within Hamming distance ≤ r (r ≥ L
    retrieves the whole database). Precision = relevant retrieved / retrieved, **0 for a query
    that retrieves nothing** (counted in the mean: the DeepHash convention of published
    "precision within Hamming radius 2" numbers); recall = relevant retrieved / R.
``topk_curve``
    ``{"k": [...], "precision": [...], "recall": [...]}``: ``precision@K`` and ``recall@K`` at
    the K points ``curve_k`` (default :func:`~nrchbench.metrics.summary.default_curve_k`:
    1, 50, 100, 200, …, 1,000, 2,000, …, 10,000, 20,000, 50,000, … below M, and M).
``pr_curve``
    ``{"radius": [0..L], "precision": [...], "recall": [...], "support": [...]}`` for
    Hamming-ball retrieval (every item with d ≤ radius). ``recall`` is the mean over counted
    queries of (relevant retrieved / R). ``precision`` is the mean of (relevant retrieved /
    retrieved) over the counted queries that retrieve at least one item (**empty retrievals are
    excluded**, unlike ``hamming_precision@<r>``); ``support`` is the number of such queries,
    and precision is 0.0 where it is 0. Only present when ``pr_curve=True``.
``chance``
    mean over counted queries of R / database size: the (approximate) mAP of a random ranking.
``num_queries``
    number of queries given (counted or not).
``num_queries_no_relevant``
    queries with no relevant database item (R = 0), under either policy.
``bits``
    code length L.
``db_size``
    number of database items M.

Queries without relevant items (``zero_relevant``): ``"exclude"`` (default, the NRCH
convention) drops them from every mean above (if every query has R = 0, the means are
``None``); ``"zero"`` (the DCMH / DJSRH code) counts every per-query value of theirs as 0 and
divides every mean by all queries.

Relevance: a query and a database item are relevant iff their label vectors share at least
one positive entry (ℓ_qᵀ ℓ_r > 0). Hamming distance d = (L − b_qᵀ b_r) / 2.

Algorithm. Distances are integers in 0..L, so nothing needs a comparison sort. With ties ranked
by ascending database index, item j's 1-based rank is K_j = C_<(d_j) + #{i ≤ j : d_i = d_j}
(C_<: items at smaller distances), and the relevant items ranked up to it number
P_j = R_<(d_j) + #{relevant i ≤ j : d_i = d_j}; AP·R = Σ over relevant j of P_j / K_j. Every
backend computes, per query, the counts per distance n_d and r_d, AP·R, and at each rank
cut-off (the union of ``topk`` and ``curve_k``) the relevant items and AP sum ranked up to
it; :mod:`nrchbench.metrics.summary` turns those into every key, in the same pass.

* ``backend="numba"`` (the CPU default; :mod:`nrchbench.metrics._kernels`): per query, pass 1
  computes distances by popcount of XOR-ed 64-bit words, relevance by AND of label bit masks,
  and n_d, r_d; pass 2 walks the database in index order with one running counter per
  distance, which yields K_j and P_j without sorting. Compiled once (cached on disk), GIL
  released, a thread pool runs query chunks.
* ``backend="counting"`` (CPU, numpy/scipy only; the fallback when numba is missing) and
  ``backend="argsort"``: :mod:`nrchbench.metrics.sorting`.
* ``backend="torch"`` (CUDA and other torch devices): matmul distances,
  ``torch.sort(stable=True)``, dense cumulative sums (:mod:`nrchbench.metrics.backends`).

All backends give the same numbers (to float64 rounding of the sums).

Memory. Besides the inputs, ``evaluate`` holds O(M) float64 vectors (1/k, harmonic numbers) and
per-query vectors of length L + 1 + cut-offs (no query × database matrix of the whole set is
ever built, so a 10⁶-item database works). ``numba`` holds the packed codes and label masks
((Q + M) × 8 × (⌈L/64⌉ + ⌈C/64⌉) bytes) and 6 × M bytes of scratch per thread, and ignores
``memory_budget``. ``counting`` holds ``chunk_size × M × 60`` bytes per worker thread (78 with
``argsort``, about 48 with ``torch``); by default ``chunk_size`` keeps all workers' chunk
buffers within ``memory_budget`` (256 MiB on the CPU, 1 GiB on a torch accelerator) and each
worker's within 16 MiB, with at least one query per chunk. Example: NUS-WIDE scale (2,100 ×
188,321, 128 bits, 21 classes) peaks at +26 MiB with ``numba`` (benchmarks/metrics_speed.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nrchbench.errors import ConfigError
from nrchbench.metrics.backends import load_numba_kernel, run_numba, run_torch
from nrchbench.metrics.inputs import prepare_inputs, resolve_device
from nrchbench.metrics.sorting import coo_tocsr, run_sorting
from nrchbench.metrics.summary import ZERO_RELEVANT, PerQuery, Request, default_curve_k, summarize

__all__ = ["BACKENDS", "DEFAULT_TOPK", "evaluate", "evaluate_cross_modal"]

DEFAULT_TOPK = (50, 100, 1000, 5000)
BACKENDS = ("auto", "numba", "counting", "argsort", "torch")
DEFAULT_MEMORY_BUDGET = 256 * 2**20  # CPU
DEFAULT_MEMORY_BUDGET_ACCELERATOR = 2**30  # CUDA and other torch devices


def evaluate(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    *,
    topk: int | Sequence[int] = DEFAULT_TOPK,
    radius: int | Sequence[int] = 2,
    curve_k: int | Sequence[int] | None = None,
    zero_relevant: str = "exclude",
    pr_curve: bool = True,
    backend: str = "auto",
    device: str | torch.device | None = None,
    bits: int | None = None,
    chunk_size: int | None = None,
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
        topk: the k (≥ 1; k > M allowed) of each ``map@<k>``, ``precision@<k>``, ``recall@<k>``.
        radius: the r (≥ 0; r ≥ L allowed) of each ``hamming_precision@<r>``, ``hamming_recall@<r>``.
        curve_k: the K points (≥ 1) of ``topk_curve``; None: the default points for the
            database size; ``()``: no curve.
        zero_relevant: ``"exclude"`` or ``"zero"``: queries without relevant items are dropped
            from every mean, or count 0 and every mean divides by all queries.
        pr_curve: include the Hamming-radius precision–recall curve.
        backend: ``"auto"`` (``"numba"`` on the CPU when numba imports, else ``"counting"``;
            ``"torch"`` on other devices); ``"numba"`` (CPU, compiled two-pass kernel),
            ``"counting"`` (CPU counting sort), ``"argsort"`` (CPU, numpy stable argsort) or
            ``"torch"`` (any device; ``torch.sort(stable=True)``). All give the same numbers;
            the choice only changes speed.
        device: ``None`` (CUDA if the code tensors live there, else CPU), ``"cpu"``, ``"cuda"``,
            ``"auto"``.
        bits: code length for packed inputs.
        chunk_size: queries per chunk (a unit of work for one thread); default from
            ``memory_budget`` (``counting``, ``argsort``, ``torch``) or about Q / (8 × threads), at
            most 64 (``numba``).
        num_threads: CPU worker threads (default: ``torch.get_num_threads()``, at most 8). With
            more than one on the ``counting``/``argsort`` backends, torch's intra-op threads are
            set to 1 during the call and restored.
        memory_budget: bytes for all chunk buffers together (default 256 MiB on the CPU, 1 GiB
            on a torch accelerator); the ``numba`` backend needs O(M) per thread and ignores it.

    Returns:
        dict of JSON numbers and lists.

    Raises:
        ConfigError: inconsistent shapes, bad codes, bad options, unknown backend.
    """
    dev = resolve_device(device, query_codes, db_codes)
    qb, db, ql, dl = prepare_inputs(query_codes, db_codes, query_labels, db_labels, bits)
    nq, nbits = qb.shape
    m = db.shape[0]
    req = _request(topk, radius, curve_k, zero_relevant, pr_curve, m)
    acc = PerQuery(nq, nbits, *req.cutoffs(m))
    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET if dev.type == "cpu" else DEFAULT_MEMORY_BUDGET_ACCELERATOR
    backend = _pick_backend(backend, dev, nbits)
    workers = num_threads if num_threads is not None else min(torch.get_num_threads(), 8)
    if backend == "numba":
        run_numba(qb, db, ql, dl, acc, chunk_size, workers)
    elif backend == "torch":
        run_torch(qb, db, ql, dl, acc, chunk_size, memory_budget, dev)
    else:
        run_sorting(qb, db, ql, dl, acc, chunk_size, memory_budget, workers, backend == "counting")
    return summarize(acc, req, nbits, m)


def _ks(values: int | Sequence[int], name: str, low: int) -> tuple[int, ...]:
    """Distinct integers ≥ ``low``, in the given order (one int is one value)."""
    items = (values,) if isinstance(values, (int, np.integer)) else tuple(values)
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < low for v in items):
        raise ConfigError(f"{name}={values!r}: expected integers ≥ {low}, e.g. {name}=({low + 1}, 10)")
    return tuple(dict.fromkeys(int(v) for v in items))


def _request(topk, radius, curve_k, zero_relevant: str, pr_curve: bool, m: int) -> Request:
    if zero_relevant not in ZERO_RELEVANT:
        raise ConfigError(
            f"zero_relevant={zero_relevant!r}: expected one of {', '.join(ZERO_RELEVANT)} "
            "(exclude: drop queries without relevant items from the means; zero: count them as 0)"
        )
    return Request(
        topk=_ks(topk, "topk", 1),
        radius=_ks(radius, "radius", 0),
        curve_k=default_curve_k(m) if curve_k is None else _ks(curve_k, "curve_k", 1),
        pr_curve=bool(pr_curve),
        zero_relevant=zero_relevant,
    )


def _pick_backend(backend: str, dev: torch.device, nbits: int) -> str:
    """The backend to run, checked against the device and what is installed."""
    if backend == "auto":
        if dev.type != "cpu":
            return "torch"
        if nbits < 2**16 and load_numba_kernel() is not None:
            return "numba"
        return "counting" if coo_tocsr is not None else "argsort"
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: expected auto, numba, counting, argsort or torch")
    if backend != "torch" and dev.type != "cpu":
        raise ConfigError(f"backend={backend!r} runs on the CPU only; use backend='torch' for device {dev}")
    if backend == "numba":
        if load_numba_kernel() is None:
            raise ConfigError("backend='numba' needs numba (pip install numba); use backend='counting'")
        if nbits >= 2**16:
            raise ConfigError(f"backend='numba' handles codes of fewer than 65,536 bits, got {nbits}")
    if backend == "counting" and coo_tocsr is None:
        raise ConfigError("backend='counting' needs scipy's sparsetools; use backend='argsort'")
    return backend


def evaluate_cross_modal(
    query_image: Any,
    query_text: Any,
    db_image: Any,
    db_text: Any,
    query_labels: Any,
    db_labels: Any,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """Both directions and their mean: ``{"i2t": ..., "t2i": ..., "avg": ...}``.

    I2T ranks the text database for image queries, T2I the image database for text queries
    (PROTOCOL §4). ``avg`` holds the mean of the two directions for every scalar key that both
    have (keys that are ``None`` in either direction, and the curves, are left out). Keyword
    names match :func:`nrchbench.metrics.save_codes`, so
    ``evaluate_cross_modal(**load_codes(path), zero_relevant="zero")`` re-evaluates a saved
    run. ``options`` are :func:`evaluate`'s keywords (``topk``, ``radius``, ``curve_k``,
    ``zero_relevant``, ``backend``, ``device``, ...), the same for both directions.
    """
    i2t = evaluate(query_image, db_text, query_labels, db_labels, **options)
    t2i = evaluate(query_text, db_image, query_labels, db_labels, **options)
    avg = {
        k: (v + t2i[k]) / 2
        for k, v in i2t.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(t2i.get(k), (int, float))
    }
    return {"i2t": i2t, "t2i": t2i, "avg": avg}
