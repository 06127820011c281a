"""DCMH's objective terms, code update and learning-rate schedules, as pure functions (METHODS.md §6).

The method class and the discussion of its presets, schedules and input scale are in
:mod:`nrchbench.methods.dcmh` (which re-exports everything here).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nrchbench.errors import ConfigError

__all__ = [
    "LR_SCHEDULES",
    "balance_gain",
    "dcmh_balance",
    "dcmh_nll",
    "dcmh_quantization",
    "dcmh_update_codes",
    "label_similarity",
    "learning_rates",
    "sign_pm1",
]

LR_SCHEDULES = ("pytorch", "matlab", "tf")


# --------------------------------------------------------------------------- pure terms
def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """sign with 0 → +1 (values in {−1,+1}, same dtype as ``x``)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def label_similarity(batch_labels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """S (bs×n, float {0,1}): 1 where two rows share at least one label."""
    return (batch_labels @ labels.T > 0).to(batch_labels.dtype)


def dcmh_nll(f: torch.Tensor, other: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the inter-modal similarity (unnormalised sum).

    Args:
        f: bs×L outputs of the modality being trained.
        other: n×L buffer of the other modality's outputs.
        s: bs×n similarity in {0,1}.

    Returns:
        −Σ_ij (S_ij θ_ij − log(1+e^θ_ij)) with θ_ij = ½ f_iᵀ other_j (softplus, overflow-safe).
    """
    theta = 0.5 * (f @ other.T)
    return (F.softplus(theta) - s * theta).sum()


def dcmh_quantization(b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """‖B_batch − f‖_F² for the batch's rows of the code matrix."""
    return (b - f).pow(2).sum()


def dcmh_balance(f: torch.Tensor, buffer: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """‖Σ_{i∈batch} f_i + Σ_{j∉batch} buffer_j‖² (the η term with the buffer of §6.3).

    Args:
        f: bs×L fresh outputs of the batch rows ``index``.
        buffer: n×L buffer of the same modality (its batch rows are replaced by ``f``).
        index: bs distinct row indices.
    """
    rest = buffer.sum(0) - buffer[index].sum(0)
    return (f.sum(0) + rest).pow(2).sum()


def dcmh_update_codes(f_buffer: torch.Tensor, g_buffer: torch.Tensor) -> torch.Tensor:
    """B = sign(γ(F+G)) = sign(F+G), with 0 → +1."""
    return sign_pm1(f_buffer + g_buffer)


@torch.enable_grad()
def balance_gain(net: nn.Module, x_batch: torch.Tensor, lr: float, eta: float, n: int, probes: int = 8) -> float:
    """The balance term's one-step gain k on the batch column sums (SGD is stable iff k < 2).

    One SGD step on η‖Σ_batch f + rest‖²/(n·bs) alone maps u + r (u = Σ_batch f) to
    (1 − k)(u + r) with k = lr·2η/(n·bs)·‖∂u_c/∂params‖², averaged here over ``probes`` output
    coordinates c; for a linear net k = lr·2η·bs·(‖x̄_batch‖² + 1)/n exactly. Changes nothing
    and draws no random number.
    """
    params = [p for p in net.parameters() if p.requires_grad]
    out = net(x_batch)
    cs = range(0, out.shape[1], max(1, out.shape[1] // probes))
    total = 0.0
    for c in cs:
        grads = torch.autograd.grad(out[:, c].sum(), params, retain_graph=True)
        total += sum(float(g.double().pow(2).sum()) for g in grads)
    return lr * 2.0 * eta / (n * x_batch.shape[0]) * total / len(cs)


def learning_rates(schedule: str, lr: float, epochs: int) -> np.ndarray:
    """Per-outer-iteration learning rates of a named schedule (length ``epochs``)."""
    if schedule == "pytorch":
        return np.linspace(lr, 1e-6, epochs + 1)[:epochs]
    if schedule == "tf":
        return np.linspace(lr, 1e-6, max(epochs, 1))[:epochs]
    if schedule == "matlab":
        return np.logspace(math.log10(lr), -3, max(epochs, 1))[:epochs]
    raise ConfigError(f"dcmh parameter 'lr_schedule': expected one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
