"""RSHNL (PEERS.md §3): the pure functions against their formulas with naive loops (float64),
the self-paced weights and the class-count-aware γ rule; the method class (parameters, γ
resolution, per-row weights in the epoch log against the formula) and a runner-level run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_run, unit_outputs, unit_rows

from nrchbench.errors import ConfigError
from nrchbench.methods import create_method
from nrchbench.methods.base import TrainData
from nrchbench.methods.rshnl import (
    GAMMA_RATIO,
    OFFICIAL_GAMMA,
    RSHNL,
    auto_gamma,
    cal_loss,
    chl_loss,
    class_posterior,
    empirical_floor,
    loss_floor,
    phi_q,
    positive_mass,
    resolve_gamma,
    rshnl_loss,
    self_paced_loss,
    self_paced_weights,
)

torch.set_num_threads(1)
F64 = torch.float64


# ----------------------------------------------------------------------------- helpers
def _inputs(n=6, L=5, C=4, seed=0, multi=True):
    g = torch.Generator().manual_seed(seed)
    h, t = unit_outputs(n, L, generator=g)
    w = unit_rows(torch.randn(C, L, generator=g, dtype=F64).tanh())
    if multi:
        y = (torch.rand(n, C, generator=g, dtype=F64) < 0.4).to(F64)
        y[0] = 0.0  # a row without labels
        y[1] = 0.0
        y[1, 2] = 1.0  # a single-label row
    else:
        y = torch.zeros(n, C, dtype=F64)
        y[torch.arange(n), torch.randint(0, C, (n,), generator=g)] = 1.0
    return h, t, w, y


def _phi(p: float, q: float) -> float:
    return (1 - q) * (1 - p**q) / q + q * (1 - p)


def _posterior(z, w, i, T=1.0):
    logits = [sum(z[i, d].item() * w[c, d].item() for d in range(z.shape[1])) / T for c in range(w.shape[0])]
    den = sum(math.exp(v) for v in logits)
    return [math.exp(v) / den for v in logits]


def _simplex(C: int, L: int) -> torch.Tensor:
    """C unit centres with pairwise cosine −1/(C−1), embedded in R^L (L ≥ C)."""
    m = torch.eye(C, dtype=F64) - 1.0 / C
    w = unit_rows(m)
    return torch.cat([w, torch.zeros(C, L - C, dtype=F64)], dim=1)


# ----------------------------------------------------------------------------- φ_q
@pytest.mark.parametrize("q", [0.01, 0.3, 1.0])
def test_phi_q_formula(q):
    p = torch.tensor([1e-6, 0.01, 0.25, 0.5, 0.9, 1.0], dtype=F64)
    got = phi_q(p, q)
    for i in range(p.numel()):
        assert got[i].item() == pytest.approx(_phi(p[i].item(), q), rel=1e-12, abs=1e-14)
    assert got[-1].item() == pytest.approx(0.0, abs=1e-15)


def test_phi_q_limits_and_errors():
    p = torch.tensor([0.05, 0.3, 0.8], dtype=F64)
    assert torch.allclose(phi_q(p, 1e-7), -p.log(), atol=1e-5)  # q → 0: −log p
    assert torch.allclose(phi_q(p, 1.0), 1.0 - p)  # q = 1: MAE
    for q in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="q must be in"):
            phi_q(p, q)


# ----------------------------------------------------------------------------- posterior, p_Y, CAL
@pytest.mark.parametrize("T", [1.0, 0.5])
def test_class_posterior_naive(T):
    h, _, w, _ = _inputs()
    got = class_posterior(h, w, T)
    for i in range(h.shape[0]):
        ref = _posterior(h, w, i, T)
        for c in range(w.shape[0]):
            assert got[i, c].item() == pytest.approx(ref[c], rel=1e-12)
    assert torch.allclose(got.sum(1), torch.ones(h.shape[0], dtype=F64))


def test_positive_mass_naive_and_single_label():
    h, _, w, y = _inputs()
    p = class_posterior(h, w)
    got = positive_mass(p, y)
    for i in range(h.shape[0]):
        ref = sum(y[i, c].item() * p[i, c].item() for c in range(w.shape[0]))
        assert got[i].item() == pytest.approx(ref, rel=1e-12, abs=1e-15)
    assert got[0].item() == 0.0  # empty label set
    assert got[1].item() == pytest.approx(p[1, 2].item(), rel=1e-12)  # one-hot: p_Y = p_y
    _, _, _, y1 = _inputs(multi=False)
    assert torch.allclose(positive_mass(p, y1), p[torch.arange(p.shape[0]), y1.argmax(1)])


@pytest.mark.parametrize("q", [0.01, 0.5])
def test_cal_loss_naive(q):
    h, t, w, y = _inputs()
    got = cal_loss(h, t, w, y, q)
    for i in range(h.shape[0]):
        ph, pt = _posterior(h, w, i), _posterior(t, w, i)
        py_h = sum(y[i, c].item() * ph[c] for c in range(w.shape[0]))
        py_t = sum(y[i, c].item() * pt[c] for c in range(w.shape[0]))
        assert got[i].item() == pytest.approx(_phi(py_h, q) + _phi(py_t, q), rel=1e-11)
    # an empty label set gives the constant 2·φ_q(0) and no gradient
    assert got[0].item() == pytest.approx(2 * ((1 - q) / q + q), rel=1e-12)
    hh = h.clone().requires_grad_()
    cal_loss(hh, t, w, y, q)[0].backward()
    assert torch.count_nonzero(hh.grad) == 0


# ----------------------------------------------------------------------------- self-paced weights
def test_self_paced_weights_naive():
    loss = torch.tensor([0.0, 1.0, 2.9, 3.0, 3.5, 7.0], dtype=F64, requires_grad=True)
    gamma = 3.0
    lin = self_paced_weights(loss, gamma, "linear")
    hard = self_paced_weights(loss, gamma, "hard")
    off = self_paced_weights(loss, gamma, "off")
    for i, li in enumerate(loss.tolist()):
        assert lin[i].item() == pytest.approx(max(0.0, 1.0 - li / gamma), abs=1e-15)
        assert hard[i].item() == (1.0 if li < gamma else 0.0)
        assert off[i].item() == 1.0
    assert not lin.requires_grad and not hard.requires_grad  # detached, as the code
    with pytest.raises(ValueError, match="linear"):
        self_paced_weights(loss, gamma, "soft")
    with pytest.raises(ValueError, match="positive"):
        self_paced_weights(loss, 0.0)


@pytest.mark.parametrize("mode", ["linear", "hard", "off"])
def test_self_paced_loss_value_and_inert_regulariser(mode):
    loss = torch.tensor([0.5, 2.0, 4.0, 6.0], dtype=F64, requires_grad=True)
    gamma = 5.0
    out, v = self_paced_loss(loss, gamma, mode)
    for i, li in enumerate(loss.tolist()):
        vi = {"linear": max(0.0, 1 - li / gamma), "hard": float(li < gamma), "off": 1.0}[mode]
        reg = {"linear": gamma * (vi * vi / 2 - vi), "hard": -gamma * vi, "off": 0.0}[mode]
        assert v[i].item() == pytest.approx(vi, abs=1e-15)
        assert out[i].item() == pytest.approx(vi * li + reg, rel=1e-12, abs=1e-12)
    out.sum().backward()
    assert torch.allclose(loss.grad, v)  # v is detached: the regulariser adds no gradient


# ----------------------------------------------------------------------------- CHL
def _naive_chl_terms(h, t, q, tau):
    """(direction 1, direction 2) as the two blocks of the code: row sums over l ≠ k."""
    n = h.shape[0]
    a = torch.cat([h, t]).tolist()
    dot = lambda x, z: sum(xi * zi for xi, zi in zip(x, z))  # noqa: E731
    sim = [[0.0 if k == m else math.exp(dot(a[k], a[m]) / tau) for m in range(2 * n)] for k in range(2 * n)]
    d1 = d2 = 0.0
    for k in range(2 * n):
        kp = k + n if k < n else k - n
        den = sum(sim[k])
        d1 += _phi(sim[k][kp] / den, q)  # numerator from row k
        d2 += _phi(sim[kp][k] / den, q)  # numerator from column k
    return d1 / (2 * n), d2 / (2 * n)


@pytest.mark.parametrize(("q", "tau"), [(0.01, 1.0), (0.4, 0.5)])
def test_chl_loss_naive(q, tau):
    h, t, _, _ = _inputs(n=5)
    d1, d2 = _naive_chl_terms(h, t, q, tau)
    assert d1 == pytest.approx(d2, rel=1e-12)  # the code's two directions coincide
    assert chl_loss(h, t, q, tau).item() == pytest.approx(d1 + d2, rel=1e-11)
    assert chl_loss(h, t, q, tau, doubled=False).item() == pytest.approx(d1, rel=1e-11)


# ----------------------------------------------------------------------------- total
def test_rshnl_loss_before_and_after_tp():
    h, t, w, y = _inputs(n=8, L=6, C=5, seed=3)
    kw = dict(tp=5, gamma=4.0, alpha=0.1, lam=1.0, q=0.01, tau=1.0)
    ell = cal_loss(h, t, w, y, 0.01)
    lc = chl_loss(h, t, 0.01, 1.0)
    before = rshnl_loss(h, t, w, y, epoch=4, **kw)
    assert before["loss"].item() == pytest.approx(ell.mean().item() + 0.1 * lc.item(), rel=1e-12)
    assert torch.equal(before["weights"], torch.ones_like(ell))
    after = rshnl_loss(h, t, w, y, epoch=5, **kw)
    v = [max(0.0, 1 - li / 4.0) for li in ell.tolist()]
    cal = sum(vi * li + 4.0 * (vi * vi / 2 - vi) for vi, li in zip(v, ell.tolist())) / len(v)
    assert after["loss"].item() == pytest.approx(cal + 0.1 * lc.item(), rel=1e-11)
    assert after["weights"].tolist() == pytest.approx(v, abs=1e-15)
    assert after["loss_cal_raw"].item() == pytest.approx(ell.mean().item(), rel=1e-12)
    off = rshnl_loss(h, t, w, y, epoch=9, self_paced="off", **kw)
    assert off["loss"].item() == pytest.approx(before["loss"].item(), rel=1e-12)


def test_rshnl_zero_weight_rows_get_no_cal_gradient():
    h, t, w, y = _inputs(n=8, L=6, C=5, seed=4)
    ell = cal_loss(h, t, w, y)
    gamma = float(ell.median())  # about half the rows above γ → v = 0
    hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
    out = rshnl_loss(hh, t, ww, y, epoch=10, gamma=gamma, alpha=0.0)
    out["loss"].backward()
    zero = out["weights"] == 0
    assert zero.any() and (~zero).any()
    assert torch.count_nonzero(hh.grad[zero]) == 0
    assert torch.count_nonzero(hh.grad[~zero]) > 0


# ----------------------------------------------------------------------------- γ rule
@pytest.mark.parametrize("C", [3, 10, 20])
def test_loss_floor_single_label_is_the_simplex_value(C):
    w = _simplex(C, C + 2)
    y = torch.eye(C, dtype=F64)
    at_centre = cal_loss(w, w, w, y)  # each code sitting on its own centre
    exact = 2 * _phi(math.e / (math.e + (C - 1) * math.exp(-1 / (C - 1))), 0.01)
    assert torch.allclose(at_centre, torch.full((C,), exact, dtype=F64), rtol=1e-12)
    for L in (C - 1, C + 2, 128):
        assert loss_floor(C, L) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize(("C", "k"), [(6, 2), (9, 3), (12, 5)])
def test_loss_floor_multi_label_symmetric_point(C, k):
    w = _simplex(C, C + 1)
    y = torch.zeros(3, C, dtype=F64)
    for r, start in enumerate((0, 1, 3)):
        y[r, [(start + j) % C for j in range(k)]] = 1.0
    z = unit_rows(y @ w)  # the normalised mean of the positive centres
    got = cal_loss(z, z, w, y)
    assert torch.allclose(got, torch.full((3,), loss_floor(C, C + 1, k), dtype=F64), rtol=1e-12)


def test_loss_floor_grows_with_classes_and_shrinks_with_bits():
    floors = [loss_floor(C, 64) for C in (10, 21, 24, 80, 255)]
    assert floors == sorted(floors)
    assert floors[-1] > 5.0 > floors[0]  # γ = 5 lies below the floor at C = 255
    by_bits = [loss_floor(255, L, k=6) for L in (16, 32, 64, 128)]
    assert by_bits == sorted(by_bits, reverse=True)
    assert loss_floor(24, 64, k=4) < loss_floor(24, 64, k=1)  # more positives, lower floor


def test_loss_floor_table_values():
    # the docstring table (two modalities, q = 0.01)
    assert loss_floor(10, 16) == pytest.approx(2.72, abs=0.005)
    assert loss_floor(24, 64, k=4) == pytest.approx(2.67, abs=0.005)
    assert loss_floor(21, 64, k=2) == pytest.approx(3.34, abs=0.005)
    assert loss_floor(80, 64, k=3) == pytest.approx(5.34, abs=0.005)
    assert loss_floor(255, 16, k=6) == pytest.approx(6.59, abs=0.005)
    assert loss_floor(255, 128, k=6) == pytest.approx(6.54, abs=0.005)


def test_loss_floor_below_simplex_dimension_matches_an_optimised_frame():
    # C = 12 centres in L = 4 dims: optimise centres and codes jointly; the closed form
    # (tight-frame spread) must be within 1 % of the optimum
    C, L = 12, 4
    g = torch.Generator().manual_seed(0)
    W = torch.randn(C, L, generator=g, dtype=F64).requires_grad_()
    Z = W.detach().clone().requires_grad_()
    opt = torch.optim.Adam([W, Z], lr=0.1)
    y = torch.eye(C, dtype=F64)
    for _ in range(150):
        wn, zn = unit_rows(W), unit_rows(Z)
        loss = cal_loss(zn, zn, wn, y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() == pytest.approx(loss_floor(C, L), rel=0.01)
    assert loss_floor(C, L) > loss_floor(C, C - 1)


def test_auto_gamma_reproduces_official_values():
    for C, official in OFFICIAL_GAMMA.items():
        assert auto_gamma(C, 128) == pytest.approx(official, abs=0.55)
    assert auto_gamma(20, 128) == pytest.approx(GAMMA_RATIO * loss_floor(20, 128), rel=1e-15)
    # at the floor, a sample keeps weight 1 − 1/ρ > 0 for every C, unlike a fixed γ = 5
    for C, k in ((10, 1), (24, 4), (21, 2), (80, 3), (255, 6)):
        floor = torch.tensor([loss_floor(C, 64, k)], dtype=F64)
        v = self_paced_weights(floor, auto_gamma(C, 64, k))
        assert v.item() == pytest.approx(1 - 1 / GAMMA_RATIO, rel=1e-12)
    assert self_paced_weights(torch.tensor([loss_floor(255, 64, 6)]), 5.0).item() == 0.0


def test_gamma_rule_errors():
    with pytest.raises(ValueError, match="at least 2 classes"):
        loss_floor(1, 16)
    with pytest.raises(ValueError, match="k"):
        loss_floor(10, 16, k=10)
    with pytest.raises(ValueError, match="bits"):
        loss_floor(10, 0)
    with pytest.raises(ValueError, match="ratio"):
        auto_gamma(10, 16, ratio=1.0)


def test_empirical_floor():
    x = np.random.default_rng(0).gamma(3.0, 1.0, size=101)
    assert empirical_floor(x) == pytest.approx(float(np.percentile(x, 5)), rel=1e-15)
    assert empirical_floor(torch.tensor(x), 50) == pytest.approx(float(np.median(x)), rel=1e-15)
    with pytest.raises(ValueError, match="finite"):
        empirical_floor(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="percentile"):
        empirical_floor(x, 101)


# ----------------------------------------------------------------------------- γ resolution
def test_resolve_gamma_auto_is_the_rule_for_the_labels():
    one_hot = np.eye(10)[np.arange(40) % 10]
    gamma, info = resolve_gamma("auto", one_hot, 64)
    assert gamma == pytest.approx(auto_gamma(10, 64), rel=1e-15)
    assert info == {"num_classes": 10.0, "k": 1.0, "loss_floor": pytest.approx(loss_floor(10, 64))}
    multi = np.zeros((4, 24))
    multi[0, :3] = multi[1, :5] = multi[2, :4] = 1  # row 3 has no label: not counted in k̄
    gamma, info = resolve_gamma("auto", torch.tensor(multi), 32)
    assert info["k"] == pytest.approx(4.0)
    assert gamma == pytest.approx(auto_gamma(24, 32, k=4.0), rel=1e-15)
    assert resolve_gamma("auto", multi, 32, ratio=1.5)[0] == pytest.approx(1.5 * loss_floor(24, 32, 4.0))
    assert resolve_gamma(7.5, one_hot, 64) == (7.5, {})
    with pytest.raises(ConfigError, match="at least 2 classes"):
        resolve_gamma("auto", np.ones((5, 1)), 16)
    with pytest.raises(ConfigError, match="labelled"):
        resolve_gamma("auto", np.zeros((5, 4)), 16)


def test_gamma_parameter_accepts_auto_or_a_positive_number():
    assert RSHNL.Params.check({}).gamma == "auto"
    assert RSHNL.Params.check({"gamma": "3"}).gamma == 3.0  # a CLI string
    assert RSHNL.Params.check({"gamma": "Auto"}).gamma == "auto"
    for bad in (0, -1, "fast", True, float("nan")):
        with pytest.raises(ConfigError, match=r"'gamma'.*'auto' or a positive number"):
            RSHNL.Params.check({"gamma": bad}, owner="method 'rshnl'")


def test_presets_and_official_per_dataset_values():
    _, paper = RSHNL.resolve_params("paper")
    assert (paper["hidden"], paper["epochs"], paper["batch_size"], paper["lr"]) == (4096, 150, 256, 1e-4)
    assert (paper["tp"], paper["gamma"], paper["alpha"], paper["lam"], paper["q"], paper["tau"]) == (
        5,
        "auto",
        0.1,
        1.0,
        0.01,
        1.0,
    )
    _, wiki = RSHNL.resolve_params("paper", dataset="wiki")
    assert (wiki["gamma"], wiki["alpha"]) == (3.0, 0.05)  # argparse comments, wiki entries
    _, fast = RSHNL.resolve_params("fast", dataset="wiki")
    assert (fast["hidden"], fast["epochs"], fast["gamma"], fast["alpha"]) == (1024, 50, 3.0, 0.05)
    _, coco = RSHNL.resolve_params("fast", dataset="coco")
    assert (coco["gamma"], coco["alpha"]) == ("auto", 0.1)
    user, over = RSHNL.resolve_params("fast", {"gamma": "auto"}, dataset="wiki")
    assert user == {"gamma": "auto"} and over["gamma"] == "auto"


# ----------------------------------------------------------------------------- the method's epoch log
def _fit_logs(data: TrainData, **params):
    m = create_method("rshnl", 16, "tiny", **params)
    logs = []
    m.fit(data, seed=0, callback=logs.append)
    return m, logs


def test_epoch_log_weights_are_the_self_paced_weights_of_every_row(mock):
    data = mock.train
    m, logs = _fit_logs(data)
    tp = m.p.tp
    gamma = auto_gamma(data.num_classes, 16, k=float(data.labels.sum(1)[data.labels.sum(1) > 0].mean()))
    zero_seen = positive_seen = False
    for log in logs:
        assert log.values["gamma"] == pytest.approx(gamma, rel=1e-12)
        w, ell = log.weights, log.sample_loss
        assert w.shape == ell.shape == (data.n,) and np.isfinite(ell).all() and (ell > 0).all()
        if log.epoch < tp:
            assert (w == 1).all() and log.values["zero_weight_fraction"] == 0.0
        else:  # each row's v from the batch it trained in: max(0, 1 − ℓ/γ) of that row's ℓ
            np.testing.assert_allclose(w, np.maximum(0.0, 1.0 - ell / gamma), rtol=1e-5, atol=1e-6)
            assert log.values["zero_weight_fraction"] == pytest.approx(float((w == 0).mean()))
            zero_seen |= bool((w == 0).any())
            positive_seen |= bool((w > 0).any())
        # the logged total is λ·mean ℓ̃ + α·L_c, batch means of the same terms
        assert log.losses["loss"] == pytest.approx(
            m.p.lam * log.losses["loss_cal"] + m.p.alpha * log.losses["loss_chl"]
        )
        assert log.times["train"] > 0
    assert zero_seen and positive_seen  # the test exercises both sides of the threshold


@pytest.mark.parametrize("mode", ["hard", "off"])
def test_epoch_log_weights_hard_and_off(mock, mode):
    _, logs = _fit_logs(mock.train, self_paced=mode, gamma=4.3, epochs=5)
    last = logs[-1]
    assert last.values["gamma"] == 4.3
    expected = (last.sample_loss < 4.3).astype(float) if mode == "hard" else np.ones_like(last.weights)
    np.testing.assert_array_equal(last.weights, expected)


def test_rows_without_labels_train_and_get_weight_zero(mock):
    d = mock.train
    labels = d.labels.clone()
    labels[:7] = 0.0
    _, logs = _fit_logs(TrainData(d.image, d.text, labels, d.device), gamma=5.0)
    last = logs[-1]
    q = 0.01
    np.testing.assert_allclose(last.sample_loss[:7], 2 * ((1 - q) / q + q), rtol=1e-6)  # 2·φ_q(0)
    assert (last.weights[:7] == 0).all()
    assert all(np.isfinite(log.losses["loss"]) for log in logs)


def test_runner_end_to_end_above_chance():
    rec = tiny_run("rshnl")
    assert rec.status == "ok"
    for direction in ("i2t", "t2i"):
        assert rec.metrics[direction]["map"] > rec.metrics[direction]["chance"] + 0.02
    last = rec.history[-1].model_dump()
    assert last["gamma"] > 0 and 0 < last["zero_weight_fraction"] < 1
    assert last["weight_mean_clean"] is not None and last["weight_mean_noisy"] is not None
    assert "sample_loss_hist" in rec.diagnostics
