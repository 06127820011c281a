"""MRL's losses (RC, MC), class centres and learning-rate schedule, as pure functions (PEERS §5.2).

The hashed reading, the multi-label reading and the code/paper switches are described in
:mod:`nrchbench.methods.mrl` (which re-exports everything here); references as there
(``[CODE file Lx]`` = the official code, github.com/penghu-cs/MRL @ e0f5c8f).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from nrchbench.errors import ConfigError

__all__ = [
    "CentreInit",
    "LRSchedule",
    "SelfSimilarity",
    "init_centres",
    "learning_rate",
    "mc_loss",
    "mrl_loss",
    "normalise_centres",
    "rc_loss",
]

CentreInit = Literal["direct", "slice"]
SelfSimilarity = Literal["zero", "keep"]


# ============================================================================ centres
@torch.no_grad()
def init_centres(
    num_classes: int, dim: int, generator: torch.Generator, mode: CentreInit = "direct", dtype=torch.float32
) -> torch.Tensor:
    """Initial class centres C ∈ R^{dim×K} with unit columns.

    * ``direct`` (PEERS §5.2, any K): ``orthogonal_`` of a dim×K matrix, then each column
      divided by its norm. For K ≤ dim the columns are orthonormal already (normalising is a
      no-op); for K > dim the rows are orthonormal and the columns have norm ≈ √(dim/K)
      before normalisation (a near-tight frame).
    * ``slice`` (the code, K ≤ dim only): the first K columns of ``orthogonal_`` of a
      dim×dim matrix [CODE main_noisy.py L83–84].

    Args:
        num_classes: K ≥ 1. dim: L ≥ 1 (the code length in the hashed reading; d_c = 512 in
            the original). generator: CPU generator for the draw. mode: see above.
        dtype: floating dtype of the result.

    Returns:
        dim×K tensor on the CPU with unit-norm columns.
    """
    if num_classes < 1 or dim < 1:
        raise ValueError(f"init_centres: need num_classes >= 1 and dim >= 1, got {num_classes!r}, {dim!r}")
    if mode == "direct":
        c = torch.empty(dim, num_classes, dtype=dtype)
        nn.init.orthogonal_(c, gain=1.0, generator=generator)
        return normalise_centres(c)
    if mode == "slice":
        if num_classes > dim:
            raise ValueError(
                f"init_centres: mode 'slice' (the official code) needs num_classes <= dim, got {num_classes} "
                f"classes for {dim} dimensions; use mode='direct'"
            )
        c = torch.empty(dim, dim, dtype=dtype)
        nn.init.orthogonal_(c, gain=1.0, generator=generator)
        return c[:, :num_classes].clone()
    raise ValueError(f"init_centres: mode must be 'direct' or 'slice', got {mode!r}")


def normalise_centres(centres: torch.Tensor) -> torch.Tensor:
    """C / ‖C‖ column-wise: ``C.data = (C / C.norm(dim=0, keepdim=True))`` before every step
    [CODE main_noisy.py L153–154] (the method applies it to ``.data``, outside autograd)."""
    return centres / centres.norm(dim=0, keepdim=True)


# ============================================================================ RC (robust clustering)
def rc_loss(
    z: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor, tau: float = 1.0, eps: float = 1e-7
) -> torch.Tensor:
    """Per-sample robust-clustering loss of one modality: log(1 − p_Y,i + eps).

    p(c|z_i) = softmax_c(z_iᵀC_c/τ₁) [CODE main_noisy.py L161, src/utils.py L145], p_Y,i =
    Σ_c ỹ_ic p(c|z_i) (multi-label reading, module docstring); the code's value is
    log(Σ_c (1 − ỹ_ic) p_ic / Σ_c p_ic) = log(1 − p_Y) [CODE src/utils.py L144–148],
    [PAPER eq. 5]. Minimising it pushes p_Y → 1 while down-weighting hard (likely noisy) samples.

    Args:
        z: n×L outputs of one modality. centres: L×K, unit columns. labels: n×K noisy labels.
        tau: τ₁ > 0 (code ``--tau``, 1). eps: guard inside the log (0 = the code).

    Returns:
        Per-sample loss, shape (n,), values ≤ log(1 + eps).
    """
    p = torch.softmax(z @ centres / tau, dim=1)
    # 1 − p_Y as the code forms it: the mass on the negatives over the total (no cancellation
    # when p_Y → 1; exactly 0 for a row with every class positive)
    neg = ((1.0 - labels.to(p.dtype)) * p).sum(1) / p.sum(1)
    return torch.log(neg + eps)


# ============================================================================ MC (multimodal contrastive)
def mc_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    tau: float = 1.0,
    self_similarity: SelfSimilarity = "zero",
    doubled: bool = True,
) -> torch.Tensor:
    """Multimodal contrastive loss L_c = −2·mean_k log P_k over a = [z¹; z²] (2n rows).

    ``zero`` (the code, [CODE main_noisy.py L130–144]):
        P_k = exp(a_kᵀa_k′/τ₂) / Σ_{l≠k} exp(a_kᵀa_l/τ₂), k′ the cross-modal partner of k.
    ``keep`` ([PAPER eq. 6]):
        P_k = (exp(a_kᵀa_k/τ₂) + exp(a_kᵀa_k′/τ₂)) / Σ_l exp(a_kᵀa_l/τ₂).
    ``doubled`` keeps the factor 2 (code ``loss1 + loss2``, and the paper's eq. 7 sum over
    two modalities); computed with log-sum-exp, equal to the code's ``exp``/``sum`` up to rounding.

    Args:
        z1, z2: n×L outputs (unit rows). tau: τ₂ > 0. self_similarity: ``zero`` | ``keep``.
        doubled: see above.

    Returns:
        Scalar L_c.
    """
    n = z1.shape[0]
    a = torch.cat([z1, z2])
    s = a @ a.t() / tau
    idx = torch.arange(2 * n, device=a.device)
    partner = idx.roll(n)
    pos = s[idx, partner]
    if self_similarity == "zero":
        eye = torch.eye(2 * n, dtype=torch.bool, device=a.device)
        log_p = pos - torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=1)
    elif self_similarity == "keep":
        log_p = torch.logaddexp(s[idx, idx], pos) - torch.logsumexp(s, dim=1)
    else:
        raise ValueError(f"mc_loss: self_similarity must be 'zero' or 'keep', got {self_similarity!r}")
    loss = -log_p.mean()
    return 2.0 * loss if doubled else loss


# ============================================================================ total
def mrl_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    centres: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float = 0.7,
    tau1: float = 1.0,
    tau2: float = 1.0,
    eps: float = 1e-7,
    self_similarity: SelfSimilarity = "zero",
    doubled: bool = True,
) -> dict[str, torch.Tensor]:
    """The training loss of one batch: L = β·L_r + (1 − β)·L_c.

    L_r = Σ_m mean_i log(1 − p_Y,i^m + eps) (:func:`rc_loss` summed over the two
    modalities, [CODE main_noisy.py L162–163]; [PAPER eq. 5]), L_c = :func:`mc_loss`
    [CODE main_noisy.py L164]. Both modalities use the pair's one noisy label vector.

    Args:
        z1, z2: n×L image/text outputs. centres: L×K (unit columns). labels: n×K noisy labels.
        beta: β in [0, 1] (README command 0.7; argparse default 0.5). tau1: τ₁ of RC.
        tau2: τ₂ of MC (the code uses one ``--tau`` for both). eps, self_similarity, doubled:
            see :func:`rc_loss` and :func:`mc_loss`.

    Returns:
        ``loss`` (to backpropagate), ``loss_rc`` (L_r), ``loss_mc`` (L_c) and ``sample_loss``
        (per-sample RC summed over modalities, detached).
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"mrl_loss: beta must be in [0, 1], got {beta!r}")
    r1 = rc_loss(z1, centres, labels, tau1, eps)
    r2 = rc_loss(z2, centres, labels, tau1, eps)
    lr = r1.mean() + r2.mean()
    lc = mc_loss(z1, z2, tau2, self_similarity, doubled)
    return {
        "loss": beta * lr + (1.0 - beta) * lc,
        "loss_rc": lr,
        "loss_mc": lc,
        "sample_loss": (r1 + r2).detach(),
    }


# ============================================================================ schedule
LRSchedule = Literal["cosine-lagged", "cosine", "constant"]


def learning_rate(epoch: int, lr: float, epochs: int, schedule: LRSchedule = "cosine-lagged") -> float:
    """The learning rate of 0-based ``epoch``.

    η(t) = lr·(1 + cos(πt/T))/2 with T = ``epochs`` (``CosineAnnealingLR``, eta_min 0):

    * ``cosine-lagged`` (the code: ``step(0)`` before the loop and ``step(e)`` after epoch e,
      [CODE main_noisy.py L322–327]): η(max(e − 1, 0));
    * ``cosine``: η(e); ``constant``: lr.
    """
    if schedule == "constant":
        return float(lr)
    if schedule == "cosine-lagged":
        t = max(epoch - 1, 0)
    elif schedule == "cosine":
        t = epoch
    else:
        raise ConfigError(f"mrl parameter 'lr_schedule': expected cosine-lagged, cosine or constant, got {schedule!r}")
    return float(lr) * (1.0 + math.cos(math.pi * t / epochs)) / 2.0
