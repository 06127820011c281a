"""Building blocks shared by the feature-based methods: seeded MLPs, hash heads, index
batches, the epoch's loss means and the two-network encoders.

Everything random takes an explicit :class:`torch.Generator`; nothing here reads global RNG
state, so two fits with the same seed are bit-identical on the same device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nrchbench.errors import RegistryError
from nrchbench.registry import DATASETS

__all__ = [
    "HashHead",
    "ImageHead",
    "LossMeans",
    "TwoNetEncoder",
    "dataset_key",
    "hash_heads",
    "image_head",
    "iter_batches",
    "linear",
    "mlp",
    "optimizer_step",
    "reset_linear_",
    "set_lr",
]

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


# ---------------------------------------------------------------------- hash heads
class HashHead(nn.Module):
    """body → tanh → row L2-normalisation: the hash net of NRCH (the official
    ``ImgModule``/``TxtModule``) and of the peers built on its heads (SCBCH, UCCH, MRL).

    Args:
        body: the network before the squashing (an :func:`mlp`).
        tanh: False skips the tanh (MRL's unhashed reading); the rows are normalised either way.
    """

    def __init__(self, body: nn.Module, tanh: bool = True) -> None:
        super().__init__()
        self.fc = body
        self.tanh = tanh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(x)
        return F.normalize(z.tanh() if self.tanh else z, dim=1)


def hash_heads(
    d_img: int,
    d_txt: int,
    hidden: int,
    bits: int,
    image_layers: int,
    text_layers: int,
    generator: torch.Generator,
    tanh: bool = True,
) -> tuple[HashHead, HashHead]:
    """The image and the text :class:`HashHead` (MLPs of ``image_layers``/``text_layers``
    Linear layers, ``hidden`` units), built on the CPU in that order from ``generator``."""
    img = HashHead(mlp(d_img, hidden, bits, image_layers, generator), tanh)
    txt = HashHead(mlp(d_txt, hidden, bits, text_layers, generator), tanh)
    return img, txt


class TwoNetEncoder:
    """Mixin: ``encode_image``/``encode_text`` through ``self.img_net``/``self.txt_net``
    (float32 inputs, nets in eval mode)."""

    img_net: nn.Module
    txt_net: nn.Module

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.img_net.eval()
        return self.img_net(x.to(torch.float32))

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        self.txt_net.eval()
        return self.txt_net(x.to(torch.float32))


# ---------------------------------------------------------------------- epoch helpers
class LossMeans:
    """Sums of an epoch's batch loss terms, written to the epoch log as means over batches.

    Args:
        keys: the terms to record (``loss`` first, by convention).
        device: where the batch terms live (the sums stay there until :meth:`write`).
    """

    def __init__(self, keys: tuple[str, ...], device: str | torch.device) -> None:
        self.keys = keys
        self.sums = torch.zeros(len(keys), device=device)
        self.batches = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        """Add one batch's terms (detached)."""
        self.sums += torch.stack([terms[k].detach() for k in self.keys])
        self.batches += 1

    def means(self) -> dict[str, float]:
        """Mean of each term over the batches added ({} when none was)."""
        if not self.batches:
            return {}
        return dict(zip(self.keys, (self.sums / self.batches).tolist()))


def optimizer_step(
    loss: torch.Tensor,
    *optimizers: torch.optim.Optimizer,
    clip: tuple[list[torch.Tensor], float] | None = None,
) -> None:
    """One update: ``zero_grad`` on every optimiser, ``loss.backward()``, with ``clip =
    (params, max_norm)`` a clip of those parameters' total gradient norm, then every
    optimiser's ``step``, in the order given."""
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip[0], clip[1])
    for opt in optimizers:
        opt.step()


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (a method's own schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def dataset_key(dataset: str) -> str:
    """The canonical registry name of ``dataset`` (for per-dataset tables), else its lower-cased name
    (a directory or an unregistered plugin's name)."""
    try:
        return DATASETS.canonical(dataset)
    except RegistryError:
        return str(dataset).lower()
