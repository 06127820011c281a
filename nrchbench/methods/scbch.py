"""SCBCH (Peng et al., arXiv 2511.07780, 2025): semantic-consistent bidirectional contrastive hashing.

References are to ``../shared/docs/PEERS.md`` §2, the SCBCH section of ``docs/METHODS.md`` and to the official
code, Plke/SCBCH @ cfcc18c (``train.py``: ``MultiLabelLoss`` lines 101–181,
``select_clean_sample`` lines 183–226, the training loop 230–425, the per-dataset table
501–531; ``network.py``). The pure functions equal their formulas; :class:`SCBCH` trains with
them as the official code does.

Notation: u = f₁(x), v = f₂(t) are the unit-norm hash outputs (tanh, then row L2), ỹ the
noisy {0,1} labels of the batch, S = u vᵀ (rows: image anchors, columns: texts), n the batch
size, L the code length, C the number of classes.

Model: the NRCH heads (image MLP of ``image_layers`` Linear layers, text MLP of
``text_layers``, ``hidden`` units, ReLU, tanh, row L2) and two classifier matrices
W_u, W_v ∈ R^{L×C} (orthogonal init), p_u = σ(u W_u), p_v = σ(v W_v), **not detached**.
Loss per batch: α·L_con + β·L_q + λ_cls·L_cls; from epoch index ``weight_start_epoch`` on,
L_cls is weighted per sample by the k-NN label-agreement weights, computed once per epoch
before its batches with the current nets. Two Adam optimisers (image net + W_u, text net +
W_v). Model selection: none (the last epoch's nets encode; the official code keeps the best
start-of-epoch evaluation on the query set, which nrchbench does not reproduce).

Switches (default = the official code):

* ``clamp_sim`` (in :func:`knn_agreement_weights`): False (code: the top-k similarities are
  normalised as they are, so a row whose top-k sum is ≤ 0 flips the sign of its vote or
  blows it up) | True (a_ij is clamped at 0 first; such a row then gets ŷ = 0 and w = γ).
* ``weight_start_epoch``: the first epoch index with k-NN weights (code: 5); a value ≥
  ``epochs`` trains without them (the "w/o CSCC weights" ablation).

Hyper-parameters with no single official value: α/β (the README command's 0.7/0.3, as the
loss class defaults; ``train.py``'s argparse defaults are the inverted 0.3/0.7); margin/shift
for datasets outside the official table (wiki, synthetic, plugins: the argparse defaults
0.2/1.0, = the NUS-WIDE entry).

Numerical note: the contrastive and classification terms are computed with the same
elementwise operations as the code (``exp`` of the scaled logits, ``F.binary_cross_entropy``
with its log clamp at −100), so float32 results match the code to rounding. The row
normalisation of the heads divides by max(‖x‖, 1e-12) instead of ‖x‖ (rounding only).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nrchbench.methods._common import LossMeans, TwoNetEncoder, dataset_key, hash_heads, iter_batches
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.params import Params
from nrchbench.registry import METHODS

logger = logging.getLogger(__name__)

__all__ = [
    "DATASET_PARAMS",
    "KNN_CHUNK",
    "SCBCH",
    "KnnWeights",
    "SCBCHParams",
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


# ============================================================================ method
#: The official per-dataset table (train.py:501–531; k = 20 everywhere). Datasets without an
#: entry (wiki, synthetic, plugins) get the class defaults 0.2/1.0, train.py's argparse values.
DATASET_PARAMS: dict[str, dict[str, Any]] = {
    "mirflickr": {"margin": 0.15, "shift": 0.8},
    "nuswide": {"margin": 0.2, "shift": 1.0},
    "coco": {"margin": 0.3, "shift": 1.1},
    "iapr": {"margin": 0.3, "shift": 1.2},
}

# Rows per forward chunk of the weight pass (memory only).
FORWARD_CHUNK = 4096


class SCBCHParams(Params):
    """SCBCH hyper-parameters; defaults = the official code (PEERS.md §2.5, README command)."""

    hidden: int = Field(8192, ge=1, description="units of every hidden layer")
    image_layers: int = Field(3, ge=1, description="Linear layers of the image net")
    text_layers: int = Field(2, ge=1, description="Linear layers of the text net")
    alpha: float = Field(0.7, ge=0, description="α: weight of the contrastive term L_con")
    beta: float = Field(0.3, ge=0, description="β: weight of the quantisation term L_q")
    lambda_cls: float = Field(1.0, ge=0, description="weight of the (k-NN weighted) classifier loss")
    margin: float = Field(0.2, description="m of the hard-negative masks (per dataset, see dataset_params)")
    shift: float = Field(1.0, description="s: subtracted from easy negatives and in the label-sharing pull")
    tau: float = Field(1.0, gt=0, description="temperature τ of L_con")
    k: int = Field(20, ge=1, description="neighbours of the k-NN label vote")
    gamma: float = Field(0.5, ge=0, le=1, description="γ: weight of a row whose vote is orthogonal to its label")
    weight_start_epoch: int = Field(5, ge=0, description="first epoch index with k-NN weights (before: w = 1)")
    clamp_sim: bool = Field(False, description="clamp the top-k similarities at 0 before normalising ([BENCH])")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate (both nets)")
    weight_decay: float = Field(1e-5, ge=0, description="Adam weight decay (both nets, W_u and W_v included)")
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(50, ge=1)


@METHODS.register("scbch")
class SCBCH(TwoNetEncoder, HashingMethod):
    """SCBCH: Jaccard-weighted bidirectional contrastive hashing + k-NN-weighted classifier.

    Parameters: :class:`SCBCHParams` (defaults = the official code); per-dataset margin and
    shift from :meth:`dataset_params`.

    Presets: ``paper`` = the official values; ``fast`` = hidden 1024 (instead of 8192), all
    else official, 50 epochs included — the configuration of the fidelity check against the
    official code on wiki (the SCBCH section of docs/METHODS.md); ``tiny`` = hidden 64, 8 epochs, weights from
    epoch index 3, k 5, batch 64, lr 1e-3 (tests).

    Per-epoch log: losses ``loss`` (weighted total), ``loss_con``, ``loss_q``, ``loss_cls``
    (unweighted batch means, averaged over the epoch's batches); ``weights`` (the per-sample
    classifier weights used this epoch: 1 before ``weight_start_epoch``; the runner records
    their mean over clean and noisy rows); from ``weight_start_epoch`` on ``sample_loss`` =
    1 − cos(ỹ_i, ŷ_i), the k-NN label disagreement the weights are an affine map of (the runner
    stores its clean/noisy histogram), values ``knn_nonpositive`` (rows whose top-k similarity
    sum is ≤ 0, where the official normalisation misbehaves) and ``weight_min``; times
    ``weights``, ``train``. SCBCH selects no samples (every row trains every epoch, with a
    weight in [2γ − 1, 1]), so ``selected`` is never set.
    """

    name = "scbch"
    description = "SCBCH (2025): Jaccard-weighted bidirectional contrastive hashing + k-NN-weighted classifier"
    Params = SCBCHParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "fast": {"hidden": 1024},
        "tiny": {"hidden": 64, "epochs": 8, "weight_start_epoch": 3, "k": 5, "batch_size": 64, "lr": 1e-3},
    }
    uses_labels = True
    LOSS_KEYS: ClassVar[tuple[str, ...]] = ("loss", "loss_con", "loss_q", "loss_cls")

    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """The official margin/shift of MIRFlickr, NUS-WIDE, MS-COCO and IAPR TC-12
        (train.py:501–531); every other dataset gets the defaults (0.2 / 1.0)."""
        return dict(DATASET_PARAMS.get(dataset_key(dataset), {}))

    # ---------------------------------------------------------------- training
    def setup(self, data: TrainData, rng: Rng) -> None:
        """Nets, W_u, W_v (one generator, the code's order) and the two Adam optimisers."""
        p = self.p
        gen = rng.torch("init")
        img, txt = hash_heads(
            data.image.shape[1], data.text.shape[1], p.hidden, self.bits, p.image_layers, p.text_layers, gen
        )
        W_u = torch.empty(self.bits, data.num_classes)
        W_v = torch.empty(self.bits, data.num_classes)
        nn.init.orthogonal_(W_u, gain=1.0, generator=gen)
        nn.init.orthogonal_(W_v, gain=1.0, generator=gen)
        self.img_net = img.to(data.device)
        self.txt_net = txt.to(data.device)
        self.W_u = nn.Parameter(W_u.to(data.device))
        self.W_v = nn.Parameter(W_v.to(data.device))
        opt = {"lr": p.lr, "weight_decay": p.weight_decay}
        self._opt_img = torch.optim.Adam([*self.img_net.parameters(), self.W_u], **opt)
        self._opt_txt = torch.optim.Adam([*self.txt_net.parameters(), self.W_v], **opt)
        self._batch_gen = rng.torch("batches")

    @torch.no_grad()
    def sample_weights(self, data: TrainData) -> KnnWeights:
        """The k-NN label-agreement weights of every training row with the current nets."""
        image, text = data.image.to(torch.float32), data.text.to(torch.float32)
        u = torch.cat([self.img_net(image[s : s + FORWARD_CHUNK]) for s in range(0, data.n, FORWARD_CHUNK)])
        v = torch.cat([self.txt_net(text[s : s + FORWARD_CHUNK]) for s in range(0, data.n, FORWARD_CHUNK)])
        return knn_agreement_weights(u, v, data.labels, k=self.p.k, gamma=self.p.gamma, clamp_sim=self.p.clamp_sim)

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        """The weight pass (from ``weight_start_epoch``), then one Adam step per batch."""
        p = self.p
        log = EpochLog(epoch)
        weights = None
        if epoch >= p.weight_start_epoch:
            with log.timer("weights", data.device):
                knn = self.sample_weights(data)
            weights = knn.weights
            log.values["knn_nonpositive"] = float(knn.num_nonpositive)
            log.values["weight_min"] = float(weights.min()) if weights.numel() else 1.0
            log.sample_loss = (1.0 - knn.agreement).double().cpu().numpy()
            if knn.num_nonpositive:
                logger.debug("scbch epoch %d: %d rows with a top-k similarity sum <= 0", epoch, knn.num_nonpositive)
        log.weights = weights.double().cpu().numpy() if weights is not None else np.ones(data.n)
        labels = data.labels.to(torch.float32)
        image, text = data.image.to(torch.float32), data.text.to(torch.float32)
        self.img_net.train()
        self.txt_net.train()
        means = LossMeans(self.LOSS_KEYS, data.device)
        with log.timer("train", data.device):
            for idx in iter_batches(data.n, p.batch_size, self._batch_gen, data.device):
                terms = scbch_batch_loss(
                    self.img_net(image[idx]),
                    self.txt_net(text[idx]),
                    self.W_u,
                    self.W_v,
                    labels[idx],
                    None if weights is None else weights[idx],
                    margin=p.margin,
                    shift=p.shift,
                    tau=p.tau,
                    alpha=p.alpha,
                    beta=p.beta,
                    lambda_cls=p.lambda_cls,
                )
                self._opt_img.zero_grad(set_to_none=True)
                self._opt_txt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                self._opt_img.step()
                self._opt_txt.step()
                means.add(terms)
        log.losses.update(means.means())
        return log
