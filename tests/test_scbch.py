"""SCBCH: the pure functions against naive loops over their formulas (PEERS.md §2.3–2.4), and
the method class — its wiring against a hand-written official training epoch, per-dataset
values, per-epoch diagnostics and an end-to-end tiny run through the runner."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import dot, tiny_run, unit_outputs, unit_rows

from nrchbench.methods import create_method, scbch
from nrchbench.methods.base import Rng
from nrchbench.methods.scbch import (
    bidirectional_contrastive_loss,
    class_probabilities,
    classification_loss,
    jaccard_similarity,
    knn_agreement_weights,
    quantization_loss,
    scbch_batch_loss,
)
from nrchbench.testing import mock_data

torch.set_num_threads(1)
F64 = torch.float64


# ----------------------------------------------------------------------------- inputs
def _labels(n: int, C: int, seed: int, p: float = 0.35) -> torch.Tensor:
    """Random multi-hot labels with an empty row (index 1) and a duplicate of row 0 (index 2)."""
    g = torch.Generator().manual_seed(seed + 1000)
    y = (torch.rand(n, C, generator=g, dtype=F64) < p).to(F64)
    y[0, 0] = 1.0
    y[1] = 0.0
    y[2] = y[0]
    return y


def _jac(y: torch.Tensor, i: int, j: int) -> float:
    inter = sum(float(y[i, c]) * float(y[j, c]) for c in range(y.shape[1]))
    return inter / (float(y[i].sum()) + float(y[j].sum()) - inter + 1e-8)


# ----------------------------------------------------------------------------- Jaccard
def test_jaccard_equals_loop():
    y = _labels(9, 5, 0)
    J = jaccard_similarity(y)
    for i in range(9):
        for j in range(9):
            assert J[i, j].item() == pytest.approx(_jac(y, i, j), abs=1e-15)
    assert J[0, 2].item() == pytest.approx(1.0)  # identical label sets
    assert J[1, 1].item() == 0.0  # an empty row is similar to nothing, itself included


# ----------------------------------------------------------------------------- L_con
def _naive_con(u, v, y, m, s, tau):
    """PEERS.md §2.3 L_con with explicit loops."""
    n = u.shape[0]
    S = [[dot(u[i], v[j]) for j in range(n)] for i in range(n)]
    exps = pull = 0.0
    for i in range(n):
        for j in range(n):
            J = _jac(y, i, j)
            if i == j:
                a = b = max(S[i][i] if S[i][i] >= S[i][i] - m else S[i][i] - s, 0.0)
            else:
                a = S[i][j] if S[i][j] >= S[i][i] - m else S[i][j] - s  # row anchor: image i
                b = S[i][j] if S[i][j] >= S[j][j] - m else S[i][j] - s  # column anchor: text j
                if J > 0:
                    pull += math.exp(s - S[i][j])
            exps += tau * math.exp((1 - J) * a / tau) + tau * math.exp((1 - J) * b / tau)
    return exps / n**2 + pull / n**2 - sum(S[i][i] for i in range(n)) / n


@pytest.mark.parametrize(
    ("m", "s", "tau"), [(0.2, 1.0, 1.0), (0.15, 0.8, 1.0), (0.3, 1.2, 0.5), (0.0, 0.0, 1.0), (2.0, 1.0, 1.0)]
)
def test_contrastive_equals_loop(m, s, tau):
    u, v = unit_outputs(8, 6, 1)
    y = _labels(8, 4, 1)
    got = bidirectional_contrastive_loss(u, v, y, margin=m, shift=s, tau=tau)
    assert got.item() == pytest.approx(_naive_con(u, v, y, m, s, tau), rel=1e-12, abs=1e-12)


def test_contrastive_column_mask_is_relative_to_the_column_diagonal():
    """With S_ii ≫ S_jj the row and column masks differ; a row-only reading gives another value."""
    u, v = unit_outputs(6, 5, 2)
    y = _labels(6, 3, 2)
    u = u.clone()
    u[0] = v[0]  # S_00 = 1: row 0's negatives are all "easy", column 0's are not
    got = bidirectional_contrastive_loss(u, v, y, margin=0.2, shift=1.0).item()
    assert got == pytest.approx(_naive_con(u, v, y, 0.2, 1.0, 1.0), rel=1e-12)
    S = u @ v.t()
    rows_only = 2 * torch.where(S >= S.diagonal()[:, None] - 0.2, S, S - 1.0)
    assert not torch.equal(rows_only, rows_only.t())  # the two masks really differ here


def test_contrastive_gradient_reaches_both_modalities():
    u, v = unit_outputs(5, 4, 3)
    u.requires_grad_(True)
    v.requires_grad_(True)
    bidirectional_contrastive_loss(u, v, _labels(5, 3, 3)).backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    assert v.grad is not None and v.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- L_q, L_cls
def test_quantization_equals_loop():
    u, v = unit_outputs(7, 5, 4)
    u = u.clone()
    u[0, 0] = 0.0  # sign(0) = 0: the entry costs 0

    def sign(t: float) -> float:
        return (t > 0) - (t < 0)

    naive = 0.0
    for x in (u, v):
        naive += sum(abs(float(x[i, k]) - sign(float(x[i, k]))) for i in range(7) for k in range(5)) / 35
    assert quantization_loss(u, v).item() == pytest.approx(naive, rel=1e-13)


def _bce(p: float, y: float) -> float:
    log = lambda t: max(math.log(t), -100.0) if t > 0 else -100.0  # noqa: E731
    return -(y * log(p) + (1 - y) * log(1 - p))


@pytest.mark.parametrize("weighted", [False, True])
def test_classification_equals_loop(weighted):
    n, L, C = 6, 5, 4
    u, v = unit_outputs(n, L, 5)
    g = torch.Generator().manual_seed(5)
    W_u = torch.randn(L, C, generator=g, dtype=F64)
    W_v = torch.randn(L, C, generator=g, dtype=F64)
    y = _labels(n, C, 5)
    w = torch.rand(n, generator=g, dtype=F64) if weighted else None
    p_u, p_v = class_probabilities(u, W_u), class_probabilities(v, W_v)
    p_u = p_u.clone()
    p_u[3, 0], y[3, 0] = 0.0, 1.0  # log(0): clamped at −100 as F.binary_cross_entropy does
    naive = 0.0
    for i in range(n):
        bu = sum(_bce(float(p_u[i, c]), float(y[i, c])) for c in range(C)) / C
        bv = sum(_bce(float(p_v[i, c]), float(y[i, c])) for c in range(C)) / C
        naive += (float(w[i]) if weighted else 1.0) * 0.5 * (bu + bv)
    assert classification_loss(p_u, p_v, y, w).item() == pytest.approx(naive / n, rel=1e-12)
    for i in range(n):
        for c in range(C):
            assert float(p_v[i, c]) == pytest.approx(1 / (1 + math.exp(-dot(v[i], W_v[:, c]))), rel=1e-13)


def test_batch_loss_combines_terms_and_trains_the_hash_nets():
    n, L, C = 6, 8, 3
    u, v = unit_outputs(n, L, 6)
    u.requires_grad_(True)
    g = torch.Generator().manual_seed(6)
    W_u = torch.randn(L, C, generator=g, dtype=F64, requires_grad=True)
    W_v = torch.randn(L, C, generator=g, dtype=F64, requires_grad=True)
    y = _labels(n, C, 6)
    w = torch.rand(n, generator=g, dtype=F64)
    out = scbch_batch_loss(u, v, W_u, W_v, y, w, margin=0.15, shift=0.8, alpha=0.7, beta=0.3, lambda_cls=1.0)
    assert out["loss_con"].item() == pytest.approx(_naive_con(u.detach(), v, y, 0.15, 0.8, 1.0), rel=1e-12)
    expected = 0.7 * out["loss_con"] + 0.3 * out["loss_q"] + out["loss_cls"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-14)
    # The classifier gradient flows into the hash outputs (no detach, unlike NRCH's L_W).
    l_cls_only = scbch_batch_loss(u, v, W_u, W_v, y, w, alpha=0.0, beta=0.0)["loss"]
    (grad_u,) = torch.autograd.grad(l_cls_only, u)
    assert grad_u.abs().sum() > 0


# ----------------------------------------------------------------------------- k-NN weights
def _naive_weights(u, v, y, k, gamma, clamp):
    """PEERS.md §2.4 with loops: returns (weights, rows with a top-k sum ≤ 0)."""
    n = u.shape[0]
    uh, vh = unit_rows(u), unit_rows(v)
    A = [[0.0 if i == j else 0.5 * (dot(uh[i], uh[j]) + dot(vh[i], vh[j])) for j in range(n)] for i in range(n)]
    k = min(k, n)
    out, bad = [], 0
    for i in range(n):
        nbrs = sorted(range(n), key=lambda j: -A[i][j])[:k]  # self (a_ii = 0) is a candidate
        a = [A[i][j] for j in nbrs]
        bad += sum(a) <= 0
        if clamp:
            a = [max(x, 0.0) for x in a]
        total = sum(a) + 1e-8
        vote = [sum(a[r] / total * float(y[j, c]) for r, j in enumerate(nbrs)) for c in range(y.shape[1])]
        yi = [float(t) for t in y[i]]
        ny = max(math.sqrt(sum(t * t for t in yi)), 1e-8)
        nv = max(math.sqrt(sum(t * t for t in vote)), 1e-8)
        cos = sum(p * q for p, q in zip(yi, vote)) / (ny * nv)
        out.append(gamma + (1 - gamma) * cos)
    return torch.tensor(out, dtype=F64), bad


@pytest.mark.parametrize("clamp", [False, True])
@pytest.mark.parametrize(("k", "chunk"), [(3, 2048), (5, 1), (4, 3), (40, 7)])
def test_knn_weights_equal_loop(k, chunk, clamp):
    n = 17
    u, v = unit_outputs(n, 6, 7)
    y = _labels(n, 5, 7)
    got = knn_agreement_weights(u, v, y, k=k, gamma=0.5, clamp_sim=clamp, chunk_size=chunk)
    want, bad = _naive_weights(u, v, y, k, 0.5, clamp)
    torch.testing.assert_close(got.weights, want, rtol=1e-12, atol=1e-12)
    assert got.num_nonpositive == bad
    assert got.weights[1].item() == pytest.approx(0.5)  # ỹ_1 = 0: cos = 0, w = γ


def test_knn_weights_chunking_does_not_change_the_result():
    u, v = unit_outputs(50, 8, 8)
    y = _labels(50, 6, 8)
    full = knn_agreement_weights(u, v, y, k=5, chunk_size=10_000).weights
    for chunk in (1, 7, 49):
        torch.testing.assert_close(
            knn_agreement_weights(u, v, y, k=5, chunk_size=chunk).weights, full, rtol=0, atol=1e-14
        )


def test_knn_weights_never_hold_the_full_matrix(monkeypatch):
    seen = []
    real_topk = torch.topk

    def spy(x, *args, **kwargs):
        seen.append(tuple(x.shape))
        return real_topk(x, *args, **kwargs)

    monkeypatch.setattr(scbch.torch, "topk", spy)
    u, v = unit_outputs(30, 4, 9)
    knn_agreement_weights(u, v, _labels(30, 3, 9), k=4, chunk_size=8)
    assert seen == [(8, 30), (8, 30), (8, 30), (6, 30)]


def test_knn_weights_edge_cases():
    """A row opposite to all others (top-k sum < 0, self in its top-k) and an all-zero vote."""
    angles = torch.tensor([0.0, 3.0, 3.1, 3.2, 3.3, 2.9], dtype=F64)
    u = torch.stack([angles.cos(), angles.sin()], dim=1)
    v = u.clone()
    y = torch.zeros(6, 3, dtype=F64)
    y[0, 0] = 1
    y[1:, 1] = 1
    y[5] = 0  # row 5 is unlabelled
    for clamp in (False, True):
        got = knn_agreement_weights(u, v, y, k=3, gamma=0.5, clamp_sim=clamp)
        want, bad = _naive_weights(u, v, y, 3, 0.5, clamp)
        torch.testing.assert_close(got.weights, want, rtol=1e-12, atol=1e-12)
        assert got.num_nonpositive == bad == 1  # row 0: its top-3 are itself (0) and two ≈ −1
    # Row 0's vote comes from rows labelled {1}: cos = 0 either way → w = γ; with the clamp the
    # top-k weights are all 0, so ŷ_0 = 0 and again w = γ.
    assert got.weights[0].item() == pytest.approx(0.5)

    # A vote that is exactly zero: every neighbour of row 0 is unlabelled.
    y2 = torch.zeros(6, 3, dtype=F64)
    y2[0, 2] = 1
    w = knn_agreement_weights(u, v, y2, k=2).weights
    assert w[0].item() == pytest.approx(0.5)


def test_knn_weights_of_an_agreeing_neighbourhood_are_one():
    u, v = unit_outputs(12, 5, 10)
    y = torch.zeros(12, 2, dtype=F64)
    y[:, 0] = 1  # every row has the same label: the vote is that label
    w = knn_agreement_weights(u, v, y, k=4, clamp_sim=True).weights
    torch.testing.assert_close(w, torch.ones(12, dtype=F64), rtol=0, atol=1e-7)


def test_knn_weights_reject_bad_input():
    u, v = unit_outputs(5, 3, 11)
    with pytest.raises(ValueError, match="same rows"):
        knn_agreement_weights(u, v[:4], _labels(5, 3, 11))
    with pytest.raises(ValueError, match="k and chunk_size"):
        knn_agreement_weights(u, v, _labels(5, 3, 11), k=0)


def test_knn_weights_report_the_agreement_they_map():
    u, v = unit_outputs(25, 6, 12)
    y = _labels(25, 4, 12)
    out = knn_agreement_weights(u, v, y, k=4, gamma=0.3)
    torch.testing.assert_close(out.weights, 0.3 + 0.7 * out.agreement, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- the method class
@pytest.mark.parametrize(
    ("dataset", "margin", "shift"),
    [
        ("mirflickr", 0.15, 0.8),
        ("nuswide", 0.2, 1.0),
        ("coco", 0.3, 1.1),
        ("iapr", 0.3, 1.2),
        ("wiki", 0.2, 1.0),
        ("synthetic", 0.2, 1.0),
        ("/some/plugin/dir", 0.2, 1.0),
    ],
)
def test_per_dataset_margin_and_shift(dataset, margin, shift):
    _, rp = scbch.SCBCH.resolve_params("paper", dataset=dataset)
    assert (rp["margin"], rp["shift"], rp["k"]) == (margin, shift, 20)
    # the user's value wins over the dataset's
    _, rp = scbch.SCBCH.resolve_params("paper", {"margin": 0.5}, dataset=dataset)
    assert rp["margin"] == 0.5


def test_presets_are_the_official_recipe_and_fast_is_the_fidelity_configuration():
    _, paper = scbch.SCBCH.resolve_params("paper")
    assert (paper["hidden"], paper["epochs"], paper["batch_size"], paper["lr"], paper["weight_decay"]) == (
        8192,
        50,
        128,
        1e-4,
        1e-5,
    )
    assert (paper["alpha"], paper["beta"], paper["lambda_cls"], paper["k"], paper["gamma"]) == (0.7, 0.3, 1.0, 20, 0.5)
    assert (paper["weight_start_epoch"], paper["clamp_sim"]) == (5, False)
    _, fast = scbch.SCBCH.resolve_params("fast")
    assert {k for k in fast if fast[k] != paper[k]} == {"hidden"} and fast["hidden"] == 1024


def _setup(seed: int = 0, **params):
    data = mock_data().train
    m = create_method("scbch", 16, "tiny", **params)
    m.setup(data, Rng(seed))
    return m, data


def _reference_epoch(m, data, weights):
    """One epoch as the official loop runs it (train.py:398–425), on copies of ``m``'s state.

    Two Adam optimisers — the image net's with W_u registered in it, the text net's with W_v —
    one backward of the total and both steps per shuffled batch, the last batch kept; the
    classifier weights looked up by training index.
    """
    p = m.p
    img, txt = copy.deepcopy(m.img_net), copy.deepcopy(m.txt_net)
    W_u, W_v = copy.deepcopy(m.W_u), copy.deepcopy(m.W_v)
    opt = torch.optim.Adam([*img.parameters(), W_u], lr=p.lr, weight_decay=p.weight_decay)
    txt_opt = torch.optim.Adam([*txt.parameters(), W_v], lr=p.lr, weight_decay=p.weight_decay)
    gen = torch.Generator()
    gen.set_state(m._batch_gen.get_state())
    perm = torch.randperm(data.n, generator=gen)
    for s in range(0, data.n, p.batch_size):
        ind = perm[s : s + p.batch_size]
        u, v = img(data.image[ind]), txt(data.text[ind])
        y = data.labels[ind]
        w = None if weights is None else weights[ind]
        loss = scbch_batch_loss(
            u, v, W_u, W_v, y, w, margin=p.margin, shift=p.shift, tau=p.tau, alpha=p.alpha, beta=p.beta
        )["loss"]
        opt.zero_grad()
        txt_opt.zero_grad()
        loss.backward()
        opt.step()
        txt_opt.step()
    return img, txt, W_u, W_v


@pytest.mark.parametrize("epoch", [0, 3])
def test_one_epoch_equals_the_official_loop(epoch):
    m, data = _setup()
    weights = None
    if epoch >= m.p.weight_start_epoch:
        with torch.no_grad():
            weights = knn_agreement_weights(
                m.img_net(data.image), m.txt_net(data.text), data.labels, k=m.p.k, gamma=m.p.gamma
            ).weights
    img, txt, W_u, W_v = _reference_epoch(m, data, weights)
    log = m.train_epoch(epoch, data, Rng(0))
    for a, b in zip(
        [*m.img_net.parameters(), *m.txt_net.parameters(), m.W_u, m.W_v],
        [*img.parameters(), *txt.parameters(), W_u, W_v],
    ):
        assert torch.equal(a, b)
    if weights is None:
        assert np.array_equal(log.weights, np.ones(data.n)) and log.sample_loss is None
        assert "knn_nonpositive" not in log.values
    else:
        np.testing.assert_array_equal(log.weights, weights.double().numpy())
        assert log.values["knn_nonpositive"] == 0.0 and log.values["weight_min"] >= 0.5
        assert log.sample_loss.shape == (data.n,) and log.sample_loss.min() >= 0.0
    assert set(log.losses) == {"loss", "loss_con", "loss_q", "loss_cls"}
    assert log.times["train"] > 0


def test_classifier_matrices_are_orthogonal_and_weight_decayed_with_their_modality():
    m, _ = _setup()
    assert m.W_u.shape == (16, m.W_u.shape[1]) and m.W_u.shape == m.W_v.shape
    L, C = m.W_u.shape
    gram = m.W_u.T @ m.W_u if L >= C else m.W_u @ m.W_u.T  # orthonormal columns (L ≥ C) or rows
    torch.testing.assert_close(gram.detach(), torch.eye(min(L, C)), atol=1e-5, rtol=0)
    img_params = {id(t) for g in m._opt_img.param_groups for t in g["params"]}
    txt_params = {id(t) for g in m._opt_txt.param_groups for t in g["params"]}
    assert id(m.W_u) in img_params and id(m.W_v) in txt_params
    assert id(m.W_u) not in txt_params and id(m.W_v) not in img_params
    assert all(g["weight_decay"] == m.p.weight_decay for g in m._opt_img.param_groups)


def test_weights_can_be_switched_off_and_clamped():
    m, data = _setup(weight_start_epoch=100)
    log = m.train_epoch(7, data, Rng(0))
    assert np.array_equal(log.weights, np.ones(data.n))
    m, data = _setup(clamp_sim=True)
    log = m.train_epoch(5, data, Rng(0))
    assert log.weights.min() >= 0.5 - 1e-7


def test_end_to_end_tiny_run_is_above_chance_and_records_weight_diagnostics():
    rec = tiny_run("scbch", noise_rate=0.5)
    assert rec.status == "ok"
    d = rec.to_dict()
    for direction in ("i2t", "t2i"):
        assert d["metrics"][direction]["map"] > d["metrics"][direction]["chance"] + 0.02
    h = d["history"]
    assert len(h) == rec.spec.resolved_params["epochs"]
    start = rec.spec.resolved_params["weight_start_epoch"]
    assert h[0]["weight_mean_clean"] == h[0]["weight_mean_noisy"] == 1.0
    last = h[-1]
    assert 0.5 <= last["weight_mean_noisy"] <= 1.0 and 0.5 <= last["weight_mean_clean"] <= 1.0
    assert all("knn_nonpositive" in e for e in h[start:]) and not any("knn_nonpositive" in e for e in h[:start])
    hist = d["diagnostics"]["sample_loss_hist"]
    assert sum(hist["clean"]) + sum(hist["noisy"]) == 250
