"""Robust-training strategies (issue 15): each rule against a naive implementation, the method
capability they use, resolve-time validation and refusals, neutral settings that reproduce the
base bit for bit, and every (method × strategy) pair end to end on a tiny synthetic set."""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import SMALL
from sklearn.mixture import GaussianMixture

from nrchbench.errors import ConfigError
from nrchbench.grid import expand_grid
from nrchbench.methods import METHODS, create_method
from nrchbench.methods.base import EpochLog, Rng, Step, StepPlan
from nrchbench.methods.dcmh import DCMH
from nrchbench.methods.nrch import nrch_batch_loss, rch_loss, rch_loss_against_all
from nrchbench.registry import STRATEGIES
from nrchbench.runner import run
from nrchbench.spec import resolve_spec
from nrchbench.strategies import check_strategy, refusal, strategy_params_for, wrap_strategy
from nrchbench.strategies.label_head import elr_loss, elr_update, gce_loss, label_set_ce, sce_loss
from nrchbench.strategies.selection import divide, forget_rate_at, minmax_divide, noisy_fraction, small_loss_mask
from nrchbench.testing import mock_data

BITS = 16
#: Strategy parameters that make every strategy act within a few tiny epochs.
FAST_PARAMS = {"gmm-select.warmup": 1, "coteaching.num_gradual": 2}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return mock_data()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def multilabel(n: int = 7, c: int = 5, seed: int = 0, empty_row: bool = False) -> torch.Tensor:
    y = (torch.rand(n, c, generator=gen(seed)) < 0.35).double()
    y[torch.arange(n), torch.randint(0, c, (n,), generator=gen(seed + 1))] = 1.0
    if empty_row:
        y[0] = 0.0
    return y


# ============================================================================ selection rules
def test_minmax_divide_is_dividemix_normalisation() -> None:
    x = np.array([3.0, 1.0, 2.0, 5.0])
    assert np.array_equal(minmax_divide(x), np.array([(v - 1.0) / 4.0 for v in x]))
    assert np.array_equal(minmax_divide(np.full(3, 2.0)), np.zeros(3))


@pytest.mark.parametrize("average", [False, True])
def test_divide_matches_a_plain_sklearn_gmm(average: bool) -> None:
    rng = np.random.default_rng(0)
    history = [minmax_divide(np.r_[rng.normal(1, 0.3, 80), rng.normal(3, 0.5, 40)]) for _ in range(7)]
    kept, w, x, info = divide(history, average=average, random_state=11)
    x_naive = np.array([sum(h[i] for h in history[-5:]) / 5 for i in range(120)]) if average else history[-1]
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=11).fit(
        x_naive.reshape(-1, 1)
    )
    w_naive = gmm.predict_proba(x_naive.reshape(-1, 1))[:, gmm.means_.argmin()]
    np.testing.assert_allclose(x, x_naive, rtol=0, atol=1e-12)
    np.testing.assert_allclose(w, w_naive, atol=1e-9)
    assert np.array_equal(kept, w_naive > 0.5)
    assert info["means"][0] < info["means"][1]
    assert noisy_fraction(info) == pytest.approx(gmm.weights_[gmm.means_.argmax()])
    assert 0.2 < kept.mean() < 0.9  # the low-loss cluster (2/3 of the rows) is what is kept


def test_forget_rate_schedule_is_the_official_rate_schedule() -> None:
    for tau, tk, c in [(0.5, 10, 1.0), (0.8, 4, 2.0), (0.3, 1, 1.0)]:
        official = np.ones(30) * tau
        official[:tk] = np.linspace(0, tau**c, tk)
        assert [forget_rate_at(e, tau, tk, c) for e in range(30)] == official.tolist()


def test_small_loss_mask_keeps_the_smallest_with_stable_ties() -> None:
    loss = torch.tensor([0.5, 0.1, 0.5, 0.9, 0.1, 0.3, 0.5])
    for rate in (0.0, 0.2, 0.45, 0.5, 0.99):
        keep_n = int((1 - rate) * len(loss))
        order = sorted(range(len(loss)), key=lambda i: (loss[i].item(), i))  # stable
        naive = [i in order[:keep_n] for i in range(len(loss))]
        assert small_loss_mask(loss, rate).tolist() == naive


# ============================================================================ label-head losses
def _softmax_row(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


@pytest.mark.parametrize("mode", ["set", "binary"])
def test_gce_and_sce_against_naive_loops(mode: str) -> None:
    z = torch.randn(7, 5, generator=gen(3), dtype=torch.float64) * 2
    y = multilabel()
    q, alpha, beta, A = 0.7, 0.3, 1.2, -4.0
    gce, sce = gce_loss(z, y, q, mode), sce_loss(z, y, alpha, beta, A, mode)
    for i in range(7):
        zi, yi = z[i].tolist(), y[i].tolist()
        if mode == "set":
            p = _softmax_row(zi)
            p_y = sum(pc for pc, yc in zip(p, yi) if yc)
            k = sum(yi)
            target = [yc / k if yc else math.exp(A) for yc in yi]  # ỹ/|ỹ|, zeros clipped to e^A
            rce = -sum(pc * math.log(tc) for pc, tc in zip(p, target))
            want_gce = (1 - p_y**q) / q
            want_sce = alpha * -math.log(p_y) + beta * rce
        else:
            s = [1 / (1 + math.exp(-v)) for v in zi]
            pt = [sc if yc else 1 - sc for sc, yc in zip(s, yi)]
            want_gce = sum((1 - v**q) / q for v in pt) / 5
            bce = sum(-math.log(v) for v in pt) / 5
            want_sce = alpha * bce + beta * sum(-A * abs(sc - yc) for sc, yc in zip(s, yi)) / 5
        assert gce[i].item() == pytest.approx(want_gce, rel=1e-9)
        assert sce[i].item() == pytest.approx(want_sce, rel=1e-9)


def test_set_mode_reduces_to_the_single_label_originals() -> None:
    z = torch.randn(6, 4, generator=gen(5), dtype=torch.float64)
    t = torch.tensor([0, 3, 1, 1, 2, 0])
    y = F.one_hot(t, 4).double()
    p = z.softmax(1)
    p_y = p[torch.arange(6), t]
    assert torch.allclose(gce_loss(z, y, 0.7), (1 - p_y.pow(0.7)) / 0.7)
    # SCE code: α·CE(clip p ≥ 1e-7) + β·(−Σ p log clip(onehot, 1e-4, 1)), with A = ln 1e-4
    code_rce = -(p * y.clamp(1e-4, 1.0).log()).sum(1)
    code = 0.1 * F.cross_entropy(z, t, reduction="none") + 1.0 * code_rce
    assert torch.allclose(sce_loss(z, y, 0.1, 1.0, math.log(1e-4)), code)


@pytest.mark.parametrize("mode", ["set", "binary"])
def test_elr_target_update_and_loss_against_naive(mode: str) -> None:
    z = torch.randn(7, 5, generator=gen(8), dtype=torch.float64, requires_grad=True)
    y = multilabel(seed=2)
    beta, lam = 0.7, 3.0
    t0 = torch.rand(7, 5, generator=gen(9), dtype=torch.float64) / 5
    t1 = elr_update(t0, z, beta, mode)
    assert not t1.requires_grad
    loss = elr_loss(z, y, t1, lam, mode)
    for i in range(7):
        zi, yi, ti = z[i].tolist(), y[i].tolist(), t0[i].tolist()
        if mode == "set":
            p = [min(max(v, 1e-4), 1 - 1e-4) for v in _softmax_row(zi)]
            new_t = [beta * a + (1 - beta) * b / sum(p) for a, b in zip(ti, p)]
            ce = -math.log(sum(pc for pc, yc in zip(_softmax_row(zi), yi) if yc))
            want = ce + lam * math.log(1 - sum(a * b for a, b in zip(new_t, p)))
        else:
            s = [min(max(1 / (1 + math.exp(-v)), 1e-4), 1 - 1e-4) for v in zi]
            new_t = [beta * a + (1 - beta) * b for a, b in zip(ti, s)]
            raw = [1 / (1 + math.exp(-v)) for v in zi]
            ce = sum(-math.log(r if yc else 1 - r) for r, yc in zip(raw, yi)) / 5
            reg = sum(math.log(1 - a * b - (1 - a) * (1 - b)) for a, b in zip(s, new_t)) / 5
            want = ce + lam * reg
        assert t1[i].tolist() == pytest.approx(new_t, rel=1e-12)
        assert loss[i].item() == pytest.approx(want, rel=1e-9)
    loss.sum().backward()  # the gradient flows through the clamped predictions only
    assert torch.isfinite(z.grad).all()


def test_label_set_ce_is_the_cross_entropy_of_the_label_set() -> None:
    z = torch.randn(7, 5, generator=gen(4), dtype=torch.float64)
    y = multilabel(empty_row=True)
    got = label_set_ce(z, y)
    assert got[0].item() == pytest.approx(0.0, abs=1e-12)  # no positive label: no signal
    for i in range(1, 7):
        p = _softmax_row(z[i].tolist())
        assert got[i].item() == pytest.approx(-math.log(sum(pc for pc, yc in zip(p, y[i].tolist()) if yc)))
    t = torch.tensor([2, 0, 4, 1, 1, 3, 0])
    assert torch.allclose(label_set_ce(z, F.one_hot(t, 5).double()), F.cross_entropy(z, t, reduction="none"))


def test_elr_first_visit_gives_a_scaled_prediction_not_a_distribution() -> None:
    z = torch.randn(3, 4, generator=gen(1))
    t = elr_update(torch.zeros(3, 4), z, 0.7)
    assert torch.allclose(t.sum(1), torch.full((3,), 0.3))


# ============================================================================ the capability
@pytest.mark.parametrize(("bidirectional", "mask"), [(False, "zero"), (True, "zero"), (True, "exclude")])
def test_rch_against_all_partners_equals_the_full_batch_term(bidirectional: bool, mask: str) -> None:
    u = torch.randn(9, 6, generator=gen(0), dtype=torch.float64).tanh()
    v = torch.randn(9, 6, generator=gen(1), dtype=torch.float64).tanh()
    y = multilabel(9, 4, seed=4)
    params = {"margin": 0.2, "shift": 1.0, "tau": 1.0, "rch_bidirectional": bidirectional, "rch_mask": mask}
    full = rch_loss(u, v, y, 0.2, 1.0, 1.0, bidirectional, mask)
    rows = torch.tensor([7, 2, 5])
    assert torch.allclose(rch_loss_against_all(u, v, y, torch.arange(9), params), full)
    assert torch.allclose(rch_loss_against_all(u, v, y, rows, params), full[rows])


def test_nrch_per_sample_losses_average_to_its_training_loss(data) -> None:
    m = create_method("nrch-nodns", BITS, "tiny")
    m.setup(data.train, Rng(0))
    losses = m.train_sample_losses(data.train)
    assert losses.shape == (data.train.n,) and losses.dtype == np.float64
    with torch.no_grad():  # one batch = every row: its loss is the mean of the per-sample losses
        h, g = m.encode("image", data.train.image), m.encode("text", data.train.text)
        terms = nrch_batch_loss(h, g, m.W, data.train.labels, m.params)
        step = m.forward_step(Step("joint", torch.arange(data.train.n)), data.train)
        assert torch.allclose(step.sample_loss.mean(), terms["loss"], rtol=1e-5)
    assert losses.mean() == pytest.approx(terms["loss"].item(), rel=1e-5)


def test_dcmh_per_sample_losses_against_a_naive_double_loop() -> None:
    d = mock_data(n=200)
    m = create_method("dcmh", 8, "tiny")
    m.setup(d.train, Rng(1))
    got = m.train_sample_losses(d.train)
    with torch.no_grad():
        f, g = m.encode("image", d.train.image).double(), m.encode("text", d.train.text).double()
    y = d.train.labels.double()
    n = d.train.n

    def ell(a: torch.Tensor, b: torch.Tensor, s: float) -> float:
        theta = 0.5 * float(a @ b)
        return math.log1p(math.exp(theta)) - s * theta

    for i in (0, 17, n - 1):
        a = sum(ell(f[i], g[j], float(y[i] @ y[j] > 0)) for j in range(n)) / n
        b = sum(ell(f[j], g[i], float(y[j] @ y[i] > 0)) for j in range(n)) / n
        assert got[i] == pytest.approx(0.5 * (a + b), rel=1e-5)


def test_dcmh_step_sample_loss_is_the_anchor_share_of_the_step_objective(data) -> None:
    m = create_method("dcmh", BITS, "tiny")
    m.setup(data.train, Rng(0))
    log = EpochLog(0)
    m.begin_epoch(0, data.train, Rng(0), log)
    step = next(iter(m.epoch_steps(0, data.train, None)))
    view = m.forward_step(step, data.train)
    out, other, s = view.state["out"], view.state["other"], view.state["s"]
    n = data.train.n
    theta = 0.5 * out @ other.T
    naive = torch.stack(
        [
            ((F.softplus(theta[i]) - s[i] * theta[i]).sum() + (m.codes_[step.idx[i]] - out[i]).pow(2).sum()) / n
            for i in range(len(step.idx))
        ]
    )
    assert torch.allclose(view.sample_loss, naive, rtol=1e-5)
    assert view.codes.keys() == {step.part}


def _train_one_epoch(name: str, data, plan_fn=None, keep=None, weights=None):
    m = create_method(name, BITS, "tiny")
    rng = Rng(0)
    m.setup(data.train, rng)
    log = m.run_epoch(0, data.train, rng, keep=keep, weights=weights, on_step=plan_fn)
    with torch.no_grad():
        return log, m.encode("image", data.query_image), m.encode("text", data.query_text)


@pytest.mark.parametrize("name", ["nrch-nodns", "dcmh"])
def test_full_plans_reproduce_the_plain_step(name: str, data) -> None:
    base, bi, bt = _train_one_epoch(name, data)

    def keep_all(view):
        return StepPlan(keep=torch.ones(view.step.idx.numel(), dtype=torch.bool))

    log, i, t = _train_one_epoch(name, data, keep_all, keep=np.ones(data.train.n, dtype=bool))
    assert torch.equal(i, bi) and torch.equal(t, bt) and log.losses == base.losses
    log, i, t = _train_one_epoch(name, data, weights=np.ones(data.train.n))
    assert torch.allclose(i, bi, atol=1e-5) and torch.allclose(t, bt, atol=1e-5)
    assert log.weights is not None


def test_nrch_kept_rows_are_the_whole_batch(data) -> None:
    """A step restricted to kept rows computes the NRCH loss on the kept sub-batch."""
    m = create_method("nrch-nodns", BITS, "tiny")
    m.setup(data.train, Rng(0))
    m.begin_epoch(0, data.train, Rng(0), EpochLog(0))
    step = next(iter(m.epoch_steps(0, data.train, None)))
    keep = torch.arange(step.idx.numel()) % 3 == 0
    twin = copy.deepcopy(m)
    view = m.forward_step(step, data.train)
    m.update_step(view, data.train, StepPlan(keep=keep))
    sub = Step("joint", step.idx[keep])
    twin.update_step(twin.forward_step(sub, data.train), data.train)
    for a, b in zip(m.img_net.parameters(), twin.img_net.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", ["nrch-nodns", "dcmh"])
def test_train_codes_are_the_step_codes_of_every_row(name: str, data) -> None:
    m = create_method(name, BITS, "tiny")
    m.setup(data.train, Rng(0))
    codes = m.train_codes(data.train)
    m.begin_epoch(0, data.train, Rng(0), EpochLog(0))
    step = next(iter(m.epoch_steps(0, data.train, None)))
    view = m.forward_step(step, data.train)
    for modality, c in view.codes.items():
        assert torch.allclose(codes[modality][step.idx], c.detach(), atol=1e-5)
    assert codes.keys() == {"image", "text"} and codes["image"].shape == (data.train.n, BITS)
    if name == "nrch-nodns":  # unit-norm outputs rescaled: a binary output is ±1
        assert torch.allclose(codes["text"].norm(dim=1), torch.full((data.train.n,), math.sqrt(BITS)), atol=1e-4)


def test_methods_without_the_capability_refuse_its_hooks() -> None:
    m = create_method("djsrh", BITS, "tiny")
    with pytest.raises(NotImplementedError, match="supports_strategies"):
        m.train_sample_losses(mock_data().train)


# ============================================================================ resolve time
def test_none_keeps_run_ids_and_strategies_enter_them() -> None:
    kw = {"dataset_options": SMALL, "bits": BITS, "preset": "tiny", "device": "cpu"}
    plain = resolve_spec("dcmh", **kw)
    none = resolve_spec("dcmh", strategy="none", **kw)
    assert none.run_id == plain.run_id and "strategy" not in plain.identity()
    gmm = resolve_spec("dcmh", strategy="gmm-select", **kw)
    assert gmm.run_id != plain.run_id and gmm.strategy_params["warmup"] == 10  # every parameter, defaults too
    other = resolve_spec("dcmh", strategy="gmm-select", strategy_params={"warmup": "3"}, **kw)
    assert other.run_id != gmm.run_id and other.strategy_params["warmup"] == 3
    assert "+gmm-select" in gmm.label()


def test_strategy_parameters_are_typed_and_checked() -> None:
    kw = {"dataset_options": SMALL, "preset": "tiny", "device": "cpu"}
    assert resolve_spec("dcmh", strategy="coteaching", **kw).strategy_params["forget_rate"] == "estimate"
    for value, want in (("oracle", "oracle"), (0.3, 0.3)):
        spec = resolve_spec("dcmh", strategy="coteaching", strategy_params={"forget_rate": value}, **kw)
        assert spec.strategy_params["forget_rate"] == want
    for bad, match in (
        ({"forget_rate": 1.5}, "forget_rate"),
        ({"forget_rate": "guess"}, "forget_rate"),
        ({"num_gradul": 3}, "did you mean num_gradual"),
    ):
        with pytest.raises(ConfigError, match=match):
            resolve_spec("dcmh", strategy="coteaching", strategy_params=bad, **kw)
    with pytest.raises(ConfigError, match="ml_mode"):
        resolve_spec("dcmh", strategy="elr", strategy_params={"ml_mode": "multi"}, **kw)


def test_prefixed_parameters_go_to_their_strategy_only() -> None:
    params = {"gmm-select.warmup": 3, "coteaching.num_gradual": 5, "ml_mode": "binary"}
    assert strategy_params_for("gmm-select", params) == {"warmup": 3, "ml_mode": "binary"}
    assert check_strategy(DCMH, "dcmh", "coteaching", {"coteaching.num_gradual": 5})[1]["num_gradual"] == 5
    assert check_strategy(DCMH, "dcmh", "none", {"gmm-select.warmup": 3}) == ("none", {})
    with pytest.raises(ConfigError, match="strategy none"):
        check_strategy(DCMH, "dcmh", "none", {"warmup": 3})


@pytest.mark.parametrize("method", sorted(METHODS.names()))
@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES.names()) - {"none"}))
def test_refusals_are_one_line_at_resolve_time(method: str, strategy: str) -> None:
    cls = METHODS.get(method)
    why = refusal(STRATEGIES.get(strategy), cls, method)
    if why is None:
        assert cls.uses_labels and cls.supports_strategies
        return
    assert "\n" not in why and method in why and strategy in why
    with pytest.raises(ConfigError) as err:
        resolve_spec(method, strategy=strategy, dataset_options=SMALL, preset="tiny", device="cpu")
    assert str(err.value) == why
    if not cls.uses_labels:
        assert "unsupervised" in why


def test_grids_leave_refused_pairs_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nrchbench.grid"):
        specs = expand_grid(
            "dcmh,djsrh,nrch",
            strategies="none,gmm-select,elr",
            dataset_options=SMALL,
            preset="tiny",
            device="cpu",
            strategy_params={"gmm-select.warmup": 2},
        )
    pairs = {(s.method, s.strategy) for s in specs}
    assert pairs == {
        ("dcmh", "none"),
        ("dcmh", "gmm-select"),
        ("dcmh", "elr"),
        ("djsrh", "none"),
        ("nrch", "none"),
        ("nrch", "elr"),
    }
    assert "djsrh + gmm-select left out" in caplog.text and "nrch + gmm-select left out" in caplog.text
    assert next(s for s in specs if s.strategy == "gmm-select").strategy_params["warmup"] == 2


# ============================================================================ neutral settings = the base
NEUTRAL = [
    ("gmm-select", {"warmup": 99}),
    ("gmm-select", {"warmup": 99, "signal": "probe"}),  # the probe trains, on detached codes
    ("coteaching", {"forget_rate": 0.0}),
    ("coteaching", {"forget_rate": 0.0, "signal": "probe"}),
    ("gce", {"head_weight": 0.0}),
    ("sce", {"head_weight": 0.0}),
    ("elr", {"head_weight": 0.0}),
]


def spec_like(strategy: str, params: dict, noise_rate: float = 0.5):
    """The three fields of a RunSpec that :func:`wrap_strategy` reads."""
    return type("Spec", (), {"strategy": strategy, "strategy_params": params, "noise_rate": noise_rate})


@pytest.mark.parametrize(("strategy", "params"), NEUTRAL)
@pytest.mark.parametrize("method", ["nrch-nodns", "dcmh"])
def test_neutral_settings_reproduce_the_base_bit_for_bit(method: str, strategy: str, params: dict, data) -> None:
    def fit(spec):
        _, hyper = METHODS.get(method).resolve_params("tiny", {"epochs": 2})
        w = wrap_strategy(spec, METHODS.get(method)(bits=BITS, **hyper))
        w.fit(data.train, seed=4)
        with torch.no_grad():
            return w.encode("image", data.query_image), w.encode("text", data.query_text)

    base, wrapped = fit(spec_like("none", {})), fit(spec_like(strategy, params))
    assert torch.equal(base[0], wrapped[0]) and torch.equal(base[1], wrapped[1])


# ============================================================================ strategies at work
def test_gmm_select_trains_only_on_its_division(data) -> None:
    m = create_method("nrch-nodns", BITS, "tiny")
    strat = STRATEGIES.get("gmm-select")(m, {"warmup": 2})
    trained: list[set[int]] = []
    original = m.update_step

    def spy(view, d, plan=None):
        trained[-1].update(view.step.idx.tolist())
        return original(view, d, plan)

    m.update_step = spy
    logs = []

    def callback(log):
        logs.append(log)
        trained.append(set())

    trained.append(set())
    strat.fit(data.train, seed=2, callback=callback)
    for log, rows in zip(logs, trained):
        assert log.selected.dtype == bool and log.selected.shape == (data.train.n,)
        assert rows <= set(np.flatnonzero(log.selected).tolist())
        if log.epoch < 2:
            assert log.selected.all() and log.sample_loss is None
        else:
            gmm = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=log_seed(2, log.epoch))
            x = log.sample_loss.reshape(-1, 1)
            gmm.fit(x)
            assert np.array_equal(log.selected, gmm.predict_proba(x)[:, gmm.means_.argmin()] > 0.5)
            assert log.mixture is not None and log.times["sample_loss"] >= 0


def test_gmm_select_probe_divides_the_probe_cross_entropy(data) -> None:
    m = create_method("nrch-nodns", BITS, "tiny")
    strat = STRATEGIES.get("gmm-select")(m, {"warmup": 1, "signal": "probe"})
    rng = Rng(3)
    m.setup(data.train, rng)
    strat.setup(data.train, rng)
    head_before = strat.probe.head.weight.detach().clone()
    strat.train_epoch(0, data.train, rng)
    assert not torch.equal(strat.probe.head.weight, head_before)  # the probe learns in the warm-up
    with torch.no_grad():
        codes = m.train_codes(data.train)
        naive = sum(label_set_ce(strat.probe.head(c), data.train.labels) for c in codes.values())
    log = strat.train_epoch(1, data.train, rng)
    np.testing.assert_allclose(log.sample_loss, minmax_divide(naive.double().numpy()), atol=1e-6)
    assert "loss_probe" in log.losses and log.selected.sum() < data.train.n


def log_seed(seed: int, epoch: int) -> int:
    return Rng(seed).seed("strategy", "gmm-select", epoch) % (2**32)


def test_coteaching_updates_each_network_on_the_peers_small_loss_rows(data) -> None:
    _, params = METHODS.get("nrch-nodns").resolve_params("tiny", {"epochs": 1, "batch_size": 1000})
    a = METHODS.get("nrch-nodns")(bits=BITS, **params)
    strat = STRATEGIES.get("coteaching")(a, {"forget_rate": 0.4, "num_gradual": 1})
    rng = Rng(6)
    a.setup(data.train, rng)
    strat.setup(data.train, rng)
    every = Step("joint", torch.arange(data.train.n))  # one batch: the partners are every row
    with torch.no_grad():
        peer_loss = strat.peer.forward_step(every, data.train).sample_loss
    log = strat.train_epoch(1, data.train, rng)  # epoch 0 of the ramp forgets nothing
    assert log.values["forget_rate"] == 0.4
    expected = np.zeros(data.train.n, dtype=bool)
    expected[torch.argsort(peer_loss, stable=True)[: int(0.6 * data.train.n)].numpy()] = True
    assert np.array_equal(log.selected, expected)
    assert "loss_peer" in log.losses


def test_coteaching_oracle_reads_the_nominal_rate_and_estimate_fits_a_mixture(data) -> None:
    for fr, want in (("oracle", 0.5), ("estimate", None)):
        m = create_method("nrch-nodns", BITS, "tiny")
        logs = []
        spec = spec_like("coteaching", {"forget_rate": fr, "num_gradual": 2})
        wrap_strategy(spec, m).fit(data.train, seed=0, callback=logs.append)
        assert logs[0].values["forget_rate"] == 0.0
        if want is not None:
            assert [log.values["forget_rate"] for log in logs[1:]] == [0.5] * (len(logs) - 1)
        else:
            assert logs[1].mixture is not None
            assert logs[1].values["forget_rate_target"] == pytest.approx(logs[1].mixture.weights[1])


def test_elr_targets_follow_every_visit(data) -> None:
    m = create_method("nrch-nodns", BITS, "tiny")
    strat = STRATEGIES.get("elr")(m, {})
    rng = Rng(0)
    m.setup(data.train, rng)
    strat.setup(data.train, rng)
    log = strat.train_epoch(0, data.train, rng)
    visited = data.train.labels.sum(1) > 0  # NRCH visits every row once; set mode skips label-less rows
    for t in strat.targets.values():
        assert torch.allclose(t[visited].sum(1), torch.full((int(visited.sum()),), 0.3), atol=1e-5)
    assert log.losses["loss_head"] != 0 and math.isfinite(log.losses["loss"])


# ============================================================================ every pair, end to end
PAIRS = [(m, s) for m in sorted(METHODS.names()) for s in sorted(STRATEGIES.names())]


@pytest.mark.parametrize(("method", "strategy"), PAIRS)
def test_every_method_strategy_pair_runs_or_is_refused(method: str, strategy: str) -> None:
    cls = METHODS.get(method)
    kw = {
        "bits": BITS,
        "preset": "tiny",
        "device": "cpu",
        "dataset_options": SMALL,
        "noise_rate": 0.5,
        "strategy": strategy,
        "strategy_params": FAST_PARAMS,
        "params": {"epochs": 2} if "epochs" in cls.defaults else {},
    }
    why = None if strategy == "none" else refusal(STRATEGIES.get(strategy), cls, method)
    if why is not None:
        with pytest.raises(ConfigError, match="cannot take strategy"):
            resolve_spec(method, **kw)
        return
    rec = run(resolve_spec(method, **kw))
    assert rec.status == "ok" and rec.spec.strategy == strategy
    assert 0.0 <= rec.metrics["avg"]["map"] <= 1.0
    history = rec.to_dict()["history"]
    assert len(history) == rec.spec.resolved_params.get("epochs", len(history)) and all(
        math.isfinite(h["loss"]) for h in history if "loss" in h
    )
    if STRATEGIES.get(strategy).selects_samples:
        assert all({"selected_fraction", "sel_precision", "sel_recall"} <= h.keys() for h in history)
        assert history[-1]["selected_fraction"] < 1.0
        assert "sample_loss_hist" in rec.diagnostics
    if strategy in ("gce", "sce", "elr"):
        assert all("loss_head" in h for h in history)


@pytest.mark.parametrize("strategy", ["gmm-select", "coteaching"])
@pytest.mark.parametrize("method", ["nrch-nodns", "dcmh"])
def test_probe_signal_runs_end_to_end(method: str, strategy: str) -> None:
    kw = {"bits": BITS, "preset": "tiny", "device": "cpu", "dataset_options": SMALL, "params": {"epochs": 2}}
    params = {**FAST_PARAMS, "signal": "probe"}
    rec = run(resolve_spec(method, strategy=strategy, strategy_params=params, **kw))
    assert rec.status == "ok" and rec.spec.strategy_params["signal"] == "probe"
    assert rec.to_dict()["history"][-1]["selected_fraction"] < 1.0


def test_val_model_selection_restores_the_wrapped_method() -> None:
    kw = {"bits": BITS, "preset": "tiny", "device": "cpu", "dataset_options": SMALL, "params": {"epochs": 3}}
    rec = run(resolve_spec("nrch-nodns", strategy="elr", selection="val", val_size=60, **kw))
    assert rec.status == "ok" and rec.selection["rule"] == "val" and len(rec.selection["history"]) == 3


def test_cli_lists_and_runs_a_strategy(tmp_path) -> None:
    from nrchbench.cli import main

    res = CliRunner().invoke(main, ["list", "strategies"], catch_exceptions=False)
    assert res.exit_code == 0 and all(s in res.stdout for s in ("gmm-select", "coteaching", "elr", "none"))
    args = ["run", "--method", "dcmh", "--strategy", "coteaching", "--strategy-param", "num_gradual=2"]
    args += ["--bits", "16", "--preset", "tiny", "--device", "cpu", "-p", "epochs=2", "--out", str(tmp_path)]
    args += [x for k, v in SMALL.items() for x in ("-d", f"{k}={v}")] + ["--json"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert '"strategy": "coteaching"' in res.stdout and '"forget_rate": "estimate"' in res.stdout
    res = CliRunner().invoke(main, ["run", "--method", "djsrh", "--strategy", "elr", *args[7:]])
    assert res.exit_code == 2 and "unsupervised" in res.output
