"""Building blocks shared by the feature-based methods: seeded MLPs and index batches.

Everything random takes an explicit :class:`torch.Generator`; nothing here reads global RNG
state, so two fits with the same seed are bit-identical on the same device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

__all__ = ["ImageHead", "image_head", "iter_batches", "linear", "mlp", "reset_linear_"]

#: Image nets of the baselines: a linear layer on the features, or a two-layer MLP.
ImageHead = Literal["linear", "mlp"]


@torch.no_grad()
def reset_linear_(layer: nn.Linear, generator: torch.Generator) -> nn.Linear:
    """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``.

    Weights: Kaiming-uniform with a=√5 (i.e. U(±1/√fan_in)); bias: U(±1/√fan_in) — the same
    draws, in the same order, as ``nn.Linear.reset_parameters`` takes from the global RNG.
    """
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def linear(d_in: int, d_out: int, generator: torch.Generator, bias: bool = True) -> nn.Linear:
    """``nn.Linear(d_in, d_out)`` initialised from ``generator`` (the global RNG is never touched)."""
    return reset_linear_(nn.utils.skip_init(nn.Linear, d_in, d_out, bias=bias), generator)


def mlp(in_dim: int, hidden: int, out_dim: int, num_linear: int, generator: torch.Generator) -> nn.Sequential:
    """Linear(in→hidden) – ReLU – [Linear(hidden→hidden) – ReLU]* – Linear(hidden→out).

    Args:
        in_dim: input width.
        hidden: width of every hidden layer.
        out_dim: output width.
        num_linear: number of Linear layers (≥ 1; 1 means a single Linear(in→out)).
        generator: CPU generator for the initialisation (layers are built on the CPU, so
            the initial weights do not depend on the device they are moved to).
    """
    if num_linear < 1:
        raise ValueError(f"num_linear must be >= 1, got {num_linear}")
    dims = [in_dim] + [hidden] * (num_linear - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i in range(num_linear):
        layers.append(linear(dims[i], dims[i + 1], generator))
        if i < num_linear - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def image_head(kind: ImageHead, d_img: int, hidden: int, bits: int, generator: torch.Generator) -> nn.Module:
    """The image net of a baseline: ``linear`` = Linear(d_img→bits), else a two-layer MLP."""
    if kind == "linear":
        return linear(d_img, bits, generator)
    return mlp(d_img, hidden, bits, 2, generator)


def iter_batches(
    n: int, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
) -> Iterator[torch.Tensor]:
    """Index tensors of one epoch: a seeded permutation (or 0..n−1 without a generator),
    cut into consecutive chunks of ``batch_size`` (the last may be shorter; none dropped)."""
    if generator is None:
        order = torch.arange(n)
    else:
        order = torch.randperm(n, generator=generator)
    order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
