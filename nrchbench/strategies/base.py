"""The strategy contract: a noise-robust training rule wrapped around a supervised method.

A strategy decides, per epoch and per optimiser step, which training samples count and how
much — a selection mask, per-sample weights, or an extra loss term — and leaves everything
else to the base method: its networks, its loss, its optimisers and schedule, its batches.
It works through the method's declared capability (``supports_strategies``, the step hooks
of :class:`~nrchbench.methods.base.HashingMethod`), so one strategy fits every capable
method and a method is written once.

A strategy author writes::

    class MyParams(Params):
        warmup: int = Field(10, ge=0)

    @STRATEGIES.register("mine")
    class Mine(Strategy):
        Params = MyParams
        selects_samples = True            # sets EpochLog.selected every epoch

        def setup(self, data, rng): ...   # after the method's own setup
        def train_epoch(self, epoch, data, rng):
            keep = ...                    # bool over the training rows, or None
            log = self.method.run_epoch(epoch, data, rng, keep=keep, on_step=self.on_step)
            log.selected = keep
            return log

The runner wraps the method (:func:`nrchbench.strategies.wrap_strategy`) and then treats the
strategy exactly as a method: ``fit``, ``encode``, ``state``, ``num_epochs``. Random streams
are the run's :class:`~nrchbench.methods.base.Rng` with keys under ``"strategy"``, so the
wrapped method draws exactly what it draws alone (a strategy that trains nothing differently
reproduces the base bit for bit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from nrchbench.errors import ConfigError
from nrchbench.methods.base import (
    EpochCallback,
    EpochLog,
    HashingMethod,
    Rng,
    StepPlan,
    StepView,
    TrainData,
    fit_epochs,
)
from nrchbench.params import Params

__all__ = ["NoStrategy", "Strategy", "StrategyContext", "refusal"]


@dataclass(frozen=True)
class StrategyContext:
    """What the runner tells a strategy about the run besides the training data.

    Attributes:
        noise_rate: the spec's nominal noise rate. Knowing it is an **oracle**: only settings
            documented as such read it (Co-teaching's ``forget_rate=oracle``, gmm-select's
            ``average=auto`` rule that DivideMix keys on its ``--r``).
    """

    noise_rate: float | None = None


def refusal(strategy: type[Strategy], method_cls: Any, method: str) -> str | None:
    """Why ``method`` cannot take ``strategy`` (one line), or None if it can."""
    who = f"method {method!r} cannot take strategy {strategy.name!r}"
    if not getattr(method_cls, "uses_labels", True):
        return f"{who}: it is unsupervised (uses_labels = False), so there are no labels to be robust to"
    if not getattr(method_cls, "supports_strategies", False):
        return (
            f"{who}: it does not declare supports_strategies (the per-sample loss and step hooks of "
            "nrchbench.methods.base.HashingMethod)"
        )
    if strategy.selects_samples and getattr(method_cls, "selects_samples", False):
        return f"{who}: both select samples (the method has its own separator); use a base without one, e.g. nrch-nodns"
    return None


class Strategy:
    """Base class of robust-training strategies (see the module docstring).

    Class attributes:
        name: registry key. description: one line for ``nrchbench list strategies``.
        Params: the :class:`~nrchbench.params.Params` model of the strategy's parameters.
        selects_samples: True when every epoch's log carries ``selected`` (the runner then
            records the selected fraction and precision/recall against the clean mask). A
            selecting strategy is refused on a method that selects its own samples.
        weights_samples: True when every epoch's log carries ``weights``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    selects_samples: ClassVar[bool] = False
    weights_samples: ClassVar[bool] = False

    def __init__(
        self, method: HashingMethod, params: Mapping[str, Any] | None = None, context: StrategyContext | None = None
    ) -> None:
        self.method = method
        self.p = self.Params.check(dict(params or {}), owner=f"strategy {self.name!r}")
        self.context = context or StrategyContext()

    # ---------------------------------------------------------------- resolve time
    @classmethod
    def check(cls, method_cls: Any, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``params`` for wrapping ``method``; return every parameter (defaults filled in).

        Raises:
            ConfigError: the method cannot take the strategy (one line), or a bad parameter.
        """
        why = refusal(cls, method_cls, method)
        if why:
            raise ConfigError(why)
        return cls.Params.check(dict(params), owner=f"strategy {cls.name!r}").model_dump()

    # ---------------------------------------------------------------- what the runner calls
    @property
    def bits(self) -> int:
        return self.method.bits

    @property
    def num_epochs(self) -> int:
        return self.method.num_epochs

    @property
    def params(self) -> dict[str, Any]:
        return self.p.model_dump()

    def fit(self, data: TrainData, *, seed: int, callback: EpochCallback | None = None) -> None:
        """The method's template with the strategy's epochs: seeded streams, the method's
        ``setup``, the strategy's :meth:`setup`, then :meth:`train_epoch` for every epoch,
        with the NaN check and the callback."""
        rng = Rng(seed)
        self.method.setup(data, rng)
        self.setup(data, rng)
        owner = f"{self.method.name or type(self.method).__name__} + {self.name}"
        fit_epochs(owner, self.num_epochs, lambda e: self.train_epoch(e, data, rng), callback)

    def encode(self, modality: str, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        return self.method.encode(modality, x, batch_size=batch_size)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.encode_image(x)

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.encode_text(x)

    def state(self) -> dict[str, Any]:
        """The wrapped method's state (the codes are always the wrapped method's)."""
        return self.method.state()

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.method.load_state(state)

    # ---------------------------------------------------------------- hooks
    def setup(self, data: TrainData, rng: Rng) -> None:
        """Build the strategy's own state (called after the method's ``setup``)."""

    def on_step(self, view: StepView) -> StepPlan | None:
        """The plan of one step (None: the base step as is)."""
        return None

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        """One epoch of the wrapped method with :meth:`on_step` (override to select per epoch)."""
        return self.method.run_epoch(epoch, data, rng, on_step=self.on_step)


class NoStrategyParams(Params):
    """``none`` takes no parameters."""


class NoStrategy(Strategy):
    """The base method as it is (the default; every run id without a strategy is unchanged)."""

    name = "none"
    description = "the base method as it is (default)"
    Params = NoStrategyParams

    @classmethod
    def check(cls, method_cls: Any, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every method takes ``none`` (it never wraps anything); it takes no parameters."""
        return cls.Params.check(dict(params), owner="strategy 'none'").model_dump()


def all_rows(n: int) -> np.ndarray:
    """A selection of every training row."""
    return np.ones(n, dtype=bool)
