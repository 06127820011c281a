"""SCBCH's batch losses and k-NN label-agreement weights, as pure functions (PEERS.md §2.3–2.4).

The method class, its notation, switches and numerical notes are in
:mod:`nrchbench.methods.scbch` (which re-exports everything here); references as there
(``[CODE train.py:x]`` = the official code, Plke/SCBCH @ cfcc18c).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "KNN_CHUNK",
    "KnnWeights",
    "bidirectional_contrastive_loss",
    "class_probabilities",
    "classification_loss",
    "jaccard_similarity",
    "knn_agreement_weights",
    "quantization_loss",
    "scbch_batch_loss",
]

# Rows of the N×N similarity matrix held at once by :func:`knn_agreement_weights`
# (memory only: the weights do not depend on it beyond float rounding of the products).
KNN_CHUNK = 2048

# The additive constants of the official code.
_JACCARD_EPS = 1e-8  # train.py:126, ``intersection / (union + 1e-8)``
_TOPK_EPS = 1e-8  # train.py:218, ``top_sim / (top_sim.sum(1) + 1e-8)``
_COS_EPS = 1e-8  # F.cosine_similarity's default eps (train.py:222)


# ============================================================================ batch losses
def jaccard_similarity(labels: torch.Tensor) -> torch.Tensor:
    """Jaccard label similarity J_ij = ỹ_iᵀỹ_j / (|ỹ_i| + |ỹ_j| − ỹ_iᵀỹ_j + 1e-8).

    [CODE train.py:119–126, ``compute_label_similarity``]. J_ii = |ỹ_i|/(|ỹ_i| + 1e-8), i.e.
    1 up to rounding when ỹ_i ≠ 0, and 0 for an empty label row.

    Args:
        labels: n×C labels in {0,1} (float).

    Returns:
        n×n matrix J with entries in [0, 1].
    """
    inter = labels @ labels.t()
    size = labels.sum(dim=1, keepdim=True)
    union = size + size.t() - inter
    return inter / (union + _JACCARD_EPS)


def _masked_costs(S: torch.Tensor, anchor: torch.Tensor, margin: float, shift: float) -> torch.Tensor:
    """c_ij = S_ij if S_ij ≥ anchor_ij − m else S_ij − s, then c_ii = max(c_ii, 0).

    ``anchor`` broadcasts S_ii along rows (row-anchored term) or S_jj along columns. The
    comparison carries no gradient, as the code's ``.detach()``ed mask.
    """
    c = torch.where(S >= anchor - margin, S, S - shift)
    diag = c.diagonal()
    return c - torch.diag_embed(diag) + torch.diag_embed(diag.clamp(min=0))


def bidirectional_contrastive_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    shift: float = 1.0,
    tau: float = 1.0,
) -> torch.Tensor:
    """SCBCH's Jaccard-weighted bidirectional contrastive term L_con (PEERS.md §2.3).

    [CODE train.py:128–153, ``contrast_loss``]. With S = u vᵀ and J = :func:`jaccard_similarity`:

    * row costs a_ij = S_ij if S_ij ≥ S_ii − m else S_ij − s; a_ii = max(a_ii, 0);
    * column costs b_ij = S_ij if S_ij ≥ S_jj − m else S_ij − s; b_ii = max(b_ii, 0);

    ::

        L_con = (1/n²) Σ_{i,j} [τ·exp((1 − J_ij)·a_ij/τ) + τ·exp((1 − J_ij)·b_ij/τ)]
              + (1/n²) Σ_{i≠j} 1[J_ij > 0]·exp(s − S_ij)
              − (1/n) Σ_i S_ii

    A *mean of exponentials*, not a log-sum-exp. The pull term is not weighted by J and uses
    the same shift s as the masks (the code's ``separation_term``, whose mask is
    ``(J − I) > 0``: the diagonal never counts since J_ii ≤ 1).

    Args:
        u: n×L image outputs (unit rows). v: n×L text outputs.
        labels: n×C noisy labels in {0,1} (float).
        margin: m (official per dataset: Flickr 0.15, NUS 0.2, COCO 0.3, IAPR 0.3;
            argparse default 0.2). shift: s (0.8 / 1.0 / 1.1 / 1.2; default 1.0). tau: τ.

    Returns:
        The scalar L_con.
    """
    J = jaccard_similarity(labels)
    S = u @ v.t()
    d = S.diagonal()
    a = _masked_costs(S, d[:, None], margin, shift)
    b = _masked_costs(S, d[None, :], margin, shift)
    one_minus_j = 1.0 - J
    exps = tau * (a / tau * one_minus_j).exp() + tau * (b / tau * one_minus_j).exp()
    pull = ((J - torch.eye(J.shape[0], dtype=J.dtype, device=J.device)) > 0).to(S.dtype)
    return exps.mean() + (pull * (shift - S).exp()).mean() - d.mean()


def quantization_loss(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """L_q = (‖u − sign u‖₁ + ‖v − sign v‖₁) / (n·L) [CODE train.py:155–158, ``quant_loss``].

    Each modality's term is the mean absolute distance to the sign; with unit-norm rows it is
    minimal (1 − 1/√L) at |u_k| = 1/√L, never 0. ``sign(0) = 0`` as in torch. Returns a scalar.
    """
    return (u - u.sign()).abs().sum() / u.numel() + (v - v.sign()).abs().sum() / v.numel()


def class_probabilities(out: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """p = σ(out·W): the classifier of one modality [CODE train.py:413–414].

    Args:
        out: n×L hash outputs (not detached: the classifier trains the hash nets too).
        W: L×C classifier matrix (W_u in the image net, W_v in the text net).

    Returns:
        n×C probabilities.
    """
    return torch.sigmoid(out @ W)


def classification_loss(
    p_u: torch.Tensor, p_v: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted classifier loss L_cls [CODE train.py:160–175, ``classification_loss``].

    ::

        L_cls = (1/n) Σ_i w_i · ½ [BCE(p_u,i, ỹ_i) + BCE(p_v,i, ỹ_i)],
        BCE(p, y) = −(1/C) Σ_c [y_c·log p_c + (1 − y_c)·log(1 − p_c)],

    with each log clamped at −100 (``F.binary_cross_entropy``). ``weights=None`` means w ≡ 1
    (the code's first epochs, before the k-NN weights exist).

    Args:
        p_u, p_v: n×C probabilities (:func:`class_probabilities`).
        labels: n×C noisy labels in {0,1} (float).
        weights: (n,) per-sample weights, or None.

    Returns:
        The scalar L_cls.
    """
    per_sample = 0.5 * (
        F.binary_cross_entropy(p_u, labels, reduction="none").mean(dim=1)
        + F.binary_cross_entropy(p_v, labels, reduction="none").mean(dim=1)
    )
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


def scbch_batch_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    W_u: torch.Tensor,
    W_v: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    margin: float = 0.2,
    shift: float = 1.0,
    tau: float = 1.0,
    alpha: float = 0.7,
    beta: float = 0.3,
    lambda_cls: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The training loss of one batch: L = α·L_con + β·L_q + λ_cls·L_cls (PEERS.md §2.3).

    [CODE train.py:177–181, ``MultiLabelLoss.forward``; α, β from the README command
    ``--alpha=0.7 --beta=0.3`` and the class defaults — ``train.py``'s argparse defaults
    are the inverted 0.3/0.7; λ_cls = 1.]

    Args:
        u, v: n×L hash outputs. W_u, W_v: L×C classifier matrices.
        labels: n×C noisy labels (float). weights: (n,) k-NN weights or None (w ≡ 1).
        margin, shift, tau: of :func:`bidirectional_contrastive_loss`.
        alpha, beta, lambda_cls: the weights of L_con, L_q and L_cls.

    Returns:
        ``loss`` (to backpropagate) and the unweighted terms ``loss_con``, ``loss_q``,
        ``loss_cls``.
    """
    l_con = bidirectional_contrastive_loss(u, v, labels, margin=margin, shift=shift, tau=tau)
    l_q = quantization_loss(u, v)
    l_cls = classification_loss(class_probabilities(u, W_u), class_probabilities(v, W_v), labels, weights)
    total = alpha * l_con + beta * l_q + lambda_cls * l_cls
    return {"loss": total, "loss_con": l_con, "loss_q": l_q, "loss_cls": l_cls}


# ============================================================================ sample weights
class KnnWeights(NamedTuple):
    """Result of :func:`knn_agreement_weights`.

    Attributes:
        weights: (N,) w_i = γ + (1 − γ)·cos(ỹ_i, ŷ_i).
        num_nonpositive: rows whose top-k similarity sum (before any clamp) is ≤ 0, where
            the code's normalisation flips the vote's sign or divides by ~1e-8.
        agreement: (N,) the label agreement cos(ỹ_i, ŷ_i) the weights are an affine map of.
    """

    weights: torch.Tensor
    num_nonpositive: int
    agreement: torch.Tensor


@torch.no_grad()
def knn_agreement_weights(
    u: torch.Tensor,
    v: torch.Tensor,
    labels: torch.Tensor,
    k: int = 20,
    gamma: float = 0.5,
    clamp_sim: bool = False,
    chunk_size: int = KNN_CHUNK,
) -> KnnWeights:
    """SCBCH's per-sample classifier weights from k-NN label agreement (PEERS.md §2.4).

    [CODE train.py:183–226, ``select_clean_sample``]. With û, v̂ the row-normalised outputs
    of all N training pairs (in index order) and ỹ their **noisy** labels:

    1. A = ½(ûûᵀ + v̂v̂ᵀ) with a zeroed diagonal (intra-modal cosines);
    2. N_i = the k largest entries of row i of A. Row i itself is a candidate with a_ii = 0,
       as in the code's ``topk`` over the full row: when fewer than k other rows have a
       positive similarity, i enters its own top-k with weight 0 and displaces a negative
       neighbour;
    3. ω_ij = a_ij / (Σ_{j∈N_i} a_ij + 1e-8), or with ``clamp_sim`` a_ij ← max(a_ij, 0) first;
    4. ŷ_i = Σ_{j∈N_i} ω_ij ỹ_j;
    5. w_i = γ + (1 − γ)·cos(ỹ_i, ŷ_i), with cos(a, b) = aᵀb / (max(‖a‖, 1e-8)·max(‖b‖, 1e-8))
       (``F.cosine_similarity``), so ŷ_i = 0 or ỹ_i = 0 gives w_i = γ.

    With non-negative ω the weights lie in [γ, 1]; a row with a top-k sum ≤ 0 (possible with
    tanh outputs) can get a negative ω and a weight down to 2γ − 1. The rows of A are built
    ``chunk_size`` at a time, so the N×N matrix is never held at once; the result equals the
    unchunked computation up to float rounding of the products. The code runs this without
    ``no_grad`` (memory only); here no graph is built.

    Args:
        u: N×L image outputs. v: N×L text outputs (row i pairs with labels row i).
        labels: N×C noisy labels in {0,1}.
        k: neighbours per row (code: 20); capped at N, the candidates per row.
        gamma: γ, the weight of a row whose vote is orthogonal to its label (code: 0.5).
        clamp_sim: False = the code; True = clamp a_ij at 0 before normalising.
        chunk_size: rows of A per block.

    Returns:
        :class:`KnnWeights` (weights in the dtype of ``u``, on its device).

    Raises:
        ValueError: mismatched row counts, k < 1 or chunk_size < 1.
    """
    n = u.shape[0]
    if v.shape[0] != n or labels.shape[0] != n:
        raise ValueError(
            f"knn_agreement_weights: u, v and labels need the same rows, got {n}, {v.shape[0]}, {labels.shape[0]}"
        )
    if k < 1 or chunk_size < 1:
        raise ValueError(f"knn_agreement_weights: k and chunk_size must be >= 1, got k={k}, chunk_size={chunk_size}")
    if n == 0:
        return KnnWeights(u.new_zeros(0), 0, u.new_zeros(0))
    k = min(k, n)
    uh = F.normalize(u, dim=1)
    vh = F.normalize(v, dim=1)
    y = labels.to(uh.dtype)
    agreement = []
    nonpositive = 0
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        rows = torch.arange(e - s, device=u.device)
        su = uh[s:e] @ uh.t()
        sv = vh[s:e] @ vh.t()
        su[rows, rows + s] = 0
        sv[rows, rows + s] = 0
        top, nn_idx = torch.topk((su + sv) / 2, k=k, dim=1)
        nonpositive += int((top.sum(dim=1) <= 0).sum())
        if clamp_sim:
            top = top.clamp(min=0)
        omega = top / (top.sum(dim=1, keepdim=True) + _TOPK_EPS)
        vote = (y[nn_idx] * omega.unsqueeze(-1)).sum(dim=1)
        agreement.append(F.cosine_similarity(y[s:e], vote, dim=1, eps=_COS_EPS))
    cos = torch.cat(agreement)
    return KnnWeights(gamma + (1.0 - gamma) * cos, nonpositive, cos)
