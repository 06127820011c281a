"""Retrieval metrics: oracle tests against naive pure-Python loops, edge cases and properties."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest
import torch

from nrchbench.errors import ConfigError, DataError, RegistryError
from nrchbench.metrics import (
    METRICS,
    default_curve_k,
    evaluate,
    evaluate_cross_modal,
    hamming,
    hamming_matmul,
    load_codes,
    metric_info,
    pack,
    save_codes,
    sign_codes,
    tie_aware_ap,
    unpack,
)

BACKENDS = ["numba", "counting", "argsort", "torch"]


# --------------------------------------------------------------------------- naive oracle


def _naive_dist_rel(q, db, ql, dl):
    qs = [[1 if v >= 0 else -1 for v in row] for row in np.asarray(q).tolist()]
    ds = [[1 if v >= 0 else -1 for v in row] for row in np.asarray(db).tolist()]
    dist = [[sum(a != b for a, b in zip(x, y)) for y in ds] for x in qs]
    q_sets = [{c for c, v in enumerate(row) if v > 0} for row in np.asarray(ql).tolist()]
    d_sets = [{c for c, v in enumerate(row) if v > 0} for row in np.asarray(dl).tolist()]
    rel = [[bool(x & y) for y in d_sets] for x in q_sets]  # share at least one label
    return dist, rel


def _ap(rel_in_order, k=None):
    """AP over the given ranked relevance list (truncated at k: normalised by hits in the top k)."""
    hits, s = 0, 0.0
    for pos, r in enumerate(rel_in_order[:k] if k else rel_in_order, start=1):
        if r:
            hits += 1
            s += hits / pos
    return s / hits if hits else 0.0


def naive_metrics(q, db, ql, dl, topk=(), radius=(), curve_k=(), zero_relevant="exclude"):
    """Every per-query metric by its definition, one query at a time. ``zero``: a query without
    relevant items scores 0 everywhere and counts in every mean (the DCMH / DJSRH loops)."""
    dist, rel = _naive_dist_rel(q, db, ql, dl)
    m, bits = len(dist[0]), np.asarray(q).shape[1]
    keys = ["map", "chance"] + [f"{name}@{k}" for name in ("map", "precision", "recall") for k in topk]
    keys += [f"hamming_{name}@{r}" for name in ("precision", "recall") for r in radius]
    out = {k: [] for k in keys}
    skipped = 0
    prec, rec = [[] for _ in range(bits + 1)], [[] for _ in range(bits + 1)]
    curve_p, curve_r = [[] for _ in curve_k], [[] for _ in curve_k]
    for d, r in zip(dist, rel):
        big_r = sum(r)
        if big_r == 0:
            skipped += 1
            if zero_relevant == "exclude":
                continue
        ranked = [r[j] for j in sorted(range(m), key=lambda j: (d[j], j))]
        out["map"].append(_ap(ranked))
        out["chance"].append(big_r / m)
        for k in topk:
            out[f"map@{k}"].append(_ap(ranked, k))
            out[f"precision@{k}"].append(sum(ranked[:k]) / min(k, m))
            out[f"recall@{k}"].append(sum(ranked[:k]) / big_r if big_r else 0.0)
        for i, k in enumerate(curve_k):
            curve_p[i].append(sum(ranked[:k]) / min(k, m))
            curve_r[i].append(sum(ranked[:k]) / big_r if big_r else 0.0)
        for rad in range(bits + 1):
            got = [r[j] for j in range(m) if d[j] <= rad]
            if got:
                prec[rad].append(sum(got) / len(got))
            rec[rad].append(sum(got) / big_r if big_r else 0.0)
        for rad in radius:
            got = [r[j] for j in range(m) if d[j] <= rad]
            out[f"hamming_precision@{rad}"].append(sum(got) / len(got) if got else 0.0)
            out[f"hamming_recall@{rad}"].append(sum(got) / big_r if big_r else 0.0)
    res = {k: (sum(v) / len(v) if v else None) for k, v in out.items()}
    res["num_queries_no_relevant"] = skipped
    res["pr_precision"] = [sum(p) / len(p) if p else 0.0 for p in prec]
    res["pr_recall"] = [sum(x) / len(x) if x else 0.0 for x in rec]
    res["pr_support"] = [len(p) for p in prec]
    res["curve_precision"] = [sum(p) / len(p) if p else None for p in curve_p]
    res["curve_recall"] = [sum(x) / len(x) if x else None for x in curve_r]
    return res


def exact_tie_map(q, db, ql, dl):
    """Expected AP over *all* orders of the database (then stable sort): exact tie-aware mAP."""
    dist, rel = _naive_dist_rel(q, db, ql, dl)
    m = len(dist[0])
    aps = []
    for d, r in zip(dist, rel):
        if not any(r):
            continue
        vals = [_ap([r[j] for j in sorted(perm, key=lambda j: d[j])]) for perm in itertools.permutations(range(m))]
        aps.append(sum(vals) / len(vals))
    return sum(aps) / len(aps)


def monte_carlo_tie_map(q, db, ql, dl, draws, seed):
    dist, rel = (np.array(a) for a in _naive_dist_rel(q, db, ql, dl))
    rng = np.random.default_rng(seed)
    aps = []
    for d, r in zip(dist, rel):
        if not r.any():
            continue
        u = rng.random((draws, len(d)))
        order = np.lexsort((u, np.broadcast_to(d, u.shape)), axis=-1)
        rs = r[order]
        cs = np.cumsum(rs, axis=1)
        aps.append((np.where(rs, cs / np.arange(1, len(d) + 1), 0).sum(axis=1) / r.sum()).mean())
    return float(np.mean(aps))


def random_case(seed, nq, m, bits, classes=4, p_label=0.3, real=False):
    rng = np.random.default_rng(seed)
    if real:
        q, db = rng.standard_normal((nq, bits)), rng.standard_normal((m, bits))
    else:
        q = rng.choice([-1, 1], size=(nq, bits)).astype(np.int8)
        db = rng.choice([-1, 1], size=(m, bits)).astype(np.int8)
    ql = (rng.random((nq, classes)) < p_label).astype(np.uint8)
    dl = (rng.random((m, classes)) < p_label).astype(np.uint8)
    return q, db, ql, dl


# --------------------------------------------------------------------------- codes


def test_sign_maps_zero_to_plus_one():
    x = np.array([[-2.0, 0.0, 3.0, -0.0]])
    assert sign_codes(x).tolist() == [[-1, 1, 1, 1]]
    assert sign_codes(x).dtype == np.int8
    t = sign_codes(torch.tensor(x))
    assert t.dtype == torch.int8 and t.tolist() == [[-1, 1, 1, 1]]


@pytest.mark.parametrize("bits", [1, 7, 63, 64, 65, 130])
def test_pack_unpack_round_trip(bits):
    codes = np.random.default_rng(bits).choice([-1, 1], size=(9, bits)).astype(np.int8)
    words = pack(codes)
    assert words.dtype == np.uint64 and words.shape == (9, -(-bits // 64))
    assert np.array_equal(unpack(words, bits), codes)
    assert np.array_equal(pack(torch.from_numpy(codes).float()), words)
    assert int(words[0, 0] & np.uint64(1)) == int(codes[0, 0] == 1)  # bit 0 ↔ code entry 0


@pytest.mark.parametrize("bits", [3, 64, 100])
def test_popcount_hamming_equals_matmul_and_naive(bits):
    q, db, _, _ = random_case(bits, 7, 23, bits, real=True)
    d_pop = hamming(pack(q), pack(db), chunk_size=3)
    d_mm = hamming_matmul(torch.from_numpy(q), torch.from_numpy(db)).numpy()
    d_half = hamming_matmul(torch.from_numpy(q), torch.from_numpy(db), dtype=torch.float16).numpy()
    naive, _ = _naive_dist_rel(q, db, np.ones((7, 1)), np.ones((23, 1)))
    assert np.array_equal(d_pop, np.array(naive)) and np.array_equal(d_mm, d_pop) and np.array_equal(d_half, d_pop)


def test_save_load_codes_round_trip(tmp_path):
    q, db, ql, dl = random_case(0, 5, 8, 70, real=True)
    path = tmp_path / "codes.npz"
    save_codes(path, query_image=q, db_text=torch.from_numpy(db), query_labels=ql, db_labels=dl)
    back = load_codes(path)
    assert np.array_equal(back["query_image"], sign_codes(q)) and np.array_equal(back["db_text"], sign_codes(db))
    assert np.array_equal(back["query_labels"], ql) and back["db_labels"].dtype == np.uint8
    words, bits = load_codes(path, packed=True)["db_text"]
    assert bits == 70 and np.array_equal(words, pack(db))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    assert load_codes(path, packed=True)["query_labels"].shape == (5, 4)
    with pytest.raises(DataError, match=r"bad\.npz"):
        load_codes(tmp_path / "bad.npz")


# --------------------------------------------------------------------------- oracle tests


def assert_matches_naive(got, want, keys, bits):
    for key in keys:
        if want[key] is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["pr_curve"]["radius"] == list(range(bits + 1))
    assert np.allclose(got["pr_curve"]["precision"], want["pr_precision"], atol=1e-12)
    assert np.allclose(got["pr_curve"]["recall"], want["pr_recall"], atol=1e-12)
    assert got["pr_curve"]["support"] == want["pr_support"]
    assert np.allclose(got["topk_curve"]["precision"], want["curve_precision"], atol=1e-12)
    assert np.allclose(got["topk_curve"]["recall"], want["curve_recall"], atol=1e-12)


@pytest.mark.parametrize("policy", ["exclude", "zero"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_matches_naive_oracle_with_heavy_ties(backend, bits, policy):
    """Every key against the loops: heavy ties, a query without relevant items, k on, around and
    beyond the database size (37), radius 0, inside, = L and > L."""
    q, db, ql, dl = random_case(bits, 9, 37, bits, p_label=0.25)
    ql[0] = 0  # a query without any relevant item
    topk, radius, curve = (1, 5, 20, 36, 37, 50, 1000), (0, 1, 2, bits, bits + 3), (1, 3, 10, 37, 40)
    got = evaluate(q, db, ql, dl, topk=topk, radius=radius, curve_k=curve, zero_relevant=policy,
                   backend=backend, chunk_size=4)  # fmt: skip
    want = naive_metrics(q, db, ql, dl, topk, radius, curve, policy)
    assert got["num_queries"] == 9 and got["num_queries_no_relevant"] == want["num_queries_no_relevant"] >= 1
    assert got["bits"] == bits and got["db_size"] == 37 and got["topk_curve"]["k"] == list(curve)
    keys = [k for k in want if not k.startswith(("pr_", "curve_", "num_"))]
    assert set(keys) <= set(got)
    assert_matches_naive(got, want, keys, bits)
    if policy == "exclude":
        assert got["pr_curve"]["recall"][-1] == pytest.approx(1.0)
        assert got["recall@37"] == got["recall@1000"] == pytest.approx(1.0)
        assert got[f"hamming_recall@{bits}"] == pytest.approx(1.0)
        assert got[f"hamming_precision@{bits + 3}"] == pytest.approx(got["chance"], abs=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_policy_scales_every_per_query_mean(backend):
    """``zero`` = ``exclude`` × counted / all queries, for every scalar mean and both curves;
    counts are the same under both."""
    q, db, ql, dl = random_case(30, 12, 90, 8, classes=6, p_label=0.12)
    ql[[2, 5, 7]] = 0
    ex = evaluate(q, db, ql, dl, backend=backend)
    ze = evaluate(q, db, ql, dl, backend=backend, zero_relevant="zero")
    q0 = ex["num_queries_no_relevant"]
    assert q0 >= 3 and ze["num_queries_no_relevant"] == q0 and ze.keys() == ex.keys()
    scale = (12 - q0) / 12
    for key, value in ex.items():
        if key in ("num_queries", "num_queries_no_relevant", "bits", "db_size"):
            assert ze[key] == value
        elif isinstance(value, float):
            assert metric_info(key)  # every scalar key is declared
            assert ze[key] == pytest.approx(value * scale, abs=1e-12), key
    for name in ("precision", "recall"):
        assert np.allclose(ze["topk_curve"][name], np.array(ex["topk_curve"][name]) * scale, atol=1e-12)
    assert np.allclose(ze["pr_curve"]["recall"], np.array(ex["pr_curve"]["recall"]) * scale, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_query_has_a_relevant_item(backend):
    q, db, _, _ = random_case(2, 3, 10, 4)
    ql, dl = np.zeros((3, 2)), np.ones((10, 2))
    got = evaluate(q, db, ql, dl, backend=backend)
    assert got["map"] is None and got["map_tie"] is None and got["num_queries_no_relevant"] == 3
    assert got["recall@50"] is None and got["hamming_precision@2"] is None and got["chance"] is None
    assert got["topk_curve"]["precision"] == [None] * len(got["topk_curve"]["k"])
    zero = evaluate(q, db, ql, dl, backend=backend, zero_relevant="zero")
    scalars = [k for k, v in zero.items() if k not in ("num_queries", "num_queries_no_relevant", "bits", "db_size")
               and not isinstance(v, dict)]  # fmt: skip
    assert scalars and all(zero[k] == 0.0 for k in scalars)
    assert set(zero["topk_curve"]["recall"]) == {0.0}


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_map_and_map_tie(backend):
    """No cut-off, radius or curve: the same map and map_tie, and only the always-present keys."""
    q, db, ql, dl = random_case(17, 5, 60, 8)
    got = evaluate(q, db, ql, dl, topk=(), radius=(), curve_k=(), pr_curve=False, backend=backend)
    assert set(got) == {"map", "map_tie", "chance", "num_queries", "num_queries_no_relevant", "bits", "db_size"}
    full = evaluate(q, db, ql, dl, backend=backend)
    assert all(got[k] == full[k] for k in got)


def test_default_curve_points():
    assert default_curve_k(1) == (1,)
    assert default_curve_k(120) == (1, 50, 100, 120)
    mir = default_curve_k(18_015)
    assert mir[:4] == (1, 50, 100, 200) and 1000 in mir and 10_000 in mir and mir[-1] == 18_015
    assert mir == tuple(sorted(set(mir)))
    nus = default_curve_k(188_321)
    assert nus[-4:] == (20_000, 50_000, 100_000, 188_321)
    got = evaluate(*random_case(3, 4, 300, 8))["topk_curve"]
    assert got["k"] == [1, 50, 100, 200, 300] and got["recall"][-1] == pytest.approx(1.0)
    assert "topk_curve" not in evaluate(*random_case(3, 4, 30, 8), curve_k=())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_tie_equals_exact_expectation_over_all_orders(backend, seed):
    q, db, ql, dl = random_case(seed, 4, 6, 2, classes=2, p_label=0.5)
    got = evaluate(q, db, ql, dl, backend=backend)
    assert got["map_tie"] == pytest.approx(exact_tie_map(q, db, ql, dl), abs=1e-12)


def test_map_tie_matches_monte_carlo():
    q, db, ql, dl = random_case(5, 6, 80, 3, classes=3, p_label=0.35)
    got = evaluate(q, db, ql, dl)["map_tie"]
    assert got == pytest.approx(monte_carlo_tie_map(q, db, ql, dl, draws=4000, seed=0), abs=3e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_tie_equals_map_without_ties(backend):
    bits = 12
    rng = np.random.default_rng(3)
    q = rng.choice([-1, 1], size=(1, bits)).astype(np.int8)
    flips = np.tril(np.ones((bits + 1, bits), dtype=np.int8), -1)  # row j flips the first j bits
    db = q * (1 - 2 * flips[rng.permutation(bits + 1)])  # distances 0..L, each once, shuffled
    ql = np.array([[1, 0]])
    dl = rng.integers(0, 2, size=(bits + 1, 2))
    dl[0] = [1, 0]
    got = evaluate(q, db, ql, dl, backend=backend)
    assert got["map_tie"] == pytest.approx(got["map"], abs=1e-12)
    assert got["map"] == pytest.approx(naive_metrics(q, db, ql, dl)["map"], abs=1e-12)


def test_tie_aware_ap_closed_form_small_cases():
    # one group of 2 items, 1 relevant: E[AP] = (1/1 + 1/2) / 2
    assert tie_aware_ap(np.array([2]), np.array([1]))[()] == pytest.approx(0.75)
    # everything tied and relevant: AP = 1
    assert tie_aware_ap(np.array([[5, 0]]), np.array([[5, 0]]))[0] == pytest.approx(1.0)
    assert tie_aware_ap(np.array([3]), np.array([0]))[()] == 0.0


# --------------------------------------------------------------------------- edge cases and properties


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_relevant_gives_one(backend):
    q, db, _, _ = random_case(1, 5, 30, 8)
    got = evaluate(q, db, np.ones((5, 3)), np.ones((30, 3)), topk=(10,), radius=(0, 8), backend=backend)
    for key in ("map", "map_tie", "map@10", "precision@10", "chance", "hamming_precision@8", "hamming_recall@8"):
        assert got[key] == pytest.approx(1.0, abs=1e-12)
    assert got["recall@10"] == pytest.approx(10 / 30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_database_item(backend):
    got = evaluate(
        np.array([[1, -1], [1, 1]]), np.array([[1, 1]]), np.array([[1], [0]]), np.array([[1]]), backend=backend
    )
    assert got["map"] == got["map_tie"] == got["map@100"] == got["precision@100"] == got["recall@50"] == 1.0
    assert got["num_queries"] == 2 and got["num_queries_no_relevant"] == 1 and got["db_size"] == 1
    assert got["topk_curve"] == {"k": [1], "precision": [1.0], "recall": [1.0]}


def test_zeros_in_codes_count_as_plus_one():
    q, db, ql, dl = random_case(4, 6, 25, 6, real=True)
    q[:, :3] = 0.0
    db[::2, 2:5] = 0.0
    got = evaluate(q, db, ql, dl)
    assert got == evaluate(np.where(q == 0, 1, np.sign(q)), np.where(db == 0, 1, np.sign(db)), ql, dl)
    assert got["map"] == pytest.approx(naive_metrics(q, db, ql, dl)["map"], abs=1e-12)
    minus = evaluate(np.where(q == 0, -1, np.sign(q)), np.where(db == 0, -1, np.sign(db)), ql, dl)
    assert got["map"] != minus["map"]  # the convention matters for these codes


def test_map_tie_invariant_to_database_permutation():
    q, db, ql, dl = random_case(6, 8, 50, 4)
    perm = np.random.default_rng(0).permutation(50)
    a, b = evaluate(q, db, ql, dl), evaluate(q, db[perm], ql, dl[perm])
    assert a["map_tie"] == pytest.approx(b["map_tie"], abs=1e-12)
    assert a["chance"] == pytest.approx(b["chance"], abs=1e-15)
    assert a["hamming_precision@2"] == pytest.approx(b["hamming_precision@2"], abs=1e-15)  # no rank involved
    assert a["map"] != b["map"]  # the index tie order does depend on it


def test_k_beyond_database_size():
    q, db, ql, dl = random_case(7, 10, 40, 5)
    got = evaluate(q, db, ql, dl, topk=(40, 1000))
    for k in (40, 1000):
        assert got[f"map@{k}"] == pytest.approx(got["map"], abs=1e-12)
        assert got[f"precision@{k}"] == pytest.approx(got["chance"], abs=1e-15)
        assert got[f"recall@{k}"] == pytest.approx(1.0, abs=1e-15)
    assert evaluate(q, db, ql, dl, topk=1000, curve_k=(5, 1000))["topk_curve"]["recall"][-1] == pytest.approx(1.0)


def test_inputs_forms_chunks_and_threads_agree():
    q, db, ql, dl = random_case(8, 23, 61, 70, classes=5)
    ref = evaluate(q, db, ql, dl, chunk_size=1, num_threads=1)
    assert evaluate(q, db, ql, dl, chunk_size=5, num_threads=3) == ref
    assert evaluate(pack(q), pack(db), ql, dl, bits=70) == ref
    tensors = (torch.from_numpy(q).float(), torch.from_numpy(db), torch.from_numpy(ql), torch.from_numpy(dl))
    assert evaluate(*tensors) == ref
    on_torch = evaluate(*tensors, backend="torch", device="cpu", chunk_size=4, zero_relevant="zero")
    want = evaluate(q, db, ql, dl, backend="counting", zero_relevant="zero")
    assert on_torch.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert on_torch[key] == pytest.approx(value, abs=1e-12), key
    assert evaluate(q, db, ql, dl, memory_budget=1) == ref  # budget below one row still works (one query per chunk)
    assert evaluate(q, db, ql, dl, topk=[100, 50, 1000, 5000, 100], radius=np.int64(2)) == ref  # order, repeats


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_inputs(backend):
    arrays = random_case(16, 4, 20, 8)
    for a in arrays:
        a.flags.writeable = False
    assert evaluate(*arrays, backend=backend)["map"] == pytest.approx(naive_metrics(*arrays)["map"], abs=1e-12)


def test_class_id_labels_equal_one_hot():
    q, db, _, _ = random_case(9, 6, 20, 8)
    rng = np.random.default_rng(0)
    cq, cd = rng.integers(0, 3, 6), rng.integers(0, 3, 20)
    assert evaluate(q, db, cq, cd) == evaluate(q, db, np.eye(3)[cq], np.eye(3)[cd])


@pytest.mark.parametrize("classes", [5, 64, 70, 3000])
@pytest.mark.parametrize("bits", [16, 64, 100, 130])
def test_backends_agree_on_multi_word_codes_and_labels(bits, classes):
    """Codes and label sets over several 64-bit words (beyond 64 classes the numpy backends use a
    label product), an odd query count (the compiled kernel walks queries in pairs), cut-offs on
    and around distance-group boundaries and beyond M, many curve points."""
    q, db, ql, dl = random_case(bits + classes, 7, 150, bits, classes=classes, p_label=min(0.3, 4 / classes))
    db[40:60] = db[0]  # a block of identical codes: one large tie group per query
    dist = np.array(_naive_dist_rel(q[:1], db, ql[:1], dl)[0][0])
    boundary = int((dist <= np.sort(dist)[30]).sum())  # rank where query 0's group ends
    topk = (1, boundary - 1, boundary, boundary + 1, 149, 150, 400)
    radius, curve = (0, 2, bits // 2, bits), tuple(range(1, 160, 3))
    ref = evaluate(q, db, ql, dl, topk=topk, radius=radius, curve_k=curve, backend="counting")
    want = naive_metrics(q, db, ql, dl, topk, radius, curve)
    assert_matches_naive(ref, want, [k for k in want if not k.startswith(("pr_", "curve_", "num_"))], bits)
    for backend in ("numba", "argsort", "torch"):
        got = evaluate(q, db, ql, dl, topk=topk, radius=radius, curve_k=curve, backend=backend, chunk_size=3)
        assert got.keys() == ref.keys()
        for key, value in ref.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, abs=1e-12), (backend, key)
            elif key == "topk_curve":
                for name in ("precision", "recall"):
                    assert np.allclose(got[key][name], value[name], atol=1e-12), (backend, key)
            else:
                assert got[key] == value, (backend, key)


def test_numba_results_do_not_depend_on_chunks_or_threads():
    q, db, ql, dl = random_case(21, 13, 300, 32, classes=6)
    ref = evaluate(q, db, ql, dl, backend="numba", chunk_size=1, num_threads=1)
    for chunk, threads in [(2, 2), (5, 3), (13, 1), (None, None)]:
        assert evaluate(q, db, ql, dl, backend="numba", chunk_size=chunk, num_threads=threads) == ref


def test_without_numba_auto_falls_back_to_the_numpy_path(monkeypatch):
    from nrchbench.metrics import backends

    q, db, ql, dl = random_case(22, 6, 50, 16)
    ref = evaluate(q, db, ql, dl, backend="counting")
    monkeypatch.setattr(backends, "_numba_kernel", False)  # as if numba failed to import
    assert evaluate(q, db, ql, dl) == ref
    with pytest.raises(ConfigError, match="numba"):
        evaluate(q, db, ql, dl, backend="numba")


def test_bad_inputs_say_what_is_wrong():
    q, db, ql, dl = random_case(11, 3, 5, 4)
    cases = [
        (dict(query_codes=q, db_codes=db[:, :3]), "bits"),
        (dict(query_codes=(q > 0).astype(np.uint8)), "uint8"),
        (dict(query_codes=pack(q), db_codes=pack(db)), "bits="),
        (dict(query_labels=ql[:2]), "shapes disagree"),
        (dict(query_codes=q[:, :0], db_codes=db[:, :0]), "0 bits"),
        (dict(backend="magic"), "backend"),
        (dict(zero_relevant="drop"), "zero_relevant='drop': expected one of exclude, zero"),
        (dict(topk=(10, 0)), "topk"),
        (dict(topk=(True,)), "topk"),
        (dict(topk=(2.5,)), "topk"),
        (dict(radius=-1), "radius"),
        (dict(curve_k=(0,)), "curve_k"),
    ]
    for kwargs, match in cases:
        args = dict(query_codes=q, db_codes=db, query_labels=ql, db_labels=dl) | kwargs
        with pytest.raises(ConfigError, match=match):
            evaluate(**args)


def test_metric_metadata():
    assert METRICS["map"].higher_is_better is True and METRICS["map"].range == (0.0, 1.0)
    assert {"map@<k>", "precision@<k>", "recall@<k>", "hamming_precision@<r>", "hamming_recall@<r>"} <= set(METRICS)
    info = metric_info("map@50")
    assert info.key == "map@50" and info.higher_is_better is True and info.range == (0.0, 1.0)
    assert metric_info("recall@5000").higher_is_better is True
    assert metric_info("hamming_precision@0").key == "hamming_precision@0"
    assert metric_info("hamming_recall@2").range == (0.0, 1.0)
    assert metric_info("num_queries").higher_is_better is None and math.isinf(metric_info("db_size").range[1])
    with pytest.raises(RegistryError, match="did you mean map_tie"):
        metric_info("map_ties")
    for bad in ("map@0", "recall@x", "hamming_precision@-1", "mrr@5", "map@<k>x"):
        with pytest.raises(RegistryError):
            metric_info(bad)
    got = evaluate(*random_case(0, 2, 5, 4), radius=(0, 2))
    for key, value in got.items():
        if isinstance(value, dict):
            continue
        lo, hi = metric_info(key).range
        assert lo <= value <= hi, key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_give_the_cpu_numbers():
    q, db, ql, dl = random_case(12, 40, 300, 16, classes=6)
    ref = evaluate(q, db, ql, dl, topk=(10, 1000), zero_relevant="zero")
    dev = torch.device("cuda")
    qt, dbt = torch.from_numpy(q).to(dev), torch.from_numpy(db).to(dev)
    got = evaluate(qt, dbt, ql, dl, topk=(10, 1000), zero_relevant="zero", chunk_size=7)
    for key, value in ref.items():
        if isinstance(value, dict):
            assert np.allclose(got[key]["precision"], value["precision"], atol=1e-12)
            assert np.allclose(got[key]["recall"], value["recall"], atol=1e-12)
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key
    d = hamming_matmul(qt, dbt, dtype=torch.float16).cpu().numpy()
    assert np.array_equal(d, hamming(pack(q), pack(db)))


def test_cross_modal_directions_options_and_saved_codes(tmp_path):
    qi, di, ql, dl = random_case(13, 7, 30, 16)
    qt, dt, _, _ = random_case(14, 7, 30, 16)
    ql[1] = 0
    save_codes(
        tmp_path / "c.npz", query_image=qi, query_text=qt, db_image=di, db_text=dt, query_labels=ql, db_labels=dl
    )
    res = evaluate_cross_modal(**load_codes(tmp_path / "c.npz"))
    assert res["i2t"] == evaluate(qi, dt, ql, dl) and res["t2i"] == evaluate(qt, di, ql, dl)
    assert res["avg"]["map"] == pytest.approx((res["i2t"]["map"] + res["t2i"]["map"]) / 2)
    assert "pr_curve" not in res["avg"] and "topk_curve" not in res["avg"] and "recall@50" in res["avg"]
    opts = dict(topk=(5,), radius=(1,), curve_k=(3,), zero_relevant="zero", backend="counting")
    zero = evaluate_cross_modal(**load_codes(tmp_path / "c.npz"), **opts)
    assert zero["t2i"] == evaluate(qt, di, ql, dl, **opts)
    assert "map@5" in zero["avg"] and "map@50" not in zero["avg"] and "hamming_recall@1" in zero["avg"]


# --------------------------------------------------------------------------- codes files and the CLI


def _truncated_and_corrupt(tmp_path):
    """A valid codes file cut short, one with a flipped byte inside, and others that are not codes
    files in different ways."""
    q, db, ql, dl = random_case(0, 5, 40, 70, real=True)
    good = tmp_path / "good.npz"
    save_codes(good, query_image=q, db_text=db, query_labels=ql, db_labels=dl)
    raw = good.read_bytes()
    files = {"truncated.npz": raw[: len(raw) // 2], "empty.npz": b"", "text.npz": b"nope"}
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF  # inside a compressed member: CRC / zlib error on read
    files["flipped.npz"] = bytes(flipped)
    no_bits = tmp_path / "nobits.npz"
    np.savez(no_bits, __format__=np.array("nrchbench-codes-v1"), query_image=pack(q))
    files["nobits.npz"] = no_bits.read_bytes()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


def test_load_codes_on_truncated_or_corrupt_files_names_the_file(tmp_path):
    for path in _truncated_and_corrupt(tmp_path):
        with pytest.raises(DataError, match=re.escape(str(path))) as err:
            load_codes(path)
        assert "\n" not in str(err.value) and "--save-codes" in str(err.value), path
    with pytest.raises(DataError, match=r"missing\.npz"):
        load_codes(tmp_path / "missing.npz")


def test_cli_evaluate_policy_and_broken_codes(tmp_path):
    """``nrchbench evaluate RUN --zero-relevant`` recomputes from saved codes; a truncated codes
    file gives one line naming it (exit 2), never a traceback."""
    from click.testing import CliRunner
    from conftest import SMALL, TOY, forget_toy_plugins

    from nrchbench.cli import main

    def invoke(*args):
        return CliRunner().invoke(main, list(args))

    d_opts = [x for k, v in SMALL.items() for x in ("-d", f"{k}={v}")]
    try:
        res = invoke("run", "--plugin", TOY, "--method", "toy-linear", "--bits", "16", "--preset", "tiny",
                     "--device", "cpu", *d_opts, "--out", str(tmp_path), "--json", "--save-codes")  # fmt: skip
    finally:
        forget_toy_plugins()
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    codes = next(tmp_path.rglob(rec["codes"]))
    saved = load_codes(codes)
    res = invoke("evaluate", rec["run_id"], "--results", str(tmp_path), "--json", "--zero-relevant", "zero")
    assert res.exit_code == 0, res.output
    want = evaluate_cross_modal(**saved, zero_relevant="zero")
    assert json.loads(res.stdout) == json.loads(json.dumps(want))
    res = invoke("evaluate", rec["run_id"], "--results", str(tmp_path), "--json", "--zero-relevant", "exclude")
    assert json.loads(res.stdout) == rec["metrics"]
    res = invoke("evaluate", rec["run_id"], "--results", str(tmp_path), "--write", "--zero-relevant", "zero")
    assert res.exit_code == 2 and "--write" in res.output and "exclude" in res.output
    res = invoke("evaluate", rec["run_id"], "--results", str(tmp_path), "--zero-relevant", "none")
    assert res.exit_code == 2 and "none" in res.output
    codes.write_bytes(codes.read_bytes()[:200])
    res = invoke("evaluate", rec["run_id"], "--results", str(tmp_path))
    assert res.exit_code == 2, res.output
    assert str(codes.name) in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
