"""MRL (hashed reading, PEERS.md §5): the pure functions against their formulas with naive
loops (float64), the centre initialisation for K ≤ L and K > L, the paper/code switches; the
method class (presets, the lagged cosine schedule, centres renormalised before every step,
logged loss terms, K > L) and a runner-level run."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import dot, tiny_run, unit_outputs
from torch import nn

import nrchbench.methods.mrl as mrl_module
from nrchbench.errors import ConfigError
from nrchbench.methods import create_method
from nrchbench.methods.base import TrainData
from nrchbench.methods.mrl import (
    MRL,
    init_centres,
    learning_rate,
    mc_loss,
    mrl_loss,
    normalise_centres,
    rc_loss,
)

torch.set_num_threads(1)
F64 = torch.float64


def _inputs(n=6, L=5, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1, z2 = unit_outputs(n, L, generator=g)
    c = torch.randn(L, K, generator=g, dtype=F64)
    c = c / c.norm(dim=0, keepdim=True)
    y = (torch.rand(n, K, generator=g, dtype=F64) < 0.4).to(F64)
    y[0] = 0.0
    y[0, 1] = 1.0  # single-label row
    y[1] = 0.0  # empty row
    return z1, z2, c, y


# ----------------------------------------------------------------------------- centres
@pytest.mark.parametrize(("K", "L"), [(10, 16), (10, 10), (24, 64)])
def test_init_centres_orthonormal_columns_when_k_le_l(K, L):
    c = init_centres(K, L, torch.Generator().manual_seed(0), dtype=F64)
    assert c.shape == (L, K)
    assert torch.allclose(c.t() @ c, torch.eye(K, dtype=F64), atol=1e-12)


@pytest.mark.parametrize(("K", "L"), [(80, 16), (255, 64), (255, 128)])
def test_init_centres_work_for_more_classes_than_bits(K, L):
    c = init_centres(K, L, torch.Generator().manual_seed(1), dtype=F64)
    assert c.shape == (L, K)
    assert torch.allclose(c.norm(dim=0), torch.ones(K, dtype=F64), atol=1e-12)
    assert torch.linalg.matrix_rank(c).item() == L
    # from an orthonormal-row matrix: the frame operator stays close to (K/L)·I
    frame = c @ c.t() * (L / K)
    assert torch.allclose(frame, torch.eye(L, dtype=F64), atol=0.35)
    with pytest.raises(ValueError, match="direct"):
        init_centres(K, L, torch.Generator().manual_seed(1), mode="slice")


def test_init_centres_seeded_and_slice_mode():
    a = init_centres(10, 16, torch.Generator().manual_seed(3))
    b = init_centres(10, 16, torch.Generator().manual_seed(3))
    c = init_centres(10, 16, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # 'slice' = the code's construction: first K columns of an L×L orthogonal_ draw
    ref = torch.empty(16, 16)
    nn.init.orthogonal_(ref, generator=torch.Generator().manual_seed(5))
    got = init_centres(10, 16, torch.Generator().manual_seed(5), mode="slice")
    assert torch.equal(got, ref[:, :10])
    with pytest.raises(ValueError, match="mode"):
        init_centres(10, 16, torch.Generator(), mode="eye")


def test_normalise_centres_naive():
    c = torch.tensor([[3.0, 0.0, 1.0], [4.0, 2.0, -1.0]], dtype=F64)
    got = normalise_centres(c)
    for k in range(3):
        norm = math.sqrt(sum(c[r, k].item() ** 2 for r in range(2)))
        for r in range(2):
            assert got[r, k].item() == pytest.approx(c[r, k].item() / norm, rel=1e-15)


# ----------------------------------------------------------------------------- RC
@pytest.mark.parametrize(("tau", "eps"), [(1.0, 0.0), (1.0, 1e-7), (0.5, 1e-3)])
def test_rc_loss_naive(tau, eps):
    z, _, c, y = _inputs()
    got = rc_loss(z, c, y, tau, eps)
    n, K = y.shape
    for i in range(n):
        logits = [dot(z[i].tolist(), c[:, k].tolist()) / tau for k in range(K)]
        den = sum(math.exp(v) for v in logits)
        p = [math.exp(v) / den for v in logits]
        p_y = sum(y[i, k].item() * p[k] for k in range(K))
        assert got[i].item() == pytest.approx(math.log(1 - p_y + eps), rel=1e-11, abs=1e-14)
        if y[i].sum() == 1 and eps == 0:  # the code's form: log(Σ (1 − onehot)·p / Σ p)
            k_true = int(y[i].argmax())
            code = math.log(sum(p[k] for k in range(K) if k != k_true) / sum(p))
            assert got[i].item() == pytest.approx(code, rel=1e-12)
    assert got[1].item() == pytest.approx(math.log(1 + eps), abs=1e-15)  # empty row


def test_rc_loss_all_positive_row_needs_eps():
    z, _, c, _ = _inputs()
    y = torch.ones(z.shape[0], c.shape[1], dtype=F64)
    assert torch.isinf(rc_loss(z, c, y, eps=0.0)).all()  # the code's form: log 0
    assert torch.allclose(rc_loss(z, c, y), torch.full((z.shape[0],), math.log(1e-7), dtype=F64))


# ----------------------------------------------------------------------------- MC
def _naive_mc(z1, z2, tau, keep):
    n = z1.shape[0]
    a = torch.cat([z1, z2]).tolist()
    total = 0.0
    for k in range(2 * n):
        kp = k + n if k < n else k - n
        e = [math.exp(dot(a[k], a[m]) / tau) for m in range(2 * n)]
        if keep:  # paper eq. 6: Σ_modalities of the instance over Σ_all, self included
            p = (e[k] + e[kp]) / sum(e)
        else:  # the code: self-similarity zeroed
            p = e[kp] / (sum(e) - e[k])
        total += -math.log(p)
    return total / (2 * n)


@pytest.mark.parametrize("tau", [1.0, 0.3])
@pytest.mark.parametrize("self_similarity", ["zero", "keep"])
def test_mc_loss_naive(tau, self_similarity):
    z1, z2, _, _ = _inputs(n=5)
    ref = _naive_mc(z1, z2, tau, self_similarity == "keep")
    assert mc_loss(z1, z2, tau, self_similarity).item() == pytest.approx(2 * ref, rel=1e-11)
    assert mc_loss(z1, z2, tau, self_similarity, doubled=False).item() == pytest.approx(ref, rel=1e-11)


def test_mc_loss_bad_switch():
    z1, z2, _, _ = _inputs()
    with pytest.raises(ValueError, match="self_similarity"):
        mc_loss(z1, z2, self_similarity="drop")


# ----------------------------------------------------------------------------- total
def test_mrl_loss_total_and_gradients():
    z1, z2, c, y = _inputs(n=7, L=6, K=5, seed=2)
    beta = 0.7
    r1, r2 = rc_loss(z1, c, y), rc_loss(z2, c, y)
    out = mrl_loss(z1, z2, c, y, beta=beta)
    lr = r1.mean().item() + r2.mean().item()
    lc = mc_loss(z1, z2).item()
    assert out["loss_rc"].item() == pytest.approx(lr, rel=1e-12)
    assert out["loss_mc"].item() == pytest.approx(lc, rel=1e-12)
    assert out["loss"].item() == pytest.approx(beta * lr + (1 - beta) * lc, rel=1e-12)
    assert torch.allclose(out["sample_loss"], r1 + r2)
    cc = c.clone().requires_grad_()
    mrl_loss(z1, z2, cc, y, beta=1.0)["loss"].backward()
    assert torch.isfinite(cc.grad).all() and cc.grad.abs().sum() > 0  # RC trains the centres
    cc.grad = None
    mrl_loss(z1, z2, cc, y, beta=0.0)["loss"].backward()
    assert cc.grad is None or torch.count_nonzero(cc.grad) == 0  # MC does not
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match="beta"):
            mrl_loss(z1, z2, c, y, beta=bad)


# ----------------------------------------------------------------------------- schedule
def test_learning_rate_schedules():
    T, lr = 30, 1e-4
    eta = lambda t: lr * (1 + math.cos(math.pi * t / T)) / 2  # noqa: E731
    lagged = [learning_rate(e, lr, T) for e in range(T)]
    assert lagged[0] == lagged[1] == lr  # the code: epochs 0 and 1 at the full rate
    assert lagged[2] == pytest.approx(eta(1), rel=1e-15)  # 7.5e-05 in the official run's log
    assert lagged[24] == pytest.approx(1.28428e-05, rel=1e-5)  # README log, epoch 24 of 30
    assert lagged[-1] == pytest.approx(eta(T - 2), rel=1e-15) and lagged[-1] > 0
    assert [learning_rate(e, lr, T, "cosine") for e in range(T)] == pytest.approx([eta(e) for e in range(T)])
    assert learning_rate(7, lr, T, "constant") == lr
    with pytest.raises(ConfigError, match="lr_schedule"):
        learning_rate(0, lr, T, "step")


# ----------------------------------------------------------------------------- the method
def test_presets_and_official_per_dataset_values():
    _, paper = MRL.resolve_params("paper")
    assert (paper["hidden"], paper["epochs"], paper["batch_size"], paper["lr"]) == (4096, 100, 100, 1e-4)
    assert (paper["adam_beta1"], paper["adam_beta2"], paper["weight_decay"]) == (0.5, 0.999, 0.0)
    assert (paper["beta"], paper["tau"], paper["lr_schedule"], paper["self_similarity"]) == (
        0.7,
        1.0,
        "cosine-lagged",
        "zero",
    )
    _, wiki = MRL.resolve_params("paper", dataset="wiki")
    assert (wiki["epochs"], wiki["batch_size"], wiki["beta"]) == (30, 100, 0.7)  # README's wiki command
    _, fast = MRL.resolve_params("fast", dataset="coco")
    assert (fast["hidden"], fast["epochs"]) == (1024, 30)


def test_epoch_log_terms_schedule_and_normalised_centres(mock, monkeypatch):
    norms = []
    real = mrl_module.mrl_loss

    def spy(z1, z2, centres, labels, **kw):
        norms.append(centres.detach().norm(dim=0))
        return real(z1, z2, centres, labels, **kw)

    monkeypatch.setattr(mrl_module, "mrl_loss", spy)
    m = create_method("mrl", 16, "tiny", beta=0.6)
    logs = []
    m.fit(mock.train, seed=0, callback=logs.append)
    steps = math.ceil(mock.train.n / m.p.batch_size)
    assert len(norms) == steps * m.p.epochs
    for n in norms:  # C.data = C / ‖C‖ before every step
        assert torch.allclose(n, torch.ones_like(n), atol=1e-6)
    assert m.C.shape == (16, mock.train.num_classes)
    for log in logs:
        assert log.values["lr"] == learning_rate(log.epoch, m.p.lr, m.p.epochs)
        assert log.losses["loss"] == pytest.approx(0.6 * log.losses["loss_rc"] + 0.4 * log.losses["loss_mc"])
        assert log.losses["loss_rc"] < 0 < log.losses["loss_mc"]
        assert log.sample_loss.shape == (mock.train.n,) and (log.sample_loss <= 0).all()
    assert logs[-1].losses["loss"] < logs[0].losses["loss"]


def test_more_classes_than_bits(mock):
    d = mock.train
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(d.n, 40, generator=g) < 0.1).float()
    data = TrainData(d.image, d.text, labels, d.device)
    m = create_method("mrl", 16, "tiny", epochs=2)
    m.fit(data, seed=0)
    assert m.C.shape == (16, 40) and torch.isfinite(m.encode("image", mock.query_image)).all()
    with pytest.raises(ConfigError, match="centre_init"):
        create_method("mrl", 16, "tiny", centre_init="slice").fit(data, seed=0)


def test_without_tanh_outputs_are_unit_rows(mock):
    m = create_method("mrl", 16, "tiny", epochs=1, tanh=False)
    m.fit(mock.train, seed=0)
    out = m.encode("text", mock.query_text)
    assert torch.allclose(out.norm(dim=1), torch.ones(out.shape[0]), atol=1e-5)


def test_runner_end_to_end_above_chance():
    rec = tiny_run("mrl")
    assert rec.status == "ok"
    # MRL's single-label losses on 24-class multi-label data at 16 bits (K > L) learn little in
    # seconds: measured 0.368/0.369 vs chance 0.348 (zscore inputs), 0.384/0.383 as given
    for direction in ("i2t", "t2i"):
        assert rec.metrics[direction]["map"] > rec.metrics[direction]["chance"] + 0.012
    last = rec.history[-1].model_dump()
    assert {"loss", "loss_rc", "loss_mc", "lr"} <= set(last)
