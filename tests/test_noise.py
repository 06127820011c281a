"""Noise models: oracle tests against naive per-sample loops, guarantees, validation, golden."""

from __future__ import annotations

import hashlib
import json
import math
from itertools import combinations, pairwise

import numpy as np
import pytest

from nrchbench.errors import ConfigError, DataError, RegistryError
from nrchbench.noise import NOISE, NoisyLabels, apply, base, models
from nrchbench.noise import report as noise_report
from nrchbench.params import Params

BUILTIN = ("nrch", "symmetric", "asymmetric", "bitflip")
SAMPLE_LEVEL = ("nrch", "symmetric", "asymmetric")
RATES = (0.2, 0.5, 0.8)


# ---------------------------------------------------------------------------- data
def multi_label(n: int, c: int, p: float = 0.3, seed: int = 0) -> np.ndarray:
    """Random multi-label rows, each with at least one positive and one negative."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < p).astype(np.uint8)
    y[np.arange(n), rng.integers(0, c, n)] = 1
    y[np.arange(n), (np.argmax(y, 1) + 1 + rng.integers(0, c - 1, n)) % c] = 0
    assert ((y.sum(1) >= 1) & (y.sum(1) < c)).all()
    return y


def single_label(n: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.eye(c, dtype=np.uint8)[rng.integers(0, c, n)]


DATA = {
    "single": lambda: single_label(300, 7, seed=1),
    "multi": lambda: multi_label(300, 9, seed=2),
}


def mirflickr_train(shared_data, file: str, var: str, width: int) -> np.ndarray:
    """Rows 2000:12000 (the nrch split's train rows) of a real MIRFlickr-25K matrix; skips if absent."""
    from scipy.io import loadmat

    path = shared_data / "mirflickr" / file
    if not path.is_file():
        pytest.skip(f"{path} not found")
    full = loadmat(path)[var]
    assert full.shape == (20015, width)
    return np.ascontiguousarray(full[2000:12000], dtype=np.uint8)


@pytest.fixture(scope="module")
def mirflickr(shared_data) -> np.ndarray:
    """The real MIRFlickr-25K train labels LAll (10000×24)."""
    return mirflickr_train(shared_data, "mirflickr25k-lall.mat", "LAll", 24)


@pytest.fixture(scope="module")
def mirflickr_text(shared_data) -> np.ndarray:
    """The real MIRFlickr binary tag vectors YAll of the train rows (10000×1386)."""
    return mirflickr_train(shared_data, "mirflickr25k-yall.mat", "YAll", 1386)


# ---------------------------------------------------------------------------- naive oracles
def naive_order(y: np.ndarray, seed: int, eligible: np.ndarray) -> list[int]:
    keys = np.random.default_rng([seed, 0]).random(y.shape[0])
    return sorted((i for i in range(y.shape[0]) if eligible[i]), key=lambda i: (keys[i], i))


def naive_nrch(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    n, c = y.shape
    elig = [0 < sum(r) < c for r in y.tolist()]
    m = math.floor(rate * n + 1e-9)
    chosen = naive_order(y, seed, np.array(elig))[:m]
    u = np.random.default_rng([seed, 1]).random((m, c))
    out = y.copy()
    for p, i in enumerate(chosen):
        pos = [j for j in range(c) if y[i, j]]
        neg = [j for j in range(c) if not y[i, j]]
        out[i, max(pos, key=lambda j: u[p, j])] = 0
        out[i, max(neg, key=lambda j: u[p, j])] = 1
    return out


def naive_symmetric(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    n, c = y.shape
    elig = [0 < sum(r) < c for r in y.tolist()]
    m_total = math.floor(rate * n + 1e-9)
    chosen = naive_order(y, seed, np.array(elig))[:m_total]
    u = np.random.default_rng([seed, 1]).random((m_total, c + 1))
    out = y.copy()
    for p, i in enumerate(chosen):
        pos = [j for j in range(c) if y[i, j]]
        neg = [j for j in range(c) if not y[i, j]]
        k = len(pos)
        weights = [math.comb(k, m) * math.comb(c - k, k - m) for m in range(k)]
        cum, m = 0, 0
        for m in range(k):
            cum += weights[m]
            if u[p, 0] < cum / sum(weights):
                break
        keep = sorted(pos, key=lambda j: u[p, 1 + j])[:m] + sorted(neg, key=lambda j: u[p, 1 + j])[: k - m]
        out[i] = 0
        out[i, keep] = 1
    return out


def naive_asymmetric(y: np.ndarray, rate: float, seed: int, perm: list[int]) -> np.ndarray:
    n, c = y.shape

    def mapped(row):
        new = [0] * c
        for j in range(c):
            if row[j]:
                new[perm[j]] = 1
        return new

    elig = [mapped(r) != list(r) for r in y.tolist()]
    chosen = naive_order(y, seed, np.array(elig))[: math.floor(rate * n + 1e-9)]
    out = y.copy()
    for i in chosen:
        out[i] = mapped(y[i].tolist())
    return out


def naive_bitflip(y: np.ndarray, rho_pos: float, rho_neg: float, seed: int) -> np.ndarray:
    u = np.random.default_rng([seed, 1]).random(y.shape)
    out = y.copy()
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            if u[i, j] < (rho_pos if y[i, j] else rho_neg):
                out[i, j] = 1 - y[i, j]
    return out


def naive_oracle(name: str, y: np.ndarray, rate: float, seed: int, out: NoisyLabels) -> np.ndarray:
    if name == "nrch":
        return naive_nrch(y, rate, seed)
    if name == "symmetric":
        return naive_symmetric(y, rate, seed)
    if name == "asymmetric":
        return naive_asymmetric(y, rate, seed, out.report["params"]["permutation"])
    return naive_bitflip(y, rate, out.report["params"]["rho_neg"], seed)


def naive_pairs_changed(clean: np.ndarray, noisy: np.ndarray) -> float:
    n = clean.shape[0]
    changed = 0
    for i, j in combinations(range(n), 2):
        s_clean = any(a and b for a, b in zip(clean[i], clean[j]))
        s_noisy = any(a and b for a, b in zip(noisy[i], noisy[j]))
        changed += s_clean != s_noisy
    return changed / (n * (n - 1) / 2)


def dense_pairs_changed(clean: np.ndarray, noisy: np.ndarray) -> float:
    yc, yn = clean.astype(np.float32), noisy.astype(np.float32)
    d = ((yc @ yc.T) > 0) != ((yn @ yn.T) > 0)
    n = clean.shape[0]
    return float(np.triu(d, 1).sum() / (n * (n - 1) / 2))


def check_guarantees(name: str, y: np.ndarray, rate: float, seed: int = 0) -> NoisyLabels:
    out = apply(name, y, rate, seed)
    n = y.shape[0]
    assert out.labels.dtype == np.uint8 and out.labels.shape == y.shape
    assert set(np.unique(out.labels)) <= {0, 1}
    differs = (out.labels != y).any(1)
    np.testing.assert_array_equal(out.clean_mask, ~differs)
    np.testing.assert_array_equal(out.corrupted, differs)  # every corrupted sample differs
    if name in SAMPLE_LEVEL:
        assert out.corrupted.sum() == math.floor(rate * n + 1e-9)
        assert out.report["frac_samples_corrupted"] == out.corrupted.sum() / n
    rep = out.report
    assert rep["frac_entries_flipped"] == pytest.approx((out.labels != y).mean(), abs=0, rel=1e-12)
    assert rep["cardinality_clean_mean"] == pytest.approx(y.sum(1).mean())
    assert rep["cardinality_noisy_mean"] == pytest.approx(out.labels.sum(1).mean())
    json.dumps(rep, allow_nan=False)
    return out


# ---------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", NOISE.names())
def test_registered_model_contract(name):
    cls = NOISE.get(name)
    assert cls.description and cls.unit in ("sample", "entry") and issubclass(cls.Params, Params)
    assert cls.corrupts in ("labels", "pairs") and isinstance(cls.needs_features, bool)
    y = multi_label(40, 6)
    feats = (np.random.default_rng(0).random((40, 5)), None) if cls.needs_features else None
    params = {"modality": "image"} if cls.needs_features else {}
    out = apply(name, y, 0.25, 3, features=feats, **params)
    assert (out.text_index is not None) == (cls.corrupts == "pairs")
    for key in (
        "model", "rate", "seed", "params", "unit", "n_samples", "n_classes", "frac_samples_corrupted",
        "frac_entries_flipped", "frac_pairs_changed", "pairs_estimated", "cardinality_clean_mean",
        "cardinality_noisy_mean",
    ):  # fmt: skip
        assert key in out.report, key
    assert out.report["model"] == name and out.report["seed"] == 3 and out.report["rate"] == 0.25
    json.dumps(out.report, allow_nan=False)


def test_plugin_sample_model_gets_the_guarantees():
    class DropOne(base.SampleNoiseModel):
        """Test plugin: turn one random positive off."""

        name = "test-drop-one"
        description = "test plugin"

        def eligible(self, y, state):
            return y.sum(1) >= 2

        def width(self, n_classes):
            return n_classes

        def corrupt(self, rows, draws, state):
            out = rows.copy()
            out[np.arange(len(rows)), np.where(rows == 1, draws, -1).argmax(1)] = 0
            return out

    NOISE.register("test-drop-one", DropOne)
    try:
        y = multi_label(200, 8, seed=1)
        outs = [apply("test-drop-one", y, r, 4) for r in RATES]
        assert [o.n_corrupted for o in outs] == [40, 100, 160]
        assert not (outs[0].corrupted & ~outs[1].corrupted).any()
        both = outs[0].corrupted & outs[1].corrupted
        np.testing.assert_array_equal(outs[0].labels[both], outs[1].labels[both])
        assert outs[0].report["model"] == "test-drop-one"
    finally:
        NOISE.unregister("test-drop-one")


def test_builtins_registered_from_entry_points():
    assert {NOISE.canonical(b) for b in BUILTIN} <= set(NOISE.names())  # "nrch" is now an alias of "one-swap"
    assert NOISE.get("nrch") is models.NRCHNoise
    assert NOISE.get("bitflip").unit == "entry"


# ---------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("kind", sorted(DATA))
@pytest.mark.parametrize("name", BUILTIN)
def test_matches_naive_oracle(name, kind):
    y = DATA[kind]()
    for rate, seed in ((0.2, 0), (0.5, 7), (0.8, 11)):
        out = check_guarantees(name, y, rate, seed)
        np.testing.assert_array_equal(out.labels, naive_oracle(name, y, rate, seed, out))


@pytest.mark.parametrize("name", BUILTIN)
def test_report_matches_brute_force(name):
    y = multi_label(70, 6, seed=5)
    out = apply(name, y, 0.5, 2)
    assert out.report["pairs_estimated"] is False
    assert out.report["frac_pairs_changed"] == pytest.approx(naive_pairs_changed(y, out.labels), rel=1e-12)
    flips = sum(int(a != b) for r1, r2 in zip(y.tolist(), out.labels.tolist()) for a, b in zip(r1, r2))
    assert out.report["frac_entries_flipped"] == pytest.approx(flips / y.size, rel=1e-12)


def test_pairs_with_emptied_and_last_rows():
    y = multi_label(50, 4, seed=9)
    noisy = y.copy()
    noisy[[0, 17, 49]] = 0  # emptied rows, including the last one
    noisy[3] = 1
    changed = (noisy != y).any(1)
    got = base.pairs_changed(y, noisy, changed, 0)["frac_pairs_changed"]
    assert got == pytest.approx(naive_pairs_changed(y, noisy), rel=1e-12)


def test_pairs_estimate_for_large_n(monkeypatch):
    y = multi_label(600, 8, seed=4)
    out = apply("symmetric", y, 0.5, 0)
    exact = out.report["frac_pairs_changed"]
    assert exact == pytest.approx(dense_pairs_changed(y, out.labels), rel=1e-12)
    monkeypatch.setattr(noise_report, "EXACT_PAIRS_MAX_N", 100)
    monkeypatch.setattr(noise_report, "PAIR_SAMPLES", 200_000)
    est = apply("symmetric", y, 0.5, 0).report
    assert est["pairs_estimated"] is True and est["pairs_sampled"] == 200_000
    assert abs(est["frac_pairs_changed"] - exact) < 5 * est["frac_pairs_changed_se"] + 1e-3


# ---------------------------------------------------------------------------- guarantees
@pytest.mark.parametrize("kind", sorted(DATA))
@pytest.mark.parametrize("name", BUILTIN)
def test_nesting_across_rates(name, kind):
    y = DATA[kind]()
    outs = [check_guarantees(name, y, r, seed=3) for r in RATES]
    for lo, hi in pairwise(outs):
        assert not (lo.corrupted & ~hi.corrupted).any()
        if name in SAMPLE_LEVEL:
            both = lo.corrupted & hi.corrupted
            np.testing.assert_array_equal(lo.labels[both], hi.labels[both])
        else:  # bitflip: flipped entries nest
            assert not ((lo.labels != y) & (hi.labels == y)).any()


@pytest.mark.parametrize("name", BUILTIN)
def test_determinism_and_seed_dependence(name, monkeypatch):
    y = multi_label(500, 12, seed=6)
    a = apply(name, y, 0.5, 42)
    b = apply(name, y.astype(bool), 0.5, 42)  # dtype does not matter
    assert a.labels.tobytes() == b.labels.tobytes() and a.report == b.report
    c = apply(name, y, 0.5, 43)
    assert c.labels.tobytes() != a.labels.tobytes()
    # Row blocking never changes the draws.
    monkeypatch.setattr(base, "CHUNK_ROWS", 7)
    monkeypatch.setattr(models, "CHUNK_ROWS", 7)
    d = apply(name, y, 0.5, 42)
    assert d.labels.tobytes() == a.labels.tobytes()


def test_same_order_shared_by_sample_models():
    y = multi_label(200, 10, seed=8)
    n = apply("nrch", y, 0.3, 5)
    s = apply("symmetric", y, 0.3, 5)
    np.testing.assert_array_equal(n.corrupted, s.corrupted)


def test_rate_zero_and_one():
    y = multi_label(50, 5)
    for name in BUILTIN:
        out = apply(name, y, 0.0, 0)
        assert not out.corrupted.any() and out.report["frac_pairs_changed"] == 0.0
    assert apply("nrch", y, 1.0, 0).corrupted.all()
    assert (apply("bitflip", y, 1.0, 0, rho_neg=0.0).labels == 0).all()


@pytest.mark.parametrize("name", BUILTIN)
def test_tiny_inputs_and_input_untouched(name):
    for n in (0, 1, 2):
        y = np.zeros((n, 4), dtype=np.uint8)
        y[:, 0] = 1
        before = y.copy()
        out = apply(name, y, 1.0, 0)
        np.testing.assert_array_equal(y, before)
        assert out.n_corrupted == n and out.report["n_samples"] == n
        json.dumps(out.report, allow_nan=False)


def test_exact_count_uses_tolerant_floor():
    y = multi_label(100, 5)
    assert apply("nrch", y, 0.29, 0).corrupted.sum() == 29  # 0.29*100 = 28.999999999999996


# ---------------------------------------------------------------------------- model semantics
def test_nrch_flips_one_positive_and_one_negative():
    y = multi_label(400, 10, seed=3)
    out = apply("nrch", y, 0.5, 0)
    d = out.labels.astype(int) - y.astype(int)
    rows = out.corrupted
    assert ((d[rows] == -1).sum(1) == 1).all() and ((d[rows] == 1).sum(1) == 1).all()
    assert (d[~rows] == 0).all()
    np.testing.assert_array_equal(out.labels.sum(1), y.sum(1))
    assert out.report["frac_entries_flipped"] == pytest.approx(2 * 200 / y.size)


def test_symmetric_keeps_cardinality_and_single_label_moves_class():
    y = multi_label(400, 10, seed=3)
    out = apply("symmetric", y, 0.8, 0)
    np.testing.assert_array_equal(out.labels.sum(1), y.sum(1))
    s = single_label(400, 6)
    o = apply("symmetric", s, 0.8, 0)
    assert (o.labels.sum(1) == 1).all()
    assert (o.labels.argmax(1) != s.argmax(1)).sum() == 320


def _chi2(counts: np.ndarray) -> float:
    exp = counts.sum() / counts.size
    return float(((counts - exp) ** 2 / exp).sum())


@pytest.mark.parametrize(
    ("name", "row", "n_outcomes"),
    [("symmetric", [1, 1, 0, 0], 5), ("symmetric", [1, 0, 0, 0, 0], 4), ("nrch", [1, 1, 1, 0, 0], 6)],
)
def test_choices_are_uniform(name, row, n_outcomes):
    y = np.tile(np.array(row, dtype=np.uint8), (6000, 1))
    out = apply(name, y, 1.0, 0)
    _, counts = np.unique(out.labels, axis=0, return_counts=True)
    assert counts.size == n_outcomes
    assert _chi2(counts) < 25.0  # p < 1e-4 under uniformity for ≤ 5 degrees of freedom


def test_asymmetric_applies_involution_and_records_it():
    y = multi_label(300, 7, seed=2)
    out = apply("asymmetric", y, 0.5, 1)
    p = out.report["params"]
    perm = np.array(p["permutation"])
    np.testing.assert_array_equal(perm[perm], np.arange(7))
    assert len(p["fixed_points"]) == 1 and len(p["pairs"]) == 3 and p["mode"] == "random"
    expect = np.zeros_like(y)
    expect[:, perm] = y
    np.testing.assert_array_equal(out.labels[out.corrupted], expect[out.corrupted])
    # Another seed draws another pairing; single-label rows move c → π(c).
    assert apply("asymmetric", y, 0.5, 2).report["params"]["permutation"] != p["permutation"]
    s = single_label(100, 4)
    o = apply("asymmetric", s, 0.5, 0, pairs=[[0, 3], [1, 2]])
    assert o.report["params"]["permutation"] == [3, 2, 1, 0]
    np.testing.assert_array_equal(o.labels.argmax(1)[o.corrupted], 3 - s.argmax(1)[o.corrupted])


def test_asymmetric_given_permutation_and_ineligible_rows():
    y = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0]] * 5, dtype=np.uint8)
    out = apply("asymmetric", y, 0.5, 0, permutation=[1, 0, 3, 2])
    # rows {0,1} and {2,3} are closed under π: ineligible, never corrupted
    assert out.report["n_eligible"] == 10 and not out.corrupted[::2].any()
    with pytest.raises(ConfigError, match="eligible"):
        apply("asymmetric", y, 0.6, 0, permutation=[1, 0, 3, 2])


def test_asymmetric_cooccurrence_pairs_most_cooccurring(mirflickr):
    out = apply("asymmetric", mirflickr, 0.2, 0, mode="cooccurrence")
    p = out.report["params"]
    perm = np.array(p["permutation"])
    np.testing.assert_array_equal(perm[perm], np.arange(24))
    co = mirflickr.T.astype(np.int64) @ mirflickr.astype(np.int64)
    np.fill_diagonal(co, -1)
    a, b = np.unravel_index(np.argmax(co), co.shape)
    assert perm[a] == b
    assert out.report["params"]["mode"] == "cooccurrence"
    # seed-free pairing
    assert apply("asymmetric", mirflickr, 0.2, 1, mode="cooccurrence").report["params"]["permutation"] == list(perm)


def test_bitflip_rates_and_balanced_rho_neg():
    y = multi_label(10000, 20, p=0.15, seed=1)
    out = apply("bitflip", y, 0.3, 0)
    p, rep = out.report["params"], out.report
    k = y.sum(1).mean()
    assert p["rho_pos"] == 0.3 and p["rho_neg"] == pytest.approx(0.3 * k / (20 - k)) and p["rho_neg_rule"] == "balanced"
    assert rep["frac_pos_flipped"] == pytest.approx(0.3, abs=0.01)
    assert rep["frac_neg_flipped"] == pytest.approx(p["rho_neg"], abs=0.005)
    assert rep["cardinality_noisy_mean"] == pytest.approx(k, rel=0.02)  # balanced
    pos = y == 1
    assert ((out.labels != y) & pos).sum() / pos.sum() == pytest.approx(rep["frac_pos_flipped"])
    given = apply("bitflip", y, 0.3, 0, rho_neg=0.0)
    assert given.report["params"]["rho_neg_rule"] == "given" and given.report["frac_neg_flipped"] == 0.0
    emptied = ((given.labels.sum(1) == 0) & (y.sum(1) > 0)).sum()
    assert emptied > 0 and given.report["rows_emptied"] == emptied


# ---------------------------------------------------------------------------- degenerate rows
@pytest.mark.parametrize("name", ["nrch", "symmetric"])
def test_rows_without_swap_are_ineligible(name):
    y = multi_label(20, 5)
    y[:4] = 0
    y[4:8] = 1
    out = apply(name, y, 0.6, 0)
    assert out.report["n_eligible"] == 12 and out.report["n_ineligible"] == 8
    assert not out.corrupted[:8].any() and out.corrupted.sum() == 12
    with pytest.raises(ConfigError, match=r"only 12 are eligible"):
        apply(name, y, 0.65, 0)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("labels", "rate", "seed", "params", "exc", "match"),
    [
        (np.zeros(5), 0.1, 0, {}, DataError, "2-D"),
        (np.full((3, 3), 2), 0.1, 0, {}, DataError, "binary"),
        (np.full((3, 3), np.nan), 0.1, 0, {}, DataError, "binary"),
        (np.zeros((3, 0)), 0.1, 0, {}, DataError, "no classes"),
        (np.array([["a"]]), 0.1, 0, {}, DataError, "numeric"),
        (None, 1.5, 0, {}, ConfigError, "1.5"),
        (None, -0.1, 0, {}, ConfigError, "-0.1"),
        (None, float("nan"), 0, {}, ConfigError, "nan"),
        (None, "0.2", 0, {}, ConfigError, "'0.2'"),
        (None, 0.2, -1, {}, ConfigError, "seed"),
        (None, 0.2, 1.5, {}, ConfigError, "seed"),
        (None, 0.2, 0, {"bogus": 1}, ConfigError, "noise model 'one-swap' has no parameter 'bogus'; parameters: none"),
    ],
)
def test_validation_errors(labels, rate, seed, params, exc, match):
    y = multi_label(10, 4) if labels is None else labels
    with pytest.raises(exc, match=match) as info:
        apply("nrch", y, rate, seed, **params)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"mode": "nope"}, "'mode': input should be 'random' or 'cooccurrence'"),
        ({"permutation": [0, 1, 2, 3, 4]}, "permutation of 0..5"),
        ({"permutation": [1, 2, 0, 3, 4, 5]}, "involution"),
        ({"pairs": [[0, 0]]}, "bad pair"),
        ({"pairs": [[0, 1], [1, 2]]}, "bad pair"),
        ({"pairs": [[0, 9]]}, "bad pair"),
        ({"pairs": 3}, "'pairs': input should be a valid list"),
        ({"pairs": [[0, 1, 2]]}, r"\[0, 1, 2\] is not a pair"),
        ({"permutation": [1.0, 0.0, 2.0, 3.0, 4.0, 5.0]}, "'permutation.0': input should be a valid integer"),
        ({"permutation": "abc"}, "'permutation': input should be a valid list"),
        ({"pairs": [[0, 1]], "permutation": [1, 0, 2, 3, 4, 5]}, "not both"),
        ({"pairs": [[0, 1]], "mode": "cooccurrence"}, "drop"),
        ({"max": 1}, "no parameter 'max'; parameters: mode, pairs, permutation"),
    ],
)
def test_asymmetric_param_errors(params, match):
    with pytest.raises(ConfigError, match=match):
        apply("asymmetric", multi_label(10, 6), 0.2, 0, **params)


def test_bitflip_param_error_and_unknown_model():
    with pytest.raises(ConfigError, match="rho_neg"):
        apply("bitflip", multi_label(10, 6), 0.2, 0, rho_neg=1.5)
    with pytest.raises(RegistryError, match="did you mean 'nrch'"):
        apply("nrhc", multi_label(10, 6), 0.2, 0)


# ---------------------------------------------------------------------------- golden
# sha256[:16] of the noisy labels for a fixed input, rate 0.5, seed 7. A change here means
# the draw order changed, which changes every published noise draw: bump DRAW_VERSION.
GOLDEN = {
    "nrch": "38471a0c246b1725",
    "symmetric": "c06f95eb3c67104b",
    "asymmetric": "f93d778de2fc0831",
    "bitflip": "1fb5ea0d32417f6c",
}


@pytest.mark.parametrize("name", BUILTIN)
def test_golden_hash(name):
    y = (np.random.default_rng(2024).random((64, 12)) < 0.3).astype(np.uint8)
    out = apply(name, y, 0.5, 7)
    assert hashlib.sha256(out.labels.tobytes()).hexdigest()[:16] == GOLDEN[name]
    assert out.report["draw_version"] == base.DRAW_VERSION == 1


# ---------------------------------------------------------------------------- real data
@pytest.mark.parametrize("name", BUILTIN)
def test_mirflickr_guarantees(mirflickr, name):
    y = mirflickr
    outs = [check_guarantees(name, y, r, seed=0) for r in RATES]
    for lo, hi in pairwise(outs):
        assert not (lo.corrupted & ~hi.corrupted).any()
        if name in SAMPLE_LEVEL:
            both = lo.corrupted & hi.corrupted
            np.testing.assert_array_equal(lo.labels[both], hi.labels[both])
    again = apply(name, y, 0.5, 0)
    assert again.labels.tobytes() == outs[1].labels.tobytes()
    assert apply(name, y, 0.5, 1).labels.tobytes() != again.labels.tobytes()
    # Exact pair statistic against a dense recomputation on a slice, and the full oracle there.
    sub = y[:600]
    o = apply(name, sub, 0.5, 0)
    assert o.report["frac_pairs_changed"] == pytest.approx(dense_pairs_changed(sub, o.labels), rel=1e-12)
    np.testing.assert_array_equal(o.labels, naive_oracle(name, sub, 0.5, 0, o))
    if name == "nrch":
        np.testing.assert_array_equal(outs[2].labels.sum(1), y.sum(1))


# ============================================================================ typed parameters
@pytest.mark.parametrize(
    ("name", "values", "match"),
    [
        ("nrch", {"bogus": 1}, "noise model 'one-swap' has no parameter 'bogus'; parameters: none"),
        ("asymmetric", {"mod": "random"}, r"no parameter 'mod' \(did you mean mode\?\)"),
        ("bitflip", {"rho_neg": True}, "'rho_neg': value error, must be a number in \\[0, 1\\], not a bool"),
        ("bitflip", {"rho_neg": "x"}, "'rho_neg': input should be a valid number"),
        ("instance", {"sharpness": -1}, "'sharpness': input should be greater than or equal to 0"),
        ("instance", {"modality": "audio"}, "'modality': input should be 'both', 'image' or 'text'"),
        ("instance", {"dim": 2.5}, "'dim': input should be a valid integer"),
        ("missing", {"empty_rows": "drop"}, "'empty_rows': input should be 'keep_one' or 'allow'"),
        ("pairs", {"cycle": 3}, "noise model 'pairs' has no parameter 'cycle'; parameters: none"),
    ],
)
def test_params_refused_at_check_time(name, values, match):
    """What the spec resolver calls: no labels, no data, one line."""
    cls = NOISE.get(name)
    with pytest.raises(ConfigError, match=match) as info:
        cls.Params.check(values, owner=cls.owner())
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=match):  # and apply refuses the same way
        apply(name, multi_label(10, 4), 0.2, 0, features=(np.ones((10, 2)), np.ones((10, 2))), **values)


def test_check_params_returns_only_given_names_converted():
    from nrchbench.noise import check_params

    assert check_params("nrch", None) == {} == check_params("asymmetric", {})
    assert check_params("bitflip", {"rho_neg": "0.01"}) == {"rho_neg": 0.01}
    assert check_params("instance", {"sharpness": 2, "modality": "text"}) == {"sharpness": 2.0, "modality": "text"}
    with pytest.raises(ConfigError, match="noise model 'pairs' has no parameter 'bogus'"):
        check_params("pairs", {"bogus": 1})
    with pytest.raises(RegistryError):
        check_params("nope", {})


def test_params_convert_cli_strings_and_dump_defaults():
    assert NOISE.get("bitflip").Params.check({"rho_neg": "0.01"}).rho_neg == 0.01
    assert NOISE.get("asymmetric").Params.check({"mode": "Random"}).mode == "random"
    inst = NOISE.get("instance").Params
    assert inst.check({"sharpness": "2"}).sharpness == 2.0
    assert inst.defaults() == {"modality": "both", "sharpness": 1.0, "ridge": 0.01, "dim": 256, "projection_seed": 0}
    assert NOISE.get("missing").Params.defaults() == {"empty_rows": "keep_one"}
    assert NOISE.get("nrch").Params.defaults() == {} == NOISE.get("pairs").Params.defaults()


def test_legacy_defaults_dict_plugin_gets_params():
    class Legacy(base.SampleNoiseModel):
        name = "test-legacy"
        defaults = {"k": 1, "tag": None}

        def eligible(self, y, state):
            return y.sum(1) > 0

        def corrupt(self, rows, draws, state):
            return 1 - rows

    assert Legacy.Params.defaults() == {"k": 1, "tag": None}
    assert Legacy.Params.check({"k": "3"}).k == 3
    with pytest.raises(ConfigError, match="no parameter 'kk'"):
        Legacy(kk=1).apply(multi_label(10, 4), 0.2, 0)
    assert Legacy(k=2).apply(multi_label(10, 4), 0.2, 0).report["params"] == {"k": 2, "tag": None}


def test_existing_models_have_no_text_index():
    for name in BUILTIN:
        assert apply(name, multi_label(30, 5), 0.5, 0).text_index is None
        assert NOISE.get(name).corrupts == "labels" and not NOISE.get(name).needs_features


# ============================================================================ real data of the new models
@pytest.fixture(scope="module")
def wiki(shared_data):
    """The real Wikipedia train split: (image 2173×128, text 2173×10, labels 2173×10 single-label)."""
    from nrchbench.datasets import load_dataset

    if not (shared_data / "wiki" / "raw_features.mat").is_file():
        pytest.skip("wiki not found")
    ds = load_dataset("wiki", data_root=shared_data)
    tr = ds.splits["train"]
    return ds.image[tr], ds.text[tr], np.ascontiguousarray(ds.labels[tr], dtype=np.uint8)


# ---------------------------------------------------------------------------- instance
def zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


def naive_design(feats, dim=256, projection_seed=0):
    x = np.hstack([zscore(f) for f in feats])
    if x.shape[1] > dim:
        r = np.where(np.random.default_rng([projection_seed, 4]).random((x.shape[1], dim)) < 0.5, -1.0, 1.0)
        x = zscore(x @ r)
    return x


def naive_loo_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    n, d = x.shape
    a = x.T @ x / n + lam * np.eye(d)
    yf = y.astype(np.float64)
    f = x @ np.linalg.solve(a, x.T @ (yf - yf.mean(0)) / n) + yf.mean(0)
    h = 1 / n + np.einsum("ij,ij->i", x @ np.linalg.inv(a), x) / n
    return np.clip(yf - (yf - f) / (1 - h)[:, None], 1e-6, 1 - 1e-6)


def naive_instance(y: np.ndarray, probs: np.ndarray, rate: float, seed: int, gamma: float) -> np.ndarray:
    """Per-sample loops over the documented construction (PROTOCOL §2, instance)."""
    n, c = y.shape
    u = np.random.default_rng([seed, 0]).random(n)
    keys = []
    for i in range(n):
        pos = [j for j in range(c) if y[i, j]]
        neg = [j for j in range(c) if not y[i, j]]
        if pos and neg:
            s = max(1 - probs[i, j] for j in pos) * max(probs[i, j] for j in neg)
            keys.append((math.log(-math.log1p(-u[i])) - gamma * math.log(s), i))
    chosen = [i for _, i in sorted(keys)][: math.floor(rate * n + 1e-9)]
    draws = np.random.default_rng([seed, 1]).random((len(chosen), c))
    out = y.copy()
    for p, i in enumerate(chosen):
        race = [math.log(-math.log1p(-draws[p, j])) for j in range(c)]
        pos = [j for j in range(c) if y[i, j]]
        neg = [j for j in range(c) if not y[i, j]]
        off = min(pos, key=lambda j: (race[j] - gamma * math.log(1 - probs[i, j]), j))
        on = min(neg, key=lambda j: (race[j] - gamma * math.log(probs[i, j]), j))
        out[i, off], out[i, on] = 0, 1
    return out


def test_instance_classifier_is_exact_leave_one_out(wiki):
    """The closed-form LOO outputs equal explicit refits without the sample (fixed standardised design)."""
    from nrchbench.noise import instance

    image, text, y = wiki
    probs, info = instance.confusion_model([image, text], y, ridge=0.01, dim=256, projection_seed=0)
    x = naive_design([image, text])
    np.testing.assert_allclose(probs, naive_loo_ridge(x, y, 0.01), rtol=0, atol=1e-9)
    n = len(y)
    for i in (0, 700, n - 1):
        keep = np.arange(n) != i
        xa = np.hstack([x[keep], np.ones((n - 1, 1))])
        pen = np.diag([n * 0.01] * x.shape[1] + [0.0])  # the same penalty, intercept unpenalised
        w = np.linalg.solve(xa.T @ xa + pen, xa.T @ y[keep])
        np.testing.assert_allclose(probs[i], np.clip(np.r_[x[i], 1.0] @ w, 1e-6, 1 - 1e-6), atol=1e-9)
    assert info["classifier_projected"] is False and info["classifier_dim"] == 138
    assert info["classifier_top1_in_labels"] > 0.5  # the classifier is informative (chance: 0.1)


def test_instance_matches_naive_oracle_on_wiki(wiki):
    image, text, y = wiki
    from nrchbench.noise import instance

    probs, _ = instance.confusion_model([image, text], y, ridge=0.01, dim=256, projection_seed=0)
    for rate, seed, gamma in ((0.2, 0, 1.0), (0.5, 3, 2.0), (0.8, 1, 0.0)):
        out = apply("instance", y, rate, seed, features=(image, text), sharpness=gamma)
        check_guarantees_of(out, y, rate)
        np.testing.assert_array_equal(out.labels, naive_instance(y, probs, rate, seed, gamma))
        assert (out.labels.sum(1) == 1).all()  # single-label stays single-label, to another class
        assert (out.labels.argmax(1) != y.argmax(1)).sum() == math.floor(rate * len(y) + 1e-9)


def check_guarantees_of(out: NoisyLabels, y: np.ndarray, rate: float) -> None:
    """Exact count, every corrupted sample changed, report against naive recomputation."""
    differs = (out.labels != y).any(1)
    np.testing.assert_array_equal(out.corrupted, differs)
    np.testing.assert_array_equal(out.clean_mask, ~differs)
    assert out.corrupted.sum() == math.floor(rate * len(y) + 1e-9)
    rep = out.report
    assert rep["frac_samples_corrupted"] == out.corrupted.sum() / len(y)
    assert rep["frac_entries_flipped"] == pytest.approx((out.labels != y).mean(), rel=1e-12)
    json.dumps(rep, allow_nan=False)


def test_instance_depends_on_the_features(wiki):
    """Corrupted samples are the confused ones, and they move to the classes they are confused with."""
    image, text, y = wiki
    inst = apply("instance", y, 0.2, 0, features=(image, text)).report
    flat = apply("instance", y, 0.2, 0, features=(image, text), sharpness=0).report
    assert inst["confusion_mean_corrupted"] > 1.4 * inst["confusion_mean_eligible"]
    assert inst["frac_to_most_confused"] > 3 * flat["frac_to_most_confused"]
    assert flat["frac_to_most_confused"] == pytest.approx(1 / 9, abs=0.04)  # uniform over the 9 wrong classes
    # γ = 0 selects exactly the samples of the instance-independent models (same order stream).
    np.testing.assert_array_equal(
        apply("instance", y, 0.2, 0, features=(image, text), sharpness=0).corrupted,
        apply("symmetric", y, 0.2, 0).corrupted,
    )
    # Other features, other noise.
    other = apply("instance", y, 0.2, 0, features=(image, text[::-1].copy()))
    assert other.labels.tobytes() != apply("instance", y, 0.2, 0, features=(image, text)).labels.tobytes()


def test_instance_on_mirflickr_text(mirflickr, mirflickr_text):
    """Real multi-label labels with the real tag vectors as features (the image features are absent)."""
    y, feats = mirflickr, (None, mirflickr_text)
    outs = [apply("instance", y, r, 0, features=feats, modality="text") for r in RATES]  # one fit (cached)
    for out, rate in zip(outs, RATES):
        check_guarantees_of(out, y, rate)
        d = out.labels.astype(int) - y.astype(int)
        assert ((d[out.corrupted] == -1).sum(1) == 1).all() and ((d[out.corrupted] == 1).sum(1) == 1).all()
        assert out.report["classifier_projected"] is True and out.report["classifier_input_dim"] == 1386
        assert out.report["confusion_mean_corrupted"] > out.report["confusion_mean_eligible"]
    for lo, hi in pairwise(outs):
        assert not (lo.corrupted & ~hi.corrupted).any()
        both = lo.corrupted & hi.corrupted
        np.testing.assert_array_equal(lo.labels[both], hi.labels[both])


def test_instance_oracle_and_determinism_on_a_mirflickr_slice(mirflickr, mirflickr_text):
    """On 1500 real rows: the projected design and the draws against the naive construction,
    bit-identical recomputation (cache cleared), seed dependence, exact pair statistic."""
    from nrchbench.noise import instance

    sub, tsub = mirflickr[:1500], mirflickr_text[:1500]
    o = apply("instance", sub, 0.5, 2, features=(None, tsub), modality="text")
    probs = naive_loo_ridge(naive_design([tsub]), sub, 0.01)
    np.testing.assert_array_equal(o.labels, naive_instance(sub, probs, 0.5, 2, 1.0))
    assert o.report["frac_pairs_changed"] == pytest.approx(dense_pairs_changed(sub, o.labels), rel=1e-12)
    instance.clear_cache()
    again = apply("instance", sub, 0.5, 2, features=(None, tsub), modality="text")
    assert again.labels.tobytes() == o.labels.tobytes() and again.report == o.report
    assert apply("instance", sub, 0.5, 3, features=(None, tsub), modality="text").labels.tobytes() != o.labels.tobytes()


@pytest.mark.parametrize(
    ("features", "params", "exc", "match"),
    [
        (None, {}, ConfigError, "needs the training features: pass features=\\(image, text\\)"),
        (np.ones((20, 3)), {}, ConfigError, "must be a pair \\(image, text\\)"),
        ((None, np.ones((20, 3))), {}, DataError, "uses the image features but features\\[0\\] is None"),
        ((np.ones((19, 3)), np.ones((20, 3))), {}, DataError, "image features must be a 2-D array with 20 rows"),
        ((np.ones((20, 3)), np.full((20, 2), np.nan)), {}, DataError, "text features hold a non-finite value"),
        ((np.ones((20, 3)), np.array([["a"]] * 20)), {}, DataError, "text features must be numeric"),
    ],
)
def test_instance_feature_errors(features, params, exc, match):
    with pytest.raises(exc, match=match) as info:
        apply("instance", multi_label(20, 4), 0.2, 0, features=features, **params)
    assert "\n" not in str(info.value)


def test_instance_accepts_torch_and_one_modality():
    import torch

    y = multi_label(60, 5, seed=3)
    x = np.random.default_rng(1).random((60, 7)).astype(np.float32)
    a = apply("instance", y, 0.5, 0, features=(None, x), modality="text")
    b = apply("instance", y, 0.5, 0, features=(torch.from_numpy(x), torch.from_numpy(x)), modality="text")
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.report["params"]["modality"] == "text"


# ---------------------------------------------------------------------------- missing
def naive_missing(y: np.ndarray, rate: float, seed: int, keep_one: bool = True) -> tuple[np.ndarray, int]:
    n, c = y.shape
    u = np.random.default_rng([seed, 1]).random((n, c))
    positives = [(i, j) for i in range(n) for j in range(c) if y[i, j]]
    k = math.floor(rate * len(positives) + 1e-9)
    selected = set(sorted(positives, key=lambda e: (u[e], e))[:k])
    out, kept = y.copy(), 0
    for i in range(n):
        row = [(i, j) for j in range(c) if y[i, j]]
        drop = [e for e in row if e in selected]
        if keep_one and row and len(drop) == len(row):
            drop.remove(max(row, key=lambda e: (u[e], e)))
            kept += 1
        for e in drop:
            out[e] = 0
    return out, kept


def test_missing_on_mirflickr(mirflickr):
    y = mirflickr
    pos = y.sum()
    outs = [apply("missing", y, rate, 0) for rate in RATES]
    for out, rate in zip(outs, RATES):
        rep = out.report
        assert not (out.labels > y).any()  # never adds
        assert (out.labels.sum(1) >= 1).all() and rep["rows_emptied"] == 0
        dropped = int((y.astype(int) - out.labels).sum())
        assert rep["n_pos_selected"] == math.floor(rate * pos + 1e-9) == dropped + rep["rows_kept_one"]
        assert rep["frac_pos_dropped"] == dropped / pos
        np.testing.assert_array_equal(out.corrupted, (out.labels != y).any(1))
        assert rep["frac_samples_corrupted"] == out.corrupted.mean()
        assert rep["frac_entries_flipped"] == pytest.approx((out.labels != y).mean(), rel=1e-12)
        json.dumps(rep, allow_nan=False)
    for lo, hi in pairwise(outs):  # dropped entries nest
        assert not ((lo.labels != y) & (hi.labels == y)).any()


def test_missing_oracle_and_determinism_on_a_mirflickr_slice(mirflickr):
    sub = mirflickr[:2000]
    for rate, seed in ((0.2, 0), (0.8, 4)):
        out = apply("missing", sub, rate, seed)
        ref, kept = naive_missing(sub, rate, seed)
        np.testing.assert_array_equal(out.labels, ref)
        assert out.report["rows_kept_one"] == kept
    o = apply("missing", sub, 0.5, 0)
    assert o.report["frac_pairs_changed"] == pytest.approx(dense_pairs_changed(sub, o.labels), rel=1e-12)
    assert apply("missing", sub, 0.5, 0).labels.tobytes() == o.labels.tobytes()
    assert apply("missing", sub, 0.5, 1).labels.tobytes() != o.labels.tobytes()


def test_missing_allow_empty_rows_and_blocks(monkeypatch):
    y = multi_label(400, 6, p=0.2, seed=5)
    out = apply("missing", y, 0.7, 3, empty_rows="allow")
    ref, _ = naive_missing(y, 0.7, 3, keep_one=False)
    np.testing.assert_array_equal(out.labels, ref)
    assert out.report["n_pos_dropped"] == math.floor(0.7 * y.sum() + 1e-9) and out.report["rows_kept_one"] == 0
    assert out.report["rows_emptied"] == ((out.labels.sum(1) == 0) & (y.sum(1) > 0)).sum() > 0
    nested = [apply("missing", y, r, 3, empty_rows="allow").labels for r in RATES]
    for lo, hi in pairwise(nested):
        assert not ((lo != y) & (hi == y)).any()
    monkeypatch.setattr(base, "CHUNK_ROWS", 7)
    from nrchbench.noise import missing

    monkeypatch.setattr(missing, "CHUNK_ROWS", 7)
    assert apply("missing", y, 0.7, 3, empty_rows="allow").labels.tobytes() == out.labels.tobytes()
    keep = apply("missing", y, 0.7, 3)
    assert keep.labels.tobytes() == naive_missing(y, 0.7, 3)[0].tobytes()


# ---------------------------------------------------------------------------- pairs
def naive_pairs(n: int, rate: float, seed: int) -> np.ndarray:
    u = np.random.default_rng([seed, 0]).random(n)
    order = sorted(range(n), key=lambda i: (u[i], i))[: math.floor(rate * n + 1e-9)]
    t = list(range(n))
    for p, i in enumerate(order):
        t[i] = order[(p + 1) % len(order)]
    return np.array(t)


def naive_crossmodal_changed(y: np.ndarray, t: np.ndarray) -> float:
    yf = y.astype(np.float32)
    told = (yf @ yf.T) > 0
    true = (yf @ yf[t].T) > 0
    d = told != true
    np.fill_diagonal(d, False)
    n = len(y)
    return float(d.sum() / (n * (n - 1)))


def check_pairs(out: NoisyLabels, y: np.ndarray, rate: float) -> None:
    n = len(y)
    t = out.text_index
    assert t.dtype == np.int64 and np.array_equal(np.sort(t), np.arange(n))  # every text row once
    moved = t != np.arange(n)
    np.testing.assert_array_equal(out.corrupted, moved)
    np.testing.assert_array_equal(out.clean_mask, ~moved)
    assert moved.sum() == math.floor(rate * n + 1e-9)
    assert set(t[moved]) == set(np.flatnonzero(moved))  # a derangement within the corrupted subset
    np.testing.assert_array_equal(out.labels, y)  # labels stay with the image
    rep = out.report
    assert rep["frac_entries_flipped"] == 0.0 and rep["frac_samples_corrupted"] == moved.mean()
    assert rep["frac_pairs_mismatched"] == moved.mean()
    unrelated = ~(y[moved] & y[t[moved]]).any(1)
    assert rep["n_mismatched_unrelated"] == unrelated.sum()
    assert rep["frac_mismatched_unrelated"] == (unrelated.mean() if moved.any() else 0.0)
    json.dumps(rep, allow_nan=False)


def test_pairs_on_wiki_features(wiki):
    _, text, y = wiki
    outs = [apply("pairs", y, r, 0) for r in RATES]
    for out, rate in zip(outs, RATES):
        check_pairs(out, y, rate)
        np.testing.assert_array_equal(out.text_index, naive_pairs(len(y), rate, 0))
        # The rows a method sees: exactly the corrupted rows have a different text (wiki texts are unique).
        seen = text[out.text_index]
        np.testing.assert_array_equal((seen != text).any(1), out.corrupted)
        assert out.report["frac_pairs_changed"] == pytest.approx(naive_crossmodal_changed(y, out.text_index), rel=1e-12)
        # single cycle through the corrupted pairs
        start = int(np.flatnonzero(out.corrupted)[0])
        i, length = int(out.text_index[start]), 1
        while i != start:
            i, length = int(out.text_index[i]), length + 1
        assert length == out.corrupted.sum()
    for lo, hi in pairwise(outs):
        assert not (lo.corrupted & ~hi.corrupted).any()
        differ = lo.corrupted & (lo.text_index != hi.text_index)
        assert differ.sum() == 1  # only the pair closing the lower rate's cycle


def test_pairs_on_mirflickr_and_nesting_at_odd_counts(mirflickr):
    y = mirflickr
    for rate in RATES:
        check_pairs(apply("pairs", y, rate, 5), y, rate)
    sub = y[:900]
    o = apply("pairs", sub, 0.5, 0)
    assert o.report["frac_pairs_changed"] == pytest.approx(naive_crossmodal_changed(sub, o.text_index), rel=1e-12)
    assert apply("pairs", sub, 0.5, 0).text_index.tobytes() == o.text_index.tobytes()
    assert apply("pairs", sub, 0.5, 1).text_index.tobytes() != o.text_index.tobytes()
    # consecutive and odd counts: 3 → 4 → 7 pairs of 100
    small = multi_label(100, 6, seed=1)
    t = {m: apply("pairs", small, m / 100, 2).text_index for m in (0, 2, 3, 4, 7)}
    assert (t[0] == np.arange(100)).all()
    for a, b in ((2, 3), (3, 4), (4, 7)):
        moved_a = t[a] != np.arange(100)
        assert ((t[a] != t[b]) & moved_a).sum() == 1


def test_pairs_report_estimate_and_count_errors(monkeypatch):
    y = multi_label(600, 8, seed=4)
    exact = apply("pairs", y, 0.5, 0).report["frac_pairs_changed"]
    monkeypatch.setattr(noise_report, "EXACT_PAIRS_MAX_N", 100)
    monkeypatch.setattr(noise_report, "PAIR_SAMPLES", 200_000)
    est = apply("pairs", y, 0.5, 0).report
    assert est["pairs_estimated"] is True
    assert abs(est["frac_pairs_changed"] - exact) < 5 * est["frac_pairs_changed_se"] + 1e-3
    with pytest.raises(ConfigError, match="cannot mismatch exactly 1 of 10 pairs"):
        apply("pairs", multi_label(10, 4), 0.1, 0)
    assert not apply("pairs", multi_label(10, 4), 0.05, 0).corrupted.any()


def test_pairs_plugin_must_return_a_permutation():
    class Broken(base.NoiseModel):
        name = "test-broken-pairs"
        corrupts = "pairs"

        def _apply_pairs(self, y, rate, seed, params, **inputs):
            return np.zeros(len(y), dtype=np.int64), {}, {}

    with pytest.raises(RuntimeError, match="not a permutation"):
        Broken().apply(multi_label(10, 4), 0.5, 0)


# ---------------------------------------------------------------------------- golden of the new models
GOLDEN_NEW = {
    "instance": "75d39f4ed46bc5cb",
    "missing": "1755501d66a176bc",
    "pairs": "663bdf18a0e79f79",
}


@pytest.mark.parametrize("name", sorted(GOLDEN_NEW))
def test_golden_hash_new_models(name):
    rng = np.random.default_rng(2024)
    y = (rng.random((64, 12)) < 0.3).astype(np.uint8)
    y[:, 0] = 1
    feats = (rng.random((64, 9)), rng.random((64, 5)))
    out = apply(name, y, 0.5, 7, features=feats)
    arr = out.text_index if out.text_index is not None else out.labels
    assert hashlib.sha256(arr.tobytes()).hexdigest()[:16] == GOLDEN_NEW[name]


@pytest.mark.parametrize("name", ["instance", "missing", "pairs"])
def test_new_models_tiny_inputs_and_inputs_untouched(name):
    for n in (0, 2, 3):
        y = np.zeros((n, 4), dtype=np.uint8)
        y[:, :2] = 1
        x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
        before, xb = y.copy(), x.copy()
        out = apply(name, y, 1.0, 0, features=(x, x))
        np.testing.assert_array_equal(y, before)
        np.testing.assert_array_equal(x, xb)
        assert out.report["n_samples"] == n and out.n_corrupted == n
        json.dumps(out.report, allow_nan=False)


def test_missing_refuses_single_label_with_keep_one(wiki):
    _, _, y = wiki
    with pytest.raises(ConfigError, match="cannot drop any label: no row has two or more positives"):
        apply("missing", y, 0.5, 0)
    assert not apply("missing", y, 0.0, 0).corrupted.any()
    out = apply("missing", y, 0.5, 0, empty_rows="allow")
    assert out.report["rows_emptied"] == out.n_corrupted == math.floor(0.5 * len(y))
