"""The method contract: what a method declares, what it implements, and the training template.

A method is its parameters, its networks, its loss and one epoch of training. The base
class owns everything else: parameter validation and presets (declared once, checked in one
place), seeded random streams (:class:`Rng`; no global RNG anywhere), the epoch loop, timing,
the NaN check on the loss, the progress callback and the typed per-epoch log. The runner owns
device, data, noise, evaluation and the record; a method never sees the clean labels (unless
it declares ``needs_clean_mask``, which only the clean-label oracle does).

A method author writes::

    class MyParams(Params):
        epochs: int = Field(40, ge=1)
        lr: float = Field(1e-4, gt=0)

    @METHODS.register("mine")
    class Mine(HashingMethod):
        Params = MyParams
        presets = {"paper": {}, "fast": {}, "tiny": {"epochs": 2}}

        def setup(self, data, rng): ...                     # nets and optimisers
        def train_epoch(self, epoch, data, rng): ...        # -> EpochLog
        def encode_image(self, x): ...
        def encode_text(self, x): ...

``nrchbench.testing.check_method(Mine)`` runs the contract on it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nrchbench.errors import ConfigError, RunFailed
from nrchbench.params import Params, params_from_defaults

__all__ = ["PRESETS", "EpochCallback", "EpochLog", "HashingMethod", "Mixture", "Rng", "TrainData", "derive_seed"]

PRESETS = ("paper", "fast", "tiny")


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


# ---------------------------------------------------------------------- the base class
class HashingMethod:
    """Base class of cross-modal hashing methods (see the module docstring).

    Class attributes (capabilities are declared, never probed):
        name: registry key. description: one line for ``nrchbench list methods``.
        Params: the :class:`~nrchbench.params.Params` model of the hyper-parameters, whose
            defaults are the official code's values (or a plain ``defaults`` dict, from which
            the model is derived).
        presets: ``paper``, ``fast`` (CPU friendly) and ``tiny`` (seconds, for tests):
            overrides of the defaults, all three required.
        uses_labels: False for unsupervised methods: they never see labels, are trained once
            per (dataset, bits, seed) and marked noise-invariant.
        selects_samples: True when every epoch's log carries ``selected``.
        needs_clean_mask: True only for the clean-label oracle: the runner then passes the
            clean mask in :class:`TrainData`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    defaults: ClassVar[dict[str, Any]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}
    uses_labels: ClassVar[bool] = True
    selects_samples: ClassVar[bool] = False
    needs_clean_mask: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "defaults" in cls.__dict__ and "Params" not in cls.__dict__:
            cls.Params = params_from_defaults(f"{cls.__name__}Params", cls.__dict__["defaults"])
        cls.defaults = cls.Params.defaults() if cls.Params is not Params else dict(cls.defaults)
        missing = [p for p in PRESETS if p not in cls.presets]
        if missing:
            raise TypeError(
                f"method class {cls.__name__} lacks the preset(s) {', '.join(missing)}; declare all of {PRESETS}"
            )
        for preset, values in cls.presets.items():
            unknown = sorted(set(values) - set(cls.defaults))
            if unknown:
                raise TypeError(f"{cls.__name__}.presets[{preset!r}] sets unknown parameter(s) {', '.join(unknown)}")

    def __init__(self, bits: int = 64, **params: Any) -> None:
        if int(bits) < 1:
            raise ConfigError(f"{self.name or type(self).__name__}: bits must be a positive integer, got {bits!r}")
        self.bits = int(bits)
        self.p = self.Params.check(params, owner=f"method {self.name or type(self).__name__!r}")

    # ---------------------------------------------------------------- parameters
    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """Per-dataset defaults (e.g. the official settings of one dataset): merged below the
        preset and the user's overrides. ``dataset`` is a canonical name or a directory."""
        return {}

    @classmethod
    def resolve_params(
        cls, preset: str | None, overrides: Mapping[str, Any] | None = None, *, dataset: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``defaults ← dataset_params(dataset) ← presets[preset] ← overrides``, validated.

        Returns:
            (the overrides converted to their types, every resolved hyper-parameter).

        Raises:
            ConfigError: an unknown preset or parameter, or a value of the wrong type or range.
        """
        owner = f"method {cls.name or cls.__name__!r}"
        if preset is not None and preset not in cls.presets:
            raise ConfigError(f"{owner} has no preset {preset!r}; available: {', '.join(cls.presets)}")
        overrides = dict(overrides or {})
        user = cls.Params.check({**cls.defaults, **overrides}, owner=owner).model_dump()
        merged = {**(cls.dataset_params(dataset) if dataset else {}), **cls.presets.get(preset or "paper", {})}
        resolved = cls.Params.check({**merged, **overrides}, owner=owner).model_dump()
        return {k: user[k] for k in overrides}, resolved

    @property
    def params(self) -> dict[str, Any]:
        """Resolved hyper-parameters as a plain dict."""
        return self.p.model_dump()

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters including ``bits`` (round-trips through the constructor)."""
        return {"bits": self.bits, **self.params}

    @property
    def num_epochs(self) -> int:
        """Epochs :meth:`fit` runs (for progress displays and the loop)."""
        return int(getattr(self.p, "epochs", 1))

    # ---------------------------------------------------------------- hooks
    def setup(self, data: TrainData, rng: Rng) -> None:
        """Build the networks and optimisers (called once, before the first epoch)."""

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        """Train one epoch and report it."""
        raise NotImplementedError(f"{type(self).__name__} implements neither train_epoch nor fit")

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued image outputs (n×bits); codes are their signs."""
        raise NotImplementedError

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued text outputs (n×bits); codes are their signs."""
        raise NotImplementedError

    # ---------------------------------------------------------------- the template
    def fit(self, data: TrainData, *, seed: int, callback: EpochCallback | None = None) -> None:
        """Train: seeded streams, ``setup``, then ``train_epoch`` for every epoch, with timing,
        a NaN check on the loss and the callback after each epoch.

        Raises:
            RunFailed: the loss became NaN or infinite.
        """
        rng = Rng(seed)
        self.setup(data, rng)
        for epoch in range(self.num_epochs):
            log = self.train_epoch(epoch, data, rng)
            loss = log.losses.get("loss")
            if loss is not None and not math.isfinite(loss):
                raise RunFailed(
                    f"NaN in {self.name or type(self).__name__} training loss at epoch {epoch}; "
                    "lower 'lr' or check the input features (--feature-transform)"
                )
            if callback is not None:
                callback(log)

    # ---------------------------------------------------------------- helpers
    @torch.no_grad()
    def encode(self, modality: str, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Encode in chunks without autograd; returns real-valued outputs on x's device."""
        fn = self.encode_image if modality == "image" else self.encode_text
        outs = [fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        if not outs:
            return torch.empty(0, self.bits, device=x.device)
        return torch.cat(outs)

    def state(self) -> dict[str, Any]:
        """A copy of the trained state (every module and tensor attribute), for model selection."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if isinstance(v, (nn.Module, torch.Tensor))}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state` copy."""
        for k, v in state.items():
            setattr(self, k, copy.deepcopy(v))
