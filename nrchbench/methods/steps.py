"""The step-level capability of methods that robust-training strategies can wrap (see
:class:`nrchbench.methods.HashingMethod`, ``supports_strategies``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Step", "StepHook", "StepPlan", "StepView", "apply_plan"]


# ---------------------------------------------------------------------- steps (strategy capability)
@dataclass
class Step:
    """One optimiser step of an epoch, as the method would take it.

    Attributes:
        part: which networks the step updates: ``joint`` (all of them, e.g. NRCH) or one
            modality, ``image``/``text`` (alternating methods such as DCMH).
        idx: long tensor of the batch's training rows, on the run's device.
        phase: the ``EpochLog.times`` entry the step's time is added to.
    """

    part: str
    idx: torch.Tensor
    phase: str = "train"


class StepView:
    """The forward pass of one step, before any update (what :meth:`HashingMethod.forward_step` returns).

    Attributes:
        step: the step.
        state: the method's own tensors of the forward pass (outputs, similarities, ...),
            read back by its :meth:`~HashingMethod.update_step`.
        codes: modality → the batch's real-valued outputs **on the scale of the binary codes**
            (a perfectly binary output is ±1), with autograd, for the modalities the step
            trains; what a strategy's label head reads. Computed on first access.
        sample_loss: the base's per-sample training loss of the batch's rows, shape
            (len(idx),), with autograd (ranking it needs no gradient: detach it). Computed on
            first access, so steps of a plain run never pay for it.
    """

    def __init__(
        self,
        step: Step,
        state: dict[str, Any],
        codes: Callable[[], dict[str, torch.Tensor]],
        sample_loss: Callable[[], torch.Tensor],
    ) -> None:
        self.step, self.state = step, state
        self._codes_fn, self._loss_fn = codes, sample_loss
        self._codes: dict[str, torch.Tensor] | None = None
        self._loss: torch.Tensor | None = None

    @property
    def codes(self) -> dict[str, torch.Tensor]:
        if self._codes is None:
            self._codes = self._codes_fn()
        return self._codes

    @property
    def sample_loss(self) -> torch.Tensor:
        if self._loss is None:
            self._loss = self._loss_fn()
        return self._loss


@dataclass
class StepPlan:
    """What a strategy decides for one step (every field optional; an empty plan = the base as is).

    Attributes:
        keep: bool tensor over the batch's rows: only these count; the step's loss is
            recomputed on them as the method restricts a batch (for NRCH: the kept sub-batch
            is the batch, so both ends of every pair are kept; for DCMH: the kept anchors
            against the epoch's partner buffer). A step with no kept row is skipped.
        weights: float tensor over the batch's rows: weights of the per-sample terms of the
            loss (normalised by the batch size, not by the weights' sum).
        extra: a scalar tensor added to the step's loss and backpropagated with it (e.g. a
            label head's loss on ``view.codes``); ignored when the step is skipped.
    """

    keep: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    extra: torch.Tensor | None = None


StepHook = Callable[[StepView], "StepPlan | None"]


def apply_plan(
    plan: StepPlan | None, *rows: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor | None]:
    """A plan applied to a step's per-row tensors: (the tensors on the kept rows, their
    weights, the extra loss). Without a plan, or when every row is kept, the tensors are
    returned as they are (so a full plan computes exactly what the plain step computes)."""
    if plan is None:
        return rows, None, None
    weights = plan.weights
    if plan.keep is not None and not bool(plan.keep.all()):
        rows = tuple(r[plan.keep] for r in rows)
        weights = None if weights is None else weights[plan.keep]
    return rows, weights, plan.extra
