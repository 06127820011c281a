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

Robust-training strategies (``nrchbench.strategies``: small-loss selection, Co-teaching,
robust label-head losses, ...) wrap a supervised method's training. A method that can be
wrapped declares ``supports_strategies = True`` and writes its epoch as *steps* instead of
one ``train_epoch``::

    def begin_epoch(self, epoch, data, rng, log, keep): ...   # own selection, lr; -> rows of the epoch
    def epoch_steps(self, epoch, data, keep): ...             # -> Step(part, idx, phase) per optimiser step
    def forward_step(self, step, data): ...                   # -> StepView (codes, per-sample loss; autograd)
    def update_step(self, view, data, plan): ...              # loss on the kept/weighted rows (+ plan.extra), step
    def end_epoch(self, epoch, data, log): ...                # epoch-end updates, log.losses
    def train_sample_losses(self, data): ...                  # -> per-sample loss of every training row (eval)
    def train_codes(self, data): ...                          # -> every training row's codes (±1 scale, eval)
    def add_parameters(self, params): ...                     # optimise a strategy's parameters (a label head)

:meth:`HashingMethod.run_epoch` chains them (and is the default ``train_epoch``), so the plain
method and every strategy run the same code.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nrchbench.errors import ConfigError
from nrchbench.methods.steps import Step, StepHook, StepPlan, StepView, apply_plan
from nrchbench.methods.training import (
    EpochCallback,
    EpochLog,
    Mixture,
    Rng,
    TrainData,
    check_epoch_losses,
    derive_seed,
    fit_epochs,
)
from nrchbench.params import Params, params_from_defaults

__all__ = [
    "PRESETS",
    "EpochCallback",
    "EpochLog",
    "HashingMethod",
    "Mixture",
    "Rng",
    "Step",
    "StepPlan",
    "StepView",
    "TrainData",
    "apply_plan",
    "check_epoch_losses",
    "derive_seed",
    "fit_epochs",
]

PRESETS = ("paper", "fast", "tiny")


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
        supports_strategies: True when the method implements the step hooks (``begin_epoch``,
            ``epoch_steps``, ``forward_step``, ``update_step``, ``end_epoch``) and
            ``train_sample_losses``, ``train_codes`` and ``add_parameters``, so that a robust-training strategy
            can wrap it (see the module docstring). Only supervised methods can declare it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    defaults: ClassVar[dict[str, Any]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}
    uses_labels: ClassVar[bool] = True
    selects_samples: ClassVar[bool] = False
    needs_clean_mask: ClassVar[bool] = False
    supports_strategies: ClassVar[bool] = False

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
        """Train one epoch and report it (methods with the step hooks inherit :meth:`run_epoch`)."""
        if self.supports_strategies:
            return self.run_epoch(epoch, data, rng)
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
        fit_epochs(
            self.name or type(self).__name__, self.num_epochs, lambda e: self.train_epoch(e, data, rng), callback
        )

    # ---------------------------------------------------------------- strategy capability
    # Declared by ``supports_strategies = True``; the defaults refuse in one line.
    def _no_capability(self, hook: str) -> NotImplementedError:
        return NotImplementedError(
            f"method {self.name or type(self).__name__!r} does not implement {hook}(): it does not declare "
            "supports_strategies, so no robust-training strategy can wrap it"
        )

    def begin_epoch(
        self, epoch: int, data: TrainData, rng: Rng, log: EpochLog, keep: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Start an epoch: learning-rate schedules, train mode, and the method's *own* sample
        selection (NRCH's noise separator, logged in ``log``), intersected with ``keep``.

        Args:
            keep: bool over the training rows: a strategy's selection for this epoch (None: all).

        Returns:
            The rows the epoch trains on (bool over the training rows), or None for all. A
            method that restricts its pairs (DCMH's partner buffer) restricts them to these.
        """
        raise self._no_capability("begin_epoch")

    def epoch_steps(self, epoch: int, data: TrainData, keep: np.ndarray | None) -> Iterator[Step]:
        """The epoch's optimiser steps over the rows ``keep`` (None: all), drawn lazily from the
        method's own generators exactly as the plain method draws them."""
        raise self._no_capability("epoch_steps")

    def forward_step(self, step: Step, data: TrainData) -> StepView:
        """The forward pass of one step with autograd (no update yet)."""
        raise self._no_capability("forward_step")

    def update_step(self, view: StepView, data: TrainData, plan: StepPlan | None = None) -> None:
        """Compute the step's loss on ``plan.keep``'s rows with ``plan.weights``, add
        ``plan.extra``, backpropagate, step the optimisers and update the method's buffers;
        accumulate the loss terms for :meth:`end_epoch`. ``plan=None``: the base step as is."""
        raise self._no_capability("update_step")

    def end_epoch(self, epoch: int, data: TrainData, log: EpochLog) -> None:
        """Finish an epoch (e.g. DCMH's code update) and write the epoch's mean loss terms to ``log.losses``."""
        raise self._no_capability("end_epoch")

    def train_sample_losses(self, data: TrainData) -> np.ndarray:
        """The base's own training loss attributed to each training row, under the current
        networks: eval mode, no autograd, in chunks; float64 array of shape (n,). Partners of
        pairwise terms are every training row (no batch sampling noise)."""
        raise self._no_capability("train_sample_losses")

    def train_codes(self, data: TrainData) -> dict[str, torch.Tensor]:
        """Every training row's outputs on the scale of the binary codes (as ``StepView.codes``),
        per modality: eval mode, no autograd (what a strategy's label probe reads for all rows)."""
        raise self._no_capability("train_codes")

    def add_parameters(self, params: Iterable[nn.Parameter]) -> None:
        """Optimise extra parameters (a strategy's label head) together with the networks,
        with the optimiser, learning rate and schedule the method chooses. Call after :meth:`setup`."""
        raise self._no_capability("add_parameters")

    def run_epoch(
        self,
        epoch: int,
        data: TrainData,
        rng: Rng,
        *,
        log: EpochLog | None = None,
        keep: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        on_step: StepHook | None = None,
    ) -> EpochLog:
        """One epoch through the step hooks: ``begin_epoch`` → for every step ``forward_step``,
        the strategy's ``on_step(view)`` plan, ``update_step`` → ``end_epoch``.

        Args:
            log: the epoch's log, if the caller has started it (e.g. with its own timings).
            keep: bool over the training rows: the epoch trains on these only.
            weights: float over the training rows: per-sample loss weights (logged in ``log.weights``).
            on_step: called with each step's :class:`StepView`; returns its :class:`StepPlan` (or None).

        Step time is added to ``log.times[step.phase]`` (CUDA is synchronised at phase changes only).
        """
        log = log if log is not None else EpochLog(epoch)
        keep = self.begin_epoch(epoch, data, rng, log, keep)
        w_all = None
        if weights is not None:
            log.weights = np.asarray(weights, dtype=np.float64)
            w_all = torch.as_tensor(log.weights, dtype=torch.float32, device=data.device)
        sync = data.device.type == "cuda"
        phase, t0 = None, 0.0

        def close() -> None:
            if phase is not None:
                if sync:
                    torch.cuda.synchronize(data.device)
                log.times[phase] = log.times.get(phase, 0.0) + time.perf_counter() - t0

        for step in self.epoch_steps(epoch, data, keep):
            if step.phase != phase:
                close()
                phase, t0 = step.phase, time.perf_counter()
            view = self.forward_step(step, data)
            plan = on_step(view) if on_step is not None else None
            if w_all is not None:
                plan = plan or StepPlan()
                w = w_all[step.idx]
                plan.weights = w if plan.weights is None else plan.weights * w
            self.update_step(view, data, plan)
        close()
        self.end_epoch(epoch, data, log)
        return log

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
