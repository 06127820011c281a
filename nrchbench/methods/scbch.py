"""SCBCH (Peng et al., arXiv 2511.07780, 2025): semantic-consistent bidirectional contrastive hashing.

References are to ``../shared/docs/PEERS.md`` §2, the SCBCH section of ``docs/METHODS.md`` and to the official
code, Plke/SCBCH @ cfcc18c (``train.py``: ``MultiLabelLoss`` lines 101–181,
``select_clean_sample`` lines 183–226, the training loop 230–425, the per-dataset table
501–531; ``network.py``). The pure functions, in :mod:`nrchbench.methods.scbch_losses` (re-exported
here), equal their formulas; :class:`SCBCH` trains with them as the official code does.

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
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from nrchbench.methods._common import LossMeans, TwoNetEncoder, dataset_key, hash_heads, iter_batches, optimizer_step
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.methods.scbch_losses import (
    KNN_CHUNK,
    KnnWeights,
    bidirectional_contrastive_loss,
    class_probabilities,
    classification_loss,
    jaccard_similarity,
    knn_agreement_weights,
    quantization_loss,
    scbch_batch_loss,
)
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
                optimizer_step(terms["loss"], self._opt_img, self._opt_txt)
                means.add(terms)
        log.losses.update(means.means())
        return log
