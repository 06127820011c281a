"""Small helpers shared by the feature-based methods (seeds, MLP heads, index batches, checks).

Everything random takes an explicit seed or :class:`torch.Generator`; nothing here reads
global RNG state, so two fits with the same seed are bit-identical on the same device.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from nrchbench.errors import ConfigError

__all__ = [
    "IMAGE_HEADS",
    "check_choice",
    "check_positive_ints",
    "derive_seed",
    "image_head",
    "iter_batches",
    "mlp",
    "reset_linear_",
    "seeded_generator",
    "sync",
    "two_layer_mlp",
]

#: Image nets of the baselines: a linear layer on the features, or a two-layer MLP.
IMAGE_HEADS = ("linear", "mlp")


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed derived from ``seed`` and a path of keys (ints or names).

    Distinct key paths give independent streams, e.g. ``derive_seed(s, "init")`` for the
    weights and ``derive_seed(s, "gmm", epoch)`` for the mixture of one epoch.
    """
    words = [int(seed) % (2**63)]
    for k in keys:
        words.append(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) % (2**63))
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seeded_generator(seed: int, *keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with :func:`derive_seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g


@torch.no_grad()
def reset_linear_(layer: nn.Linear, generator: torch.Generator) -> nn.Linear:
    """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``.

    Weights: Kaiming-uniform with a=√5 (i.e. U(±1/√fan_in)); bias: U(±1/√fan_in).
    """
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


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
        layers.append(reset_linear_(nn.Linear(dims[i], dims[i + 1]), generator))
        if i < num_linear - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


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


def sync(device: torch.device) -> None:
    """Wait for the queued kernels of ``device`` (a no-op off CUDA), so timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- parameter checks
def check_choice(method: str, key: str, value: Any, choices: Iterable[str]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``.

    The message reads ``<method> parameter '<key>': expected one of a, b, got 'value'``.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{method} parameter {key!r}: expected one of {', '.join(choices)}, got {value!r}")


def check_positive_ints(method: str, params: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Raise :class:`ConfigError` at the first of ``keys`` whose ``int(params[key])`` is < 1."""
    for key in keys:
        if int(params[key]) < 1:
            raise ConfigError(f"{method} parameter {key!r}: expected a positive integer, got {params[key]!r}")


# --------------------------------------------------------------------------- default-init nets
def two_layer_mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """Linear(d_in→hidden)–ReLU–Linear(hidden→d_out) with PyTorch's default init.

    The weights are drawn from the *global* torch RNG at construction (the baselines seed
    it with ``torch.manual_seed``), unlike :func:`mlp`, which takes a generator.
    """
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


def image_head(kind: str, d_img: int, hidden: int, bits: int) -> nn.Module:
    """The image net of a baseline: ``linear`` = Linear(d_img→bits), else :func:`two_layer_mlp`."""
    if kind == "linear":
        return nn.Linear(d_img, bits)
    return two_layer_mlp(d_img, hidden, bits)
