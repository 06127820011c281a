"""Selecting strategies: DivideMix's GMM division (``gmm-select``) and Co-teaching (``coteaching``).

Both train the base method only on the samples they judge clean, from the base's *own*
per-sample training loss (``HashingMethod.train_sample_losses`` over every row, or a step's
``StepView.sample_loss`` over its batch) — or, with ``signal=probe``, from the cross-entropy of
a linear label probe on the detached codes (:class:`LabelProbe`) — and log ``selected`` every epoch so the runner
records the selected fraction and precision/recall against the clean mask. Formulations,
defaults and the adaptations to cross-modal hashing: ``docs/METHODS.md`` §11 and
``../shared/docs/PEERS.md`` §6.1–6.2.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from nrchbench.methods._common import linear
from nrchbench.methods.base import EpochLog, HashingMethod, Mixture, Rng, StepPlan, StepView, TrainData
from nrchbench.methods.nrch import gmm_clean_posterior
from nrchbench.params import Params
from nrchbench.registry import STRATEGIES
from nrchbench.strategies.base import Strategy, all_rows
from nrchbench.strategies.label_head import label_set_ce

__all__ = [
    "AVERAGE_FROM_RATE",
    "CoTeaching",
    "GMMSelect",
    "LabelProbe",
    "divide",
    "forget_rate_at",
    "minmax_divide",
    "noisy_fraction",
    "small_loss_mask",
]

#: gmm-select's ``average=auto`` averages the loss history when the nominal noise rate is at least this
#: (DivideMix averages at its one very high rate, r = 0.9; our rates are 0.2/0.5/0.8).
AVERAGE_FROM_RATE = 0.8


# ============================================================================ pure rules
def minmax_divide(losses: np.ndarray) -> np.ndarray:
    """DivideMix's normalisation (ℓ − min ℓ)/(max ℓ − min ℓ), float64 (all zeros if the losses are equal)."""
    x = np.asarray(losses, dtype=np.float64).reshape(-1)
    span = float(x.max() - x.min()) if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def divide(
    history: list[np.ndarray],
    *,
    average: bool,
    window: int = 5,
    threshold: float = 0.5,
    max_iter: int = 10,
    tol: float = 1e-2,
    reg_covar: float = 5e-4,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, list[float]]]:
    """DivideMix's ``eval_train`` division of the latest normalised losses.

    Args:
        history: the min–max normalised per-sample losses of the past divisions, latest last.
        average: divide the mean of the last ``window`` entries instead of the latest.

    Returns:
        (kept = w > threshold, w = posterior of the lower-mean component, the GMM's input,
        the mixture {"means", "variances", "weights"} by ascending mean).
    """
    x = np.mean(history[-window:], axis=0) if average else np.asarray(history[-1], dtype=np.float64)
    w, info = gmm_clean_posterior(x, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=random_state)
    return w > threshold, w, x, info


def forget_rate_at(epoch: int, tau: float, num_gradual: int = 10, exponent: float = 1.0) -> float:
    """Co-teaching's forget rate of ``epoch``: ``linspace(0, τ^c, T_k)[epoch]`` for the first
    T_k epochs, τ afterwards (``rate_schedule`` of the official main.py)."""
    if epoch < num_gradual:
        return float(np.linspace(0.0, tau**exponent, num_gradual)[epoch])
    return float(tau)


def small_loss_mask(loss: torch.Tensor, forget_rate: float) -> torch.Tensor:
    """Bool mask of the ``int((1 − rate)·b)`` smallest losses of a batch (stable order on ties)."""
    b = int(loss.numel())
    keep = int((1.0 - forget_rate) * b)
    mask = torch.zeros(b, dtype=torch.bool, device=loss.device)
    mask[torch.argsort(loss.detach(), stable=True)[:keep]] = True
    return mask


def noisy_fraction(info: dict[str, list[float]]) -> float:
    """The weight of the higher-mean component of a fitted 2-component mixture (0 if only one was fitted)."""
    return float(info["weights"][-1]) if len(info["weights"]) == 2 else 0.0


# ============================================================================ the probe signal
Signal = Literal["loss", "probe"]
SIGNAL_DESCRIPTION = (
    "loss: the base's own per-sample training loss; probe: the cross-entropy of a linear label probe "
    "on the detached codes (a label-informative signal for bases whose loss barely uses labels, e.g. NRCH's)"
)


class LabelProbe:
    """A linear label probe z = W·sg(c) + b on the detached codes, trained on the noisy labels
    with the set-mode cross-entropy −log p_Y by the base's optimiser (``add_parameters``).

    The codes get no gradient from it, so it never changes what the base learns — like NRCH's
    prototype matrix W, which is trained only by a detached loss and acts only through the
    selection. Its per-row cross-entropy (summed over the modalities) is a label-noise signal.
    """

    def __init__(self, method: HashingMethod, data: TrainData, generator: torch.Generator) -> None:
        self.method = method
        self.head = linear(method.bits, data.num_classes, generator).to(data.device)
        method.add_parameters(self.head.parameters())
        self.labels = data.labels.to(torch.float32)

    def step_losses(self, view: StepView) -> torch.Tensor:
        """Per-row probe loss of a step's batch (autograd into the probe only)."""
        y = self.labels[view.step.idx]
        return sum(label_set_ce(self.head(c.detach()), y) for c in view.codes.values())

    @torch.no_grad()
    def train_losses(self, data: TrainData) -> np.ndarray:
        """Per-row probe loss of every training row (eval, no autograd), float64."""
        codes = self.method.train_codes(data)
        return sum(label_set_ce(self.head(c), self.labels) for c in codes.values()).double().cpu().numpy()


# ============================================================================ gmm-select
class GMMSelectParams(Params):
    """DivideMix's division (official Train_cifar.py defaults)."""

    warmup: int = Field(10, ge=0, description="epochs on every sample before the first division (DivideMix CIFAR-10)")
    p_threshold: float = Field(0.5, ge=0, le=1, description="keep rows whose clean posterior w_i > this")
    average: Literal["auto", "always", "never"] = Field(
        "auto",
        description="divide the mean of the last `window` losses: auto = when the nominal noise rate >= 0.8 "
        "(DivideMix's r = 0.9 rule; reads the rate)",
    )
    window: int = Field(5, ge=1, description="epochs averaged when averaging")
    signal: Signal = Field("loss", description=SIGNAL_DESCRIPTION)
    gmm_max_iter: int = Field(10, ge=1)
    gmm_tol: float = Field(1e-2, gt=0)
    gmm_reg_covar: float = Field(5e-4, ge=0)


@STRATEGIES.register("gmm-select")
class GMMSelect(Strategy):
    """Small-loss selection by a 2-component GMM on the base's own loss (DivideMix's division, no MixMatch).

    From epoch ``warmup`` on, every epoch starts with the base's per-sample training loss of
    every row (eval mode, no autograd), min–max normalised (averaged over the last ``window``
    epochs at high noise), a seeded ``GaussianMixture(2, max_iter=10, tol=1e-2,
    reg_covar=5e-4)``, w_i = the posterior of the lower-mean component, and the epoch trains
    on {w_i > 0.5} only; unselected rows are ignored (not used as unlabelled data). Logs
    ``selected`` (all rows during the warm-up), ``sample_loss`` (the GMM's input),
    ``mixture``, times ``sample_loss`` and ``gmm``.
    """

    name = "gmm-select"
    description = "DivideMix's GMM small-loss division on the base's own loss (selection only, no MixMatch)"
    Params = GMMSelectParams
    selects_samples = True

    def setup(self, data: TrainData, rng: Rng) -> None:
        self._history: list[np.ndarray] = []
        self.probe = None
        if self.p.signal == "probe":
            self.probe = LabelProbe(self.method, data, rng.torch("strategy", "gmm-select", "probe"))

    def on_step(self, view: StepView) -> StepPlan | None:
        if self.probe is None:
            return None
        loss = self.probe.step_losses(view).mean()
        self._probe_sum, self._probe_steps = self._probe_sum + loss.detach(), self._probe_steps + 1
        return StepPlan(extra=loss)

    def signal(self, data: TrainData) -> np.ndarray:
        """The per-row signal the GMM divides (before normalisation)."""
        return self.method.train_sample_losses(data) if self.probe is None else self.probe.train_losses(data)

    def averaging(self) -> bool:
        if self.p.average == "auto":
            r = self.context.noise_rate
            return r is not None and r >= AVERAGE_FROM_RATE
        return self.p.average == "always"

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        log = EpochLog(epoch)
        keep = None
        self._probe_sum, self._probe_steps = torch.zeros((), device=data.device), 0
        if epoch >= self.p.warmup:
            with log.timer("sample_loss", data.device):
                self._history.append(minmax_divide(self.signal(data)))
                del self._history[: -self.p.window]
            with log.timer("gmm"):
                keep, _, x, info = divide(
                    self._history,
                    average=self.averaging(),
                    window=self.p.window,
                    threshold=self.p.p_threshold,
                    max_iter=self.p.gmm_max_iter,
                    tol=self.p.gmm_tol,
                    reg_covar=self.p.gmm_reg_covar,
                    random_state=rng.seed("strategy", "gmm-select", epoch) % (2**32),
                )
            log.sample_loss, log.mixture = x, Mixture(**info)
        log = self.method.run_epoch(epoch, data, rng, log=log, keep=keep, on_step=self.on_step)
        log.selected = keep if keep is not None else all_rows(data.n)
        if self.probe is not None and self._probe_steps:
            log.losses["loss_probe"] = float(self._probe_sum.item()) / self._probe_steps
        return log


# ============================================================================ coteaching
ForgetRate = Literal["estimate", "oracle"] | Annotated[float, Field(ge=0, lt=1)]


class CoTeachingParams(Params):
    """Co-teaching (official loss.py/main.py defaults: T_k = 10, c = 1)."""

    forget_rate: ForgetRate = Field(
        "estimate",
        description="τ: estimate (GMM weight of the high-loss component, every epoch), "
        "oracle (the nominal noise rate, as the original), or a number",
    )
    num_gradual: int = Field(10, ge=1, description="T_k: epochs of the linear ramp of the forget rate")
    exponent: float = Field(1.0, gt=0, description="c: the ramp ends at τ^c")
    signal: Signal = Field("loss", description=SIGNAL_DESCRIPTION)


@STRATEGIES.register("coteaching")
class CoTeaching(Strategy):
    """Co-teaching: two copies of the base exchange their small-loss samples in every batch.

    Network A is the wrapped method (it encodes the codes); B is a second instance with the
    same hyper-parameters, set up from a derived seed. Every step of A's epoch (A draws the
    batches; B takes the same ones) computes both per-sample losses on the batch, keeps each
    model's ⌊(1 − τ_t)·b⌋ smallest, and updates A on B's kept rows and B on A's. τ_t ramps
    linearly from 0 to τ^c over the first T_k epochs, then stays at τ. ``forget_rate``:
    ``estimate`` (default, no oracle): τ̂ = the weight of the higher-mean component of the
    DivideMix GMM fitted to A's normalised per-sample losses of all rows at the start of the
    epoch; ``oracle``: the nominal noise rate (the original's default; an oracle); or a number.
    ``signal=probe`` ranks by each model's own :class:`LabelProbe` loss instead (each probe
    trains on the rows its model trains on).

    Logs ``selected`` (rows that trained A this epoch), values ``forget_rate``,
    ``forget_rate_target`` and ``visited_fraction`` (rows in at least one batch; below 1 for
    DCMH, whose steps draw batches independently), loss ``loss_peer`` (B's ``loss``).
    """

    name = "coteaching"
    description = "Co-teaching: two copies of the base exchange small-loss samples per batch (forget-rate ramp)"
    Params = CoTeachingParams
    selects_samples = True

    def setup(self, data: TrainData, rng: Rng) -> None:
        base = self.method
        self.peer = type(base)(bits=base.bits, **base.params)
        self._peer_rng = Rng(rng.seed("strategy", "coteaching", "peer"))
        self.peer.setup(data, self._peer_rng)
        self.probes = None
        if self.p.signal == "probe":
            self.probes = (
                LabelProbe(base, data, rng.torch("strategy", "coteaching", "probe")),
                LabelProbe(self.peer, data, self._peer_rng.torch("strategy", "coteaching", "probe")),
            )

    def ranking(self, view: StepView, which: int) -> torch.Tensor:
        """The per-row loss model ``which`` (0 = A, 1 = B) ranks a batch by (with autograd into a probe)."""
        return view.sample_loss if self.probes is None else self.probes[which].step_losses(view)

    def target_rate(self, epoch: int, data: TrainData, rng: Rng, log: EpochLog) -> float:
        """τ of this epoch (estimated from A's losses, the oracle rate, or the given number)."""
        fr = self.p.forget_rate
        if fr == "oracle":
            return float(self.context.noise_rate or 0.0)
        if not isinstance(fr, str):
            return float(fr)
        if forget_rate_at(epoch, 1.0, self.p.num_gradual, self.p.exponent) == 0.0:
            return 0.0  # the ramp's first epoch forgets nothing whatever τ is: no estimate needed
        with log.timer("sample_loss", data.device):
            signal = self.method.train_sample_losses if self.probes is None else self.probes[0].train_losses
            x = minmax_divide(signal(data))
        with log.timer("gmm"):
            seed = rng.seed("strategy", "coteaching", "estimate", epoch) % (2**32)
            _, info = gmm_clean_posterior(x, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
        log.sample_loss, log.mixture = x, Mixture(**info)
        return noisy_fraction(info)

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        log = EpochLog(epoch)
        target = self.target_rate(epoch, data, rng, log)
        rate = forget_rate_at(epoch, target, self.p.num_gradual, self.p.exponent)
        peer, peer_log = self.peer, EpochLog(epoch)
        peer.begin_epoch(epoch, data, self._peer_rng, peer_log, None)
        trained = torch.zeros(data.n, dtype=torch.bool, device=data.device)
        visited = torch.zeros(data.n, dtype=torch.bool, device=data.device)

        def on_step(view: StepView) -> StepPlan:
            peer_view = peer.forward_step(view.step, data)
            loss_a, loss_b = self.ranking(view, 0), self.ranking(peer_view, 1)
            for_a = small_loss_mask(loss_b, rate)  # B's small-loss rows teach A
            for_b = small_loss_mask(loss_a, rate)
            probe_a = probe_b = None  # a probe trains on the rows its model trains on
            if self.probes is not None:
                probe_a, probe_b = loss_a[for_a].mean(), loss_b[for_b].mean()
            peer.update_step(peer_view, data, StepPlan(keep=for_b, extra=probe_b))
            trained[view.step.idx[for_a]] = True
            visited[view.step.idx] = True
            return StepPlan(keep=for_a, extra=probe_a)

        log = self.method.run_epoch(epoch, data, rng, log=log, on_step=on_step)
        peer.end_epoch(epoch, data, peer_log)
        log.selected = trained.cpu().numpy()
        log.values.update(
            forget_rate=rate, forget_rate_target=target, visited_fraction=float(visited.float().mean().item())
        )
        if "loss" in peer_log.losses:
            log.losses["loss_peer"] = peer_log.losses["loss"]
        return log
