"""Retrieval metrics: oracle tests against naive pure-Python loops, edge cases and properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nrchbench.errors import ConfigError, DataError, RegistryError
from nrchbench.metrics import (
    METRICS,
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
    rel = [
        [any(a > 0 and b > 0 for a, b in zip(x, y)) for y in np.asarray(dl).tolist()] for x in np.asarray(ql).tolist()
    ]
    return dist, rel


def _ap(rel_in_order, k=None):
    """AP over the given ranked relevance list (truncated at k: normalised by hits in the top k)."""
    hits, s = 0, 0.0
    for pos, r in enumerate(rel_in_order[:k] if k else rel_in_order, start=1):
        if r:
            hits += 1
            s += hits / pos
    return s / hits if hits else 0.0


def naive_metrics(q, db, ql, dl, topk=(), precision_k=()):
    dist, rel = _naive_dist_rel(q, db, ql, dl)
    m, bits = len(dist[0]), np.asarray(q).shape[1]
    out = {"map": [], "chance": []} | {f"map@{k}": [] for k in topk} | {f"precision@{k}": [] for k in precision_k}
    skipped = 0
    prec, rec = [[] for _ in range(bits + 1)], [[] for _ in range(bits + 1)]
    for d, r in zip(dist, rel):
        big_r = sum(r)
        if big_r == 0:
            skipped += 1
            continue
        ranked = [r[j] for j in sorted(range(m), key=lambda j: (d[j], j))]
        out["map"].append(_ap(ranked))
        out["chance"].append(big_r / m)
        for k in topk:
            out[f"map@{k}"].append(_ap(ranked, k))
        for k in precision_k:
            out[f"precision@{k}"].append(sum(ranked[:k]) / min(k, m))
        for rad in range(bits + 1):
            got = [r[j] for j in range(m) if d[j] <= rad]
            if got:
                prec[rad].append(sum(got) / len(got))
            rec[rad].append(sum(got) / big_r)
    res = {k: (sum(v) / len(v) if v else None) for k, v in out.items()}
    res["num_queries_no_relevant"] = skipped
    res["pr_precision"] = [sum(p) / len(p) if p else 0.0 for p in prec]
    res["pr_recall"] = [sum(x) / len(x) if x else 0.0 for x in rec]
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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_matches_naive_oracle_with_heavy_ties(backend, bits):
    q, db, ql, dl = random_case(bits, 9, 37, bits, p_label=0.25)
    ql[0] = 0  # a query without any relevant item
    topk, pk = (1, 5, 20, 50), (3, 40)
    got = evaluate(q, db, ql, dl, topk=topk, precision_k=pk, backend=backend, chunk_size=4)
    want = naive_metrics(q, db, ql, dl, topk, pk)
    assert got["num_queries"] == 9 and got["num_queries_no_relevant"] == want["num_queries_no_relevant"] >= 1
    assert got["bits"] == bits and got["db_size"] == 37
    for key in ["map", "chance"] + [f"map@{k}" for k in topk] + [f"precision@{k}" for k in pk]:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["pr_curve"]["radius"] == list(range(bits + 1))
    assert np.allclose(got["pr_curve"]["precision"], want["pr_precision"], atol=1e-12)
    assert np.allclose(got["pr_curve"]["recall"], want["pr_recall"], atol=1e-12)
    assert got["pr_curve"]["recall"][-1] == pytest.approx(1.0)


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
    got = evaluate(q, db, np.ones((5, 3)), np.ones((30, 3)), topk=(10,), precision_k=(10,), backend=backend)
    for key in ("map", "map_tie", "map@10", "precision@10", "chance"):
        assert got[key] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_database_item(backend):
    got = evaluate(
        np.array([[1, -1], [1, 1]]), np.array([[1, 1]]), np.array([[1], [0]]), np.array([[1]]), backend=backend
    )
    assert got["map"] == got["map_tie"] == got["map@100"] == got["precision@100"] == 1.0
    assert got["num_queries"] == 2 and got["num_queries_no_relevant"] == 1 and got["db_size"] == 1


def test_no_query_has_a_relevant_item():
    q, db, _, _ = random_case(2, 3, 10, 4)
    got = evaluate(q, db, np.zeros((3, 2)), np.ones((10, 2)))
    assert got["map"] is None and got["map_tie"] is None and got["num_queries_no_relevant"] == 3


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
    assert a["map"] != b["map"]  # the index tie order does depend on it


def test_map_at_k_beyond_database_equals_map():
    q, db, ql, dl = random_case(7, 10, 40, 5)
    got = evaluate(q, db, ql, dl, topk=(40, 1000))
    assert got["map@40"] == pytest.approx(got["map"], abs=1e-12)
    assert got["map@1000"] == pytest.approx(got["map"], abs=1e-12)


def test_inputs_forms_chunks_and_threads_agree():
    q, db, ql, dl = random_case(8, 23, 61, 70, classes=5)
    ref = evaluate(q, db, ql, dl, chunk_size=1, num_threads=1)
    assert evaluate(q, db, ql, dl, chunk_size=5, num_threads=3) == ref
    assert evaluate(pack(q), pack(db), ql, dl, bits=70) == ref
    got = evaluate(torch.from_numpy(q).float(), torch.from_numpy(db), torch.from_numpy(ql), torch.from_numpy(dl))
    assert got == ref
    assert evaluate(q, db, ql, dl, memory_budget=1) == ref  # budget below one row still works (one query per chunk)


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


def test_many_classes_use_the_separate_relevance_product():
    q, db, ql, dl = random_case(10, 5, 30, 16, classes=3000, p_label=0.002)
    got = evaluate(q, db, ql, dl, topk=(7,), precision_k=(7,))
    want = naive_metrics(q, db, ql, dl, (7,), (7,))
    for key in ("map", "map@7", "precision@7", "chance"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)


@pytest.mark.parametrize("classes", [5, 64, 70, 3000])
@pytest.mark.parametrize("bits", [16, 64, 100, 130])
def test_backends_agree_on_multi_word_codes_and_labels(bits, classes):
    """Codes and label sets over several 64-bit words, an odd query count (the compiled kernel
    walks queries in pairs), cut-offs on and around distance-group boundaries and beyond M."""
    q, db, ql, dl = random_case(bits + classes, 7, 150, bits, classes=classes, p_label=min(0.3, 4 / classes))
    db[40:60] = db[0]  # a block of identical codes: one large tie group per query
    dist = np.array(_naive_dist_rel(q[:1], db, ql[:1], dl)[0][0])
    boundary = int((dist <= np.sort(dist)[30]).sum())  # rank where query 0's group ends
    topk = (1, boundary, boundary + 1, 150, 400)
    pk = (boundary - 1, boundary, 149, 1000)
    ref = evaluate(q, db, ql, dl, topk=topk, precision_k=pk, backend="counting")
    want = naive_metrics(q, db, ql, dl, topk, pk)
    for backend in ("numba", "argsort", "torch"):
        got = evaluate(q, db, ql, dl, topk=topk, precision_k=pk, backend=backend, chunk_size=3)
        assert got.keys() == ref.keys()
        for key, value in ref.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, abs=1e-12), (backend, key)
                if key in want:
                    assert value == pytest.approx(want[key], abs=1e-12), key
            else:
                assert got[key] == value, (backend, key)


def test_numba_results_do_not_depend_on_chunks_or_threads():
    q, db, ql, dl = random_case(21, 13, 300, 32, classes=6)
    ref = evaluate(q, db, ql, dl, backend="numba", chunk_size=1, num_threads=1)
    for chunk, threads in [(2, 2), (5, 3), (13, 1), (None, None)]:
        assert evaluate(q, db, ql, dl, backend="numba", chunk_size=chunk, num_threads=threads) == ref


def test_without_numba_auto_falls_back_to_the_numpy_path(monkeypatch):
    from nrchbench.metrics import ranking

    q, db, ql, dl = random_case(22, 6, 50, 16)
    ref = evaluate(q, db, ql, dl, backend="counting")
    monkeypatch.setattr(ranking, "_numba_kernel", False)  # as if numba failed to import
    assert evaluate(q, db, ql, dl) == ref
    with pytest.raises(ConfigError, match="numba"):
        evaluate(q, db, ql, dl, backend="numba")


def test_bad_inputs_say_what_is_wrong():
    q, db, ql, dl = random_case(11, 3, 5, 4)
    with pytest.raises(ConfigError, match="bits"):
        evaluate(q, db[:, :3], ql, dl)
    with pytest.raises(ConfigError, match="uint8"):
        evaluate((q > 0).astype(np.uint8), db, ql, dl)
    with pytest.raises(ConfigError, match="bits="):
        evaluate(pack(q), pack(db), ql, dl)
    with pytest.raises(ConfigError, match="shapes disagree"):
        evaluate(q, db, ql[:2], dl)
    with pytest.raises(ConfigError, match="backend"):
        evaluate(q, db, ql, dl, backend="magic")
    with pytest.raises(ConfigError, match="0 bits"):
        evaluate(q[:, :0], db[:, :0], ql, dl)


def test_metric_metadata():
    assert METRICS["map"].higher_is_better is True and METRICS["map"].range == (0.0, 1.0)
    info = metric_info("map@100")
    assert info.key == "map@100" and info.higher_is_better is True
    assert metric_info("precision@1000").range == (0.0, 1.0)
    assert metric_info("num_queries").higher_is_better is None and math.isinf(metric_info("db_size").range[1])
    with pytest.raises(RegistryError, match="did you mean map_tie"):
        metric_info("map_ties")
    with pytest.raises(RegistryError):
        metric_info("recall@5")
    scalar = {k for k, v in evaluate(*random_case(0, 2, 5, 4)).items() if not isinstance(v, dict)}
    for key in scalar:
        metric_info(key)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_give_the_cpu_numbers():
    q, db, ql, dl = random_case(12, 40, 300, 16, classes=6)
    ref = evaluate(q, db, ql, dl, topk=(10, 1000), precision_k=(10,))
    dev = torch.device("cuda")
    qt, dbt = torch.from_numpy(q).to(dev), torch.from_numpy(db).to(dev)
    got = evaluate(qt, dbt, ql, dl, topk=(10, 1000), precision_k=(10,), chunk_size=7)
    for key, value in ref.items():
        if isinstance(value, dict):
            assert np.allclose(got[key]["precision"], value["precision"], atol=1e-12)
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key
    d = hamming_matmul(qt, dbt, dtype=torch.float16).cpu().numpy()
    assert np.array_equal(d, hamming(pack(q), pack(db)))


def test_cross_modal_directions_and_saved_codes(tmp_path):
    qi, di, ql, dl = random_case(13, 7, 30, 16)
    qt, dt, _, _ = random_case(14, 7, 30, 16)
    save_codes(
        tmp_path / "c.npz", query_image=qi, query_text=qt, db_image=di, db_text=dt, query_labels=ql, db_labels=dl
    )
    res = evaluate_cross_modal(**load_codes(tmp_path / "c.npz"))
    assert res["i2t"] == evaluate(qi, dt, ql, dl) and res["t2i"] == evaluate(qt, di, ql, dl)
    assert res["avg"]["map"] == pytest.approx((res["i2t"]["map"] + res["t2i"]["map"]) / 2)
    assert "pr_curve" not in res["avg"]
