"""Robust losses on a label-prediction head: ``gce``, ``sce`` and ``elr`` (PEERS.md §6.3–6.4).

A linear head z = W·c + b (W ∈ R^{C×L}, one head shared by both modalities) reads each
step's codes c (``StepView.codes``: the outputs on the ±1 scale of the binary codes, with
autograd) and adds its robust classification loss, with weight ``head_weight`` (1), to the
base's step loss; the base's own loss is unchanged (its pairwise terms still use the noisy
labels). The head's parameters are optimised by the base's optimiser
(``HashingMethod.add_parameters``).

Multi-label forms (``ml_mode``):

* ``set`` (default): p = softmax(z), p_Y = Σ_c ỹ_c p_c, the probability of the noisy label
  set; for one label per row every formula is exactly the original single-label one. Rows
  without a positive label have no p_Y and are left out of the head's loss.
* ``binary``: one sigmoid per class, the loss averaged over classes.

The per-sample functions below are pure (tensors in, per-row losses out); the tests check
them against naive loops.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from nrchbench.methods._common import linear
from nrchbench.methods.base import EpochLog, Rng, StepPlan, StepView, TrainData
from nrchbench.params import Params
from nrchbench.registry import STRATEGIES
from nrchbench.strategies.base import Strategy

__all__ = ["ELR", "GCE", "SCE", "elr_loss", "elr_update", "gce_loss", "label_set_ce", "label_set_mass", "sce_loss"]

MLMode = Literal["set", "binary"]
#: floor of a probability raised to a power < 1 or logged (gradients stay finite)
P_FLOOR = 1e-7
#: ELR's clamp of the predicted probabilities (official loss.py)
ELR_CLAMP = 1e-4


def label_set_mass(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """p_Y = Σ_c ỹ_c softmax(z)_c per row."""
    return (z.softmax(dim=1) * y).sum(1)


def label_set_ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−log p_Y per row from the log-softmax (the cross-entropy of ``F.cross_entropy`` for one
    label per row); a row without a positive label gets 0 (its whole distribution counts)."""
    y = torch.where(y.sum(1, keepdim=True) > 0, y, torch.ones_like(y))
    return -torch.logsumexp(z.log_softmax(dim=1).masked_fill(y <= 0, float("-inf")), dim=1)


def gce_loss(z: torch.Tensor, y: torch.Tensor, q: float = 0.7, mode: MLMode = "set") -> torch.Tensor:
    """Generalised cross-entropy per row: (1 − p_Y^q)/q (``set``), or mean_c (1 − p̃_c^q)/q with
    p̃_c = σ_c if ỹ_c = 1 else 1 − σ_c (``binary``). Probabilities are floored at 1e-7."""
    if mode == "set":
        return (1.0 - label_set_mass(z, y).clamp(min=P_FLOOR).pow(q)) / q
    s = torch.sigmoid(z)
    pt = torch.where(y > 0, s, 1.0 - s).clamp(min=P_FLOOR)
    return ((1.0 - pt.pow(q)) / q).mean(1)


def sce_loss(
    z: torch.Tensor, y: torch.Tensor, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0, mode: MLMode = "set"
) -> torch.Tensor:
    """Symmetric cross-entropy per row: α·CE + β·RCE.

    ``set``: CE = −log clamp(p_Y, 1e-7) (the code clips the prediction at 1e-7) and, with the
    target ỹ/|ỹ| whose zeros are clipped to e^A, RCE = −Σ_c p_c log q_c = p_Y·ln|ỹ| − A(1 − p_Y).
    ``binary``: mean_c BCE and mean_c −A·|σ_c − ỹ_c|.
    """
    if mode == "set":
        p_y = label_set_mass(z, y)
        ce = -p_y.clamp(min=P_FLOOR).log()
        rce = p_y * y.sum(1).clamp(min=1.0).log() - A * (1.0 - p_y)
        return alpha * ce + beta * rce
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(1)
    rce = (-A * (torch.sigmoid(z) - y).abs()).mean(1)
    return alpha * bce + beta * rce


def elr_update(target: torch.Tensor, z: torch.Tensor, beta: float = 0.7, mode: MLMode = "set") -> torch.Tensor:
    """ELR's target update of the visited rows (detached): t ← β·t + (1 − β)·p̂/Σp̂ with
    p̂ = clamp(softmax(z), 1e-4, 1 − 1e-4) (``set``), or t_c ← β·t_c + (1 − β)·σ̂_c (``binary``)."""
    with torch.no_grad():
        if mode == "set":
            p = z.softmax(dim=1).clamp(ELR_CLAMP, 1.0 - ELR_CLAMP)
            return beta * target + (1.0 - beta) * p / p.sum(1, keepdim=True)
        return beta * target + (1.0 - beta) * torch.sigmoid(z).clamp(ELR_CLAMP, 1.0 - ELR_CLAMP)


def elr_loss(
    z: torch.Tensor, y: torch.Tensor, target: torch.Tensor, lam: float = 3.0, mode: MLMode = "set"
) -> torch.Tensor:
    """ELR per row with the (already updated) targets: CE + λ·log(1 − ⟨t, p⟩).

    ``set``: CE = −log p_Y (log-softmax, as ``F.cross_entropy``), p = clamp(softmax(z), 1e-4,
    1 − 1e-4) in the regulariser (the gradient flows through the clamped p). ``binary``:
    CE = mean_c BCE, regulariser mean_c log(1 − σ_c t_c − (1 − σ_c)(1 − t_c)) with σ clamped.
    """
    if mode == "set":
        p = z.softmax(dim=1).clamp(ELR_CLAMP, 1.0 - ELR_CLAMP)
        return label_set_ce(z, y) + lam * (1.0 - (target * p).sum(1)).log()
    s = torch.sigmoid(z).clamp(ELR_CLAMP, 1.0 - ELR_CLAMP)
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(1)
    reg = (1.0 - s * target - (1.0 - s) * (1.0 - target)).log().mean(1)
    return ce + lam * reg


# ============================================================================ strategies
class HeadParams(Params):
    ml_mode: MLMode = Field(
        "set", description="set: softmax, p_Y = mass of the label set; binary: one sigmoid per class"
    )
    head_weight: float = Field(1.0, ge=0, description="weight of the head's loss added to the base loss")


class _LabelHead(Strategy):
    """A label head on the codes with a robust loss (subclasses give :meth:`head_loss`).

    A step's head loss is the mean over its rows (``set``: its rows with a positive label),
    summed over the modalities the step trains. Logs ``loss_head`` (its mean over the epoch's
    steps) and adds ``head_weight · loss_head`` to ``loss`` (the total minimised).
    """

    def setup(self, data: TrainData, rng: Rng) -> None:
        gen = rng.torch("strategy", self.name, "head")
        self.head = linear(self.method.bits, data.num_classes, gen).to(data.device)
        self.method.add_parameters(self.head.parameters())
        self._labels = data.labels.to(torch.float32)

    def head_loss(self, modality: str, idx: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row loss of the head's logits ``z`` for the rows ``idx`` with noisy labels ``y``."""
        raise NotImplementedError

    def on_step(self, view: StepView) -> StepPlan:
        idx = view.step.idx
        y = self._labels[idx]
        rows = None
        if self.p.ml_mode == "set":  # rows without a positive label have no p_Y: left out
            rows = y.sum(1) > 0
            idx, y = idx[rows], y[rows]
        total = torch.zeros((), device=y.device)
        for modality, codes in view.codes.items():
            if idx.numel():
                z = self.head(codes if rows is None else codes[rows])
                total = total + self.head_loss(modality, idx, z, y).mean()
        self._sum = self._sum + total.detach()
        self._steps += 1
        return StepPlan(extra=self.p.head_weight * total)

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        self._sum, self._steps = torch.zeros((), device=data.device), 0
        log = self.method.run_epoch(epoch, data, rng, on_step=self.on_step)
        head = float(self._sum.item()) / max(self._steps, 1)
        log.losses["loss_head"] = head
        if "loss" in log.losses:
            log.losses["loss"] += self.p.head_weight * head
        return log


class GCEParams(HeadParams):
    q: float = Field(0.7, gt=0, le=1, description="q of L_q (→0: cross-entropy, 1: MAE)")


@STRATEGIES.register("gce")
class GCE(_LabelHead):
    """Generalised cross-entropy (Zhang & Sabuncu 2018) on a label head of the codes (q = 0.7)."""

    name = "gce"
    description = "generalised cross-entropy (q = 0.7) on a label head of the codes"
    Params = GCEParams

    def head_loss(self, modality: str, idx: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gce_loss(z, y, self.p.q, self.p.ml_mode)


class SCEParams(HeadParams):
    alpha: float = Field(0.1, ge=0, description="α: weight of CE (CIFAR-10 value)")
    beta: float = Field(1.0, ge=0, description="β: weight of the reverse CE (CIFAR-10 value)")
    A: float = Field(
        -4.0, lt=0, description=f"log of the clipped zero label: -4 (paper) or {math.log(1e-4):.4f} (code)"
    )


@STRATEGIES.register("sce")
class SCE(_LabelHead):
    """Symmetric cross-entropy (Wang et al. 2019) on a label head of the codes (α 0.1, β 1, A −4)."""

    name = "sce"
    description = "symmetric cross-entropy (α 0.1, β 1, A −4) on a label head of the codes"
    Params = SCEParams

    def head_loss(self, modality: str, idx: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sce_loss(z, y, self.p.alpha, self.p.beta, self.p.A, self.p.ml_mode)


class ELRParams(HeadParams):
    beta: float = Field(0.7, ge=0, lt=1, description="β: momentum of the target (CIFAR-10 symmetric value)")
    lam: float = Field(3.0, ge=0, description="λ: weight of the regulariser (CIFAR-10 symmetric value)")


@STRATEGIES.register("elr")
class ELR(_LabelHead):
    """Early-learning regularisation (Liu et al. 2020) on a label head of the codes (β 0.7, λ 3).

    One target per training row and modality (t^img, t^txt, initialised to 0), updated at
    every visit before the loss is computed, as the official ``elr_loss``.
    """

    name = "elr"
    description = "early-learning regularisation (β 0.7, λ 3) on a label head of the codes"
    Params = ELRParams

    def setup(self, data: TrainData, rng: Rng) -> None:
        super().setup(data, rng)
        self.targets = {m: torch.zeros(data.n, data.num_classes, device=data.device) for m in ("image", "text")}

    def head_loss(self, modality: str, idx: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = self.targets[modality]
        t[idx] = elr_update(t[idx], z, self.p.beta, self.p.ml_mode)
        return elr_loss(z, y, t[idx], self.p.lam, self.p.ml_mode)
