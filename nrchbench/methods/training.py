"""What a method trains with and reports: seeded random streams, the training view, the
per-epoch log, and the epoch loop shared by methods and strategies."""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from nrchbench.errors import RunFailed

__all__ = [
    "EpochCallback",
    "EpochLog",
    "Mixture",
    "Rng",
    "TrainData",
    "check_epoch_losses",
    "derive_seed",
    "fit_epochs",
]


# ---------------------------------------------------------------------- randomness
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


class Rng:
    """Named, independent random streams of one run, all derived from its seed.

    ``rng.torch("init")`` is a CPU :class:`torch.Generator` for the initial weights,
    ``rng.numpy("gmm", epoch)`` a numpy Generator, ``rng.seed("x")`` a plain int seed.
    ``rng.raw_torch()`` is seeded with the run's seed itself (no derivation), for methods
    whose official code seeds torch with the seed directly.
    """

    def __init__(self, seed: int) -> None:
        self.base = int(seed)

    def seed(self, *keys: int | str) -> int:
        return derive_seed(self.base, *keys)

    def torch(self, *keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
        g = torch.Generator(device=device)
        g.manual_seed(self.seed(*keys))
        return g

    def raw_torch(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.base)

    def numpy(self, *keys: int | str) -> np.random.Generator:
        return np.random.default_rng(self.seed(*keys))


# ---------------------------------------------------------------------- data and logs
@dataclass
class TrainData:
    """What a method may see of the training split (already on the run's device).

    Attributes:
        image: n×d1 float32 image features.
        text: n×d2 float32 text features (for pair-noise models: the mismatched pairing).
        labels: n×C float32 **noisy** labels in {0,1} (all zeros when ``uses_labels = False``).
        device: the run's device.
        clean_mask: bool n, which training labels are clean — only for methods that declare
            ``needs_clean_mask = True`` (the clean-label oracle); None for every other method.
    """

    image: torch.Tensor
    text: torch.Tensor
    labels: torch.Tensor
    device: torch.device
    clean_mask: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.image.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.labels.shape[1])


@dataclass
class Mixture:
    """A fitted 1-D mixture (e.g. a noise separator's GMM), components by ascending mean."""

    means: list[float]
    variances: list[float]
    weights: list[float]


@dataclass
class EpochLog:
    """What one epoch of training reports.

    Attributes:
        epoch: 0-based epoch index.
        losses: loss terms (means over the epoch); ``loss`` is the total that was minimised.
        times: seconds per phase (``train``, ``dns_loss``, ...); recorded as ``time_<phase>``.
        values: other scalars worth a curve (``theta``, ``lr``, ``alpha``, ...).
        selected: bool array over the training rows: the samples trained on this epoch
            (methods with ``selects_samples``); the runner records the selected fraction and
            the selection's precision/recall against the clean mask.
        sample_loss: float array over the training rows: the per-sample loss a selection or
            weighting was based on (the runner stores clean/noisy histograms of it).
        weights: float array over the training rows: per-sample weights of weighting methods
            (the runner records their mean over clean and over noisy samples).
        mixture: the fitted mixture of a GMM separator.
    """

    epoch: int
    losses: dict[str, float] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    selected: np.ndarray | None = None
    sample_loss: np.ndarray | None = None
    weights: np.ndarray | None = None
    mixture: Mixture | None = None

    @contextlib.contextmanager
    def timer(self, phase: str, device: torch.device | None = None) -> Iterator[None]:
        """Add the wall time of the block to ``times[phase]`` (waits for CUDA kernels)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if device is not None and device.type == "cuda":
                torch.cuda.synchronize(device)
            self.times[phase] = self.times.get(phase, 0.0) + time.perf_counter() - t0


EpochCallback = Callable[[EpochLog], None]


def check_epoch_losses(log: EpochLog, owner: str) -> None:
    """Raise :class:`RunFailed` if the epoch's total loss (``losses["loss"]``) is NaN or infinite."""
    loss = log.losses.get("loss")
    if loss is not None and not math.isfinite(loss):
        raise RunFailed(
            f"NaN in {owner} training loss at epoch {log.epoch}; "
            "lower 'lr' or check the input features (--feature-transform)"
        )


def fit_epochs(
    owner: str, num_epochs: int, train_epoch: Callable[[int], EpochLog], callback: EpochCallback | None
) -> None:
    """The epoch loop of :meth:`HashingMethod.fit` (and of strategies): train, check the losses, report."""
    for epoch in range(num_epochs):
        log = train_epoch(epoch)
        check_epoch_losses(log, owner)
        if callback is not None:
            callback(log)
