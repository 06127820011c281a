"""NRCH (Wang et al., ACM MM 2024) and two ablations, as the official code computes them.

References are to ``../shared/docs/METHODS.md`` §4–5. The defaults are the official code's
recipe (github.com/LonganWANG-cs/NRCH @ b190e97); every place where the code departs from
what the paper describes is a named switch whose default is the code's behaviour:

* ``theta_schedule``: ``const`` (code: θ = 0.3 from the DNS start on) | ``linear`` (the
  paper's dynamic threshold: θ_t = θ·t/(epochs−1), still 0 before ``dns_start_epoch``);
* ``rch_bidirectional``: False (code: L_r = 2·ℓ_i2t) | True (ℓ_i2t + the intended
  column-wise ℓ_t2i with its own hard-negative mask relative to S_jj);
* ``rch_mask``: ``zero`` (code: label-sharing pairs get logit 0) | ``exclude`` (logit −∞);
* ``dns_start_epoch``: first epoch index at which the selection applies (code: 19).

Model: image MLP (``image_layers`` Linear layers) and text MLP (``text_layers``), each with
``hidden`` units, ReLU, then tanh and row L2-normalisation; a prototype matrix W ∈ R^{C×L}
(orthogonal init, used as tanh(W), optimised by the image optimiser, trained only by the
detached prototype loss). Each epoch starts with the Dynamic Noise Separator: the per-sample
loss of every training row, min–max normalised, a seeded 2-component GMM, p_clean = the
posterior of the lower-mean component, selection = p_clean ≥ θ. Batches are then restricted
to the selected rows. Model selection: none (the last epoch's networks encode).

Numerical notes (no effect beyond rounding): the row normalisation divides by
max(‖x‖, 1e-12) instead of ‖x‖, and the contrastive log-sum-exp uses ``torch.logsumexp``
instead of ``exp().sum().log()``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from nrchbench.errors import RunFailed
from nrchbench.methods._common import HashHead, LossMeans, hash_heads, iter_batches, optimizer_step
from nrchbench.methods.base import (
    EpochLog,
    HashingMethod,
    Mixture,
    Rng,
    Step,
    StepPlan,
    StepView,
    TrainData,
    apply_plan,
)
from nrchbench.methods.nrch_losses import (
    gmm_clean_posterior,
    minmax_normalise,
    nrch_batch_loss,
    nrch_sample_loss,
    per_sample_loss,
    prototype_loss,
    prototype_sample_loss,
    quantization_loss,
    rch_loss,
    rch_loss_against_all,
    theta_at,
)
from nrchbench.params import Params
from nrchbench.registry import METHODS

log = logging.getLogger(__name__)

__all__ = [
    "NRCH",
    "NRCHNoDNS",
    "NRCHNoGMM",
    "gmm_clean_posterior",
    "minmax_normalise",
    "nrch_batch_loss",
    "nrch_sample_loss",
    "per_sample_loss",
    "prototype_loss",
    "prototype_sample_loss",
    "quantization_loss",
    "rch_loss",
    "rch_loss_against_all",
    "theta_at",
]

# Rows per chunk of the per-sample-loss pass (memory only; results do not depend on it).
DNS_CHUNK = 4096
# Entries (anchor rows × partners) per chunk of the all-partners pass of train_sample_losses.
PAIR_CHUNK = 2**22


# The hash net (MLP → tanh → row L2), kept under its old name for code that imported it.
_HashHead = HashHead


# ============================================================================ methods
class _NRCHCoreParams(Params):
    """Parameters every NRCH variant shares (defaults = the official code, METHODS.md §4.6)."""

    hidden: int = Field(8192, ge=1, description="units of every hidden layer")
    image_layers: int = Field(3, ge=1, description="Linear layers of the image net")
    text_layers: int = Field(2, ge=1, description="Linear layers of the text net")
    lam: float = Field(0.6, ge=0, le=1, description="λ: weight of L_r against L_q (the code's --Lambda)")
    margin: float = Field(0.2, description="m of the RCH hard-negative mask")
    shift: float = Field(1.0, description="ξ subtracted from easy negatives")
    tau: float = Field(1.0, gt=0, description="temperature τ")
    lr: float = Field(1e-5, gt=0, description="RMSprop learning rate")
    weight_decay: float = Field(1e-5, ge=0, description="RMSprop weight decay")
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(100, ge=1)
    rch_bidirectional: bool = Field(False, description="False: L_r = 2·ℓ_i2t (code); True: ℓ_i2t + ℓ_t2i")
    rch_mask: Literal["zero", "exclude"] = Field("zero", description="label-sharing pairs: logit 0 (code) or −∞")


class NRCHParams(_NRCHCoreParams):
    dns_start_epoch: int = Field(19, ge=0, description="first epoch index at which the selection applies")
    theta: float = Field(0.3, ge=0, le=1, description="θ: keep rows with p_clean ≥ θ")
    theta_schedule: Literal["const", "linear"] = Field("const", description="const (code) or linear (paper)")
    gmm_max_iter: int = Field(10, ge=1)
    gmm_tol: float = Field(0.5, gt=0)
    gmm_reg_covar: float = Field(5e-4, ge=0)


class NRCHNoGMMParams(_NRCHCoreParams):
    dns_start_epoch: int = Field(19, ge=0, description="first epoch index at which the selection applies")
    loss_threshold: float = Field(0.5, ge=0, le=1, description="keep rows whose min–max normalised loss ≤ this")


# CPU-friendly: 1,024-unit layers (≈1/60 of the paper's multiply-adds per sample), 40
# epochs with the DNS start scaled from 19/100 to 8/40, and lr 1e-4: narrower layers need a
# larger step than 1e-5 to converge in 40 epochs. Chosen on synthetic data only (never on a
# real dataset): at 50% nrch noise, 64 bits, lr 5e-5 under-trains (mAP .578 vs .595 at 1e-4),
# 2e-4 is on par, and 3e-4 collapsed the codes of a toy set, so 1e-4 keeps a margin. A full
# run on ``synthetic`` (5,000 train rows) takes about 30 s on 2 idle cores (55 s on 1).
_FAST: dict[str, Any] = {"hidden": 1024, "epochs": 40, "dns_start_epoch": 8, "lr": 1e-4}
# Seconds, for tests: the behaviour (warm-up, then selection) in 4 epochs.
_TINY: dict[str, Any] = {"hidden": 64, "epochs": 4, "dns_start_epoch": 2, "lr": 1e-3, "batch_size": 64}


def _presets_for(params: type[Params]) -> dict[str, dict[str, Any]]:
    names = set(params.model_fields)
    return {
        "paper": {},
        "fast": {k: v for k, v in _FAST.items() if k in names},
        "tiny": {k: v for k, v in _TINY.items() if k in names},
    }


@METHODS.register("nrch")
class NRCH(HashingMethod):
    """NRCH: robust contrastive hashing with a GMM noise separator (official recipe).

    Parameters: see :class:`NRCHParams` (defaults = the official code, METHODS.md §4.6) and
    the module docstring for the switches.

    Presets: ``paper`` = the defaults; ``fast`` = hidden 1024, 40 epochs, DNS from epoch 8,
    lr 1e-4 (CPU-friendly, same behaviour); ``tiny`` = hidden 64, 4 epochs, DNS from epoch 2,
    lr 1e-3, batch 64 (tests).

    Per-epoch log: losses ``loss``, ``loss_rch``, ``loss_q``, ``loss_w`` (means over the
    trained batches; absent in an epoch where no row is selected), times ``train``,
    ``dns_loss``, ``gmm``, value ``theta``, and ``selected``, ``sample_loss`` (min–max
    normalised) and ``mixture``.

    Strategy capability (``supports_strategies``): one ``joint`` step per batch (both nets
    and W); the per-sample loss is λL_r(i) + (1−λ)L_q(i) + L_W(i) (in-batch partners in a
    step, every training row in :meth:`train_sample_losses`); a step restricted to kept rows
    computes the whole loss on the kept sub-batch (both ends of every pair kept, as the DNS
    does); the codes a label head sees are √L·h and √L·g (unit-norm outputs rescaled so that
    a binary output is ±1); extra parameters join the image optimiser (like W). The method's
    own DNS runs in ``begin_epoch``, so selecting strategies are refused on ``nrch`` and
    ``nrch-nogmm`` (``selects_samples``) and take ``nrch-nodns`` as their base.
    """

    name = "nrch"
    description = "NRCH (ACM MM 2024): robust contrastive hashing + GMM noise separator, official recipe"
    Params = NRCHParams
    presets = _presets_for(NRCHParams)
    uses_labels = True
    selects_samples = True
    supports_strategies = True
    LOSS_KEYS: ClassVar[tuple[str, ...]] = ("loss", "loss_rch", "loss_q", "loss_w")

    # ---------------------------------------------------------------- training
    def setup(self, data: TrainData, rng: Rng) -> None:
        p = self.p
        gen = rng.torch("init")
        img, txt = hash_heads(
            data.image.shape[1], data.text.shape[1], p.hidden, self.bits, p.image_layers, p.text_layers, gen
        )
        W = torch.empty(data.num_classes, self.bits)
        nn.init.orthogonal_(W, gain=1.0, generator=gen)
        self.img_net = img.to(data.device)
        self.txt_net = txt.to(data.device)
        self.W = nn.Parameter(W.to(data.device))
        self._opt_img = torch.optim.RMSprop([*self.img_net.parameters(), self.W], lr=p.lr, weight_decay=p.weight_decay)
        self._opt_txt = torch.optim.RMSprop(self.txt_net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        self._batch_gen = rng.torch("batches")
        self._pd = self.params

    @torch.no_grad()
    def sample_losses(self, data: TrainData) -> np.ndarray:
        """ℓ_i for every training row with the current networks (batched, no autograd)."""
        labels = data.labels.to(torch.float32)
        out = []
        for s in range(0, data.n, DNS_CHUNK):
            h = self.img_net(data.image[s : s + DNS_CHUNK].to(torch.float32))
            g = self.txt_net(data.text[s : s + DNS_CHUNK].to(torch.float32))
            out.append(per_sample_loss(h, g, self.W, labels[s : s + DNS_CHUNK]))
        losses = torch.cat(out).double().cpu().numpy() if out else np.zeros(0)
        if not np.isfinite(losses).all():
            raise RunFailed(f"NaN in {self.name} per-sample loss; lower 'lr' or check the input features")
        return losses

    def select(self, epoch: int, data: TrainData, rng: Rng, log: EpochLog) -> np.ndarray | None:
        """The Dynamic Noise Separator of one epoch: a bool mask over training rows (None = all)."""
        p = self.p
        with log.timer("dns_loss"):
            norm = minmax_normalise(self.sample_losses(data))
        with log.timer("gmm"):
            p_clean, info = gmm_clean_posterior(
                norm,
                max_iter=p.gmm_max_iter,
                tol=p.gmm_tol,
                reg_covar=p.gmm_reg_covar,
                random_state=rng.seed("gmm", epoch) % (2**32),
            )
            theta = theta_at(epoch, self._pd)
            selected = p_clean >= theta
        log.values["theta"] = theta
        log.selected, log.sample_loss, log.mixture = selected, norm, Mixture(**info)
        return selected

    # ---------------------------------------------------------------- epoch as steps
    def begin_epoch(
        self, epoch: int, data: TrainData, rng: Rng, log: EpochLog, keep: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The DNS of the epoch (:meth:`select`), intersected with a strategy's ``keep``."""
        selected = self.select(epoch, data, rng, log)
        if keep is not None:
            selected = np.asarray(keep, dtype=bool) if selected is None else selected & np.asarray(keep, dtype=bool)
            if log.selected is not None:
                log.selected = selected
        self._means = LossMeans(self.LOSS_KEYS, data.device)
        return selected

    def epoch_steps(self, epoch: int, data: TrainData, keep: np.ndarray | None) -> Iterator[Step]:
        """One ``joint`` step per batch of a seeded permutation, restricted to the kept rows
        (empty batches are skipped)."""
        kept = None if keep is None or keep.all() else torch.from_numpy(np.asarray(keep, dtype=bool)).to(data.device)
        for idx in iter_batches(data.n, self.p.batch_size, self._batch_gen, data.device):
            if kept is not None:
                idx = idx[kept[idx]]
                if idx.numel() == 0:
                    continue
            yield Step("joint", idx)

    def forward_step(self, step: Step, data: TrainData) -> StepView:
        h = self.img_net(data.image[step.idx].to(torch.float32))
        g = self.txt_net(data.text[step.idx].to(torch.float32))
        y = data.labels[step.idx].to(torch.float32)
        scale = math.sqrt(self.bits)
        return StepView(
            step,
            {"h": h, "g": g, "y": y},
            codes=lambda: {"image": h * scale, "text": g * scale},
            sample_loss=lambda: nrch_sample_loss(h, g, self.W, y, self._pd),
        )

    def update_step(self, view: StepView, data: TrainData, plan: StepPlan | None = None) -> None:
        (h, g, y), weights, extra = apply_plan(plan, view.state["h"], view.state["g"], view.state["y"])
        if h.shape[0] == 0:
            return
        terms = nrch_batch_loss(h, g, self.W, y, self._pd, weights)
        loss = terms["loss"] if extra is None else terms["loss"] + extra
        optimizer_step(loss, self._opt_img, self._opt_txt)
        self._means.add(terms)

    def end_epoch(self, epoch: int, data: TrainData, log: EpochLog) -> None:
        log.losses.update(self._means.means())

    @torch.no_grad()
    def train_sample_losses(self, data: TrainData) -> np.ndarray:
        """λL_r(i) + (1−λ)L_q(i) + L_W(i) of every training row, every row a contrastive partner."""
        labels = data.labels.to(torch.float32)
        h, g = self.encode("image", data.image), self.encode("text", data.text)
        u, v = h.tanh(), g.tanh()
        lam = self._pd["lam"]
        chunk = max(1, PAIR_CHUNK // max(data.n, 1))
        out = []
        for s in range(0, data.n, chunk):
            rows = torch.arange(s, min(s + chunk, data.n), device=h.device)
            lr = rch_loss_against_all(u, v, labels, rows, self._pd)
            lq = quantization_loss(u[rows], v[rows])
            out.append(lam * lr + (1.0 - lam) * lq + prototype_sample_loss(h[rows], g[rows], self.W, labels[rows]))
        losses = torch.cat(out).double().cpu().numpy() if out else np.zeros(0)
        if not np.isfinite(losses).all():
            raise RunFailed(f"NaN in {self.name} per-sample training loss; lower 'lr' or check the input features")
        return losses

    @torch.no_grad()
    def train_codes(self, data: TrainData) -> dict[str, torch.Tensor]:
        scale = math.sqrt(self.bits)
        return {"image": self.encode("image", data.image) * scale, "text": self.encode("text", data.text) * scale}

    def add_parameters(self, params: Iterable[nn.Parameter]) -> None:
        """Extra parameters join the image optimiser (RMSprop, the method's lr and weight decay), like W."""
        self._opt_img.add_param_group({"params": list(params)})

    # ---------------------------------------------------------------- inference
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.img_net(x.to(torch.float32))

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return self.txt_net(x.to(torch.float32))


@METHODS.register("nrch-nogmm")
class NRCHNoGMM(NRCH):
    """NRCH with the GMM replaced by a fixed threshold on the normalised per-sample loss.

    Rule (METHODS.md §5.2(b)): from ``dns_start_epoch`` on, keep the rows with
    ℓ̂_i ≤ ``loss_threshold`` (0.5), where ℓ̂ is the same min–max normalised per-sample loss
    the GMM sees, recomputed every epoch; before that every row is kept. It needs no noise
    rate (no oracle) and fits nothing, so comparing with ``nrch`` isolates what the GMM's
    adaptive split adds. ℓ̂ ≤ 0.5 means "closer to the best-fitting row than to the worst",
    the natural non-model analogue of "p_clean ≥ 0.3". Its known weakness is that one
    extreme loss stretches the min–max range and makes the rule keep almost everything.

    All other parameters, presets and logs as :class:`NRCH` (no ``theta``/``gmm_*``
    parameters, no ``gmm`` time, mixture or ``theta``).
    """

    name = "nrch-nogmm"
    description = "NRCH ablation: GMM replaced by a fixed threshold (0.5) on the min–max normalised loss"
    Params = NRCHNoGMMParams
    presets = _presets_for(NRCHNoGMMParams)

    def select(self, epoch: int, data: TrainData, rng: Rng, log: EpochLog) -> np.ndarray | None:
        with log.timer("dns_loss"):
            norm = minmax_normalise(self.sample_losses(data))
            if epoch >= self.p.dns_start_epoch:
                selected = norm <= self.p.loss_threshold
            else:
                selected = np.ones(norm.shape[0], dtype=bool)
        log.selected, log.sample_loss = selected, norm
        return selected


@METHODS.register("nrch-nodns")
class NRCHNoDNS(NRCH):
    """NRCH without the noise separator: every row trains every epoch (METHODS.md §5.1).

    The per-sample-loss pass and the GMM are skipped entirely. The prototype loss L_W is
    **kept**: it cannot change the hash networks (h and g are detached in it), it costs a
    C×L product per batch, and keeping it makes ``loss`` comparable with ``nrch`` and the
    training bit-identical to ``nrch`` with a DNS start after the last epoch. Logs the loss
    terms and the ``train`` time only; nothing about selection.
    """

    name = "nrch-nodns"
    description = "NRCH ablation: no noise separator (every sample trains every epoch)"
    Params = _NRCHCoreParams
    presets = _presets_for(_NRCHCoreParams)
    selects_samples = False

    def select(self, epoch: int, data: TrainData, rng: Rng, log: EpochLog) -> np.ndarray | None:
        return None
