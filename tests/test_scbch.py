"""SCBCH's pure functions against naive loops over their formulas (PEERS.md §2.3–2.4)."""

from __future__ import annotations

import math

import pytest
import torch

from nrchbench.methods import scbch
from nrchbench.methods.scbch import (
    bidirectional_contrastive_loss,
    class_probabilities,
    classification_loss,
    jaccard_similarity,
    knn_agreement_weights,
    quantization_loss,
    scbch_batch_loss,
)

torch.set_num_threads(1)
F64 = torch.float64


# ----------------------------------------------------------------------------- inputs
def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _outputs(n: int, L: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit rows of tanh outputs, as the hash heads produce."""
    g = torch.Generator().manual_seed(seed)
    u = _unit(torch.randn(n, L, generator=g, dtype=F64).tanh())
    v = _unit(torch.randn(n, L, generator=g, dtype=F64).tanh())
    return u, v


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


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum(float(x) * float(z) for x, z in zip(a, b))


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
    S = [[_dot(u[i], v[j]) for j in range(n)] for i in range(n)]
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
    u, v = _outputs(8, 6, 1)
    y = _labels(8, 4, 1)
    got = bidirectional_contrastive_loss(u, v, y, margin=m, shift=s, tau=tau)
    assert got.item() == pytest.approx(_naive_con(u, v, y, m, s, tau), rel=1e-12, abs=1e-12)


def test_contrastive_column_mask_is_relative_to_the_column_diagonal():
    """With S_ii ≫ S_jj the row and column masks differ; a row-only reading gives another value."""
    u, v = _outputs(6, 5, 2)
    y = _labels(6, 3, 2)
    u = u.clone()
    u[0] = v[0]  # S_00 = 1: row 0's negatives are all "easy", column 0's are not
    got = bidirectional_contrastive_loss(u, v, y, margin=0.2, shift=1.0).item()
    assert got == pytest.approx(_naive_con(u, v, y, 0.2, 1.0, 1.0), rel=1e-12)
    S = u @ v.t()
    rows_only = 2 * torch.where(S >= S.diagonal()[:, None] - 0.2, S, S - 1.0)
    assert not torch.equal(rows_only, rows_only.t())  # the two masks really differ here


def test_contrastive_gradient_reaches_both_modalities():
    u, v = _outputs(5, 4, 3)
    u.requires_grad_(True)
    v.requires_grad_(True)
    bidirectional_contrastive_loss(u, v, _labels(5, 3, 3)).backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    assert v.grad is not None and v.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- L_q, L_cls
def test_quantization_equals_loop():
    u, v = _outputs(7, 5, 4)
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
    u, v = _outputs(n, L, 5)
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
            assert float(p_v[i, c]) == pytest.approx(1 / (1 + math.exp(-_dot(v[i], W_v[:, c]))), rel=1e-13)


def test_batch_loss_combines_terms_and_trains_the_hash_nets():
    n, L, C = 6, 8, 3
    u, v = _outputs(n, L, 6)
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
    uh, vh = _unit(u), _unit(v)
    A = [[0.0 if i == j else 0.5 * (_dot(uh[i], uh[j]) + _dot(vh[i], vh[j])) for j in range(n)] for i in range(n)]
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
    u, v = _outputs(n, 6, 7)
    y = _labels(n, 5, 7)
    got = knn_agreement_weights(u, v, y, k=k, gamma=0.5, clamp_sim=clamp, chunk_size=chunk)
    want, bad = _naive_weights(u, v, y, k, 0.5, clamp)
    torch.testing.assert_close(got.weights, want, rtol=1e-12, atol=1e-12)
    assert got.num_nonpositive == bad
    assert got.weights[1].item() == pytest.approx(0.5)  # ỹ_1 = 0: cos = 0, w = γ


def test_knn_weights_chunking_does_not_change_the_result():
    u, v = _outputs(50, 8, 8)
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
    u, v = _outputs(30, 4, 9)
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
    u, v = _outputs(12, 5, 10)
    y = torch.zeros(12, 2, dtype=F64)
    y[:, 0] = 1  # every row has the same label: the vote is that label
    w = knn_agreement_weights(u, v, y, k=4, clamp_sim=True).weights
    torch.testing.assert_close(w, torch.ones(12, dtype=F64), rtol=0, atol=1e-7)


def test_knn_weights_reject_bad_input():
    u, v = _outputs(5, 3, 11)
    with pytest.raises(ValueError, match="same rows"):
        knn_agreement_weights(u, v[:4], _labels(5, 3, 11))
    with pytest.raises(ValueError, match="k and chunk_size"):
        knn_agreement_weights(u, v, _labels(5, 3, 11), k=0)
