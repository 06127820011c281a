"""DCMH: Deep Cross-Modal Hashing (Jiang & Li, CVPR 2017), feature-based (METHODS.md §6).

The networks take the given features (no CNN is run): the image net is a linear layer on
the fc7 features (``image_head="linear"``, DCMH with the CNN frozen up to fc7) or a
two-layer MLP (``"mlp"``, a trainable fc7 analogue); the text net is
Linear(d_t→8192)–ReLU–Linear(8192→L). Every weight and bias starts at 0.01·N(0,1) and the
outputs are unbounded.

The objective (paper eq. 2) is the negative log-likelihood of the inter-modal similarity
S_ij = 1[ỹ_iᵀỹ_j > 0] (from the *noisy* labels) with θ_ij = ½ f_iᵀ g_j, plus the
quantisation term γ(‖B−F‖² + ‖B−G‖²) and the bit-balance term η(‖F·1‖² + ‖G·1‖²).
Training alternates, per outer iteration ("epoch"), ⌊n/bs⌋ image-net SGD steps, ⌊n/bs⌋
text-net steps and the code update B = sign(F+G), exactly as the official TensorFlow and
PyTorch code does (each step draws the first bs rows of a fresh random permutation; the
likelihood of a step runs over the batch × the whole training set; each step's loss is
divided by n·bs).

Learning-rate schedules (``lr_schedule``), over E = ``epochs`` outer iterations, starting
at ``lr`` (10^-1.5 in every official version):

* ``pytorch`` (default, WendellGul's port): ``linspace(lr, 1e-6, E+1)[e]``, no weight decay;
* ``tf`` (official TensorFlow): ``linspace(lr, 1e-6, E)[e]``, no weight decay;
* ``matlab`` (official MatConvNet): ``logspace(log10 lr, -3, E)[e]`` with weight decay 5e-4
  (the MATLAB code also zero-centres the text; set ``center_text=True`` for that).

Presets:

* ``paper``: the official values (500 outer iterations, text hidden 8192).
* ``fast``: 250 outer iterations (the same schedule shape compressed onto them) and a text
  hidden layer of 1024 with init std 0.0283 = 0.01·√(8192/1024), which keeps the text
  net's width·std² (its tangent-kernel scale, hence its learning speed) equal to the paper
  net's; with std 0.01 a narrow net learns markedly slower (CPU check, synthetic with
  2,000 train rows and 300-word text, 150 iterations: NLL 0.6918 / mAP 0.400, 0.407 at
  width 8192, 0.6893 / 0.405, 0.405 at 1024 with std 0.0283, 0.6930 / 0.361, 0.361 at 1024
  with std 0.01). Why not 40–60 iterations: the
  nets start at the θ ≈ 0 saddle (NLL = log 2) and leave it slowly at the official lr; on
  the default ``synthetic`` set (5,000 train rows, 64 bits, clean labels, seed 0, H200)
  the NLL per pair after E iterations and the final mAP I2T/T2I were: E=100 (width 1024,
  std 0.01) 0.693, 0.371/0.368 (chance 0.341); E=250 (width 8192) 0.652, 0.555/0.538;
  E=500 = ``paper`` 0.601, 0.616/0.613; ``fast`` itself (CPU, 258 s) 0.636, 0.572/0.552.
  ``fast`` is therefore *not* converged (about 0.05 mAP below ``paper`` there); use ``epochs=500`` (or ``paper`` on a GPU) for
  converged numbers. A larger lr is no way out: the balance term's curvature grows with
  bs·‖mean feature‖²/n and large-norm features diverge (NaN) already at lr 0.1.
* ``tiny`` (tests, seconds): 15 iterations of 64-wide nets, batch 8, lr 0.1 and text init
  std 0.1 so that the small nets leave the saddle within seconds on small data.

Input scale (issue 20, measured; docs/METHODS.md §6.9). With the official lr 10^-1.5, batch
128 and the loss divided by n·bs, DCMH's SGD only works in a window of input scales:

* *too small* (wiki as given: SIFT histograms of mean norm 0.18, LDA topics 0.48): a step moves
  the outputs apart by ≈ lr·‖x − x̄‖² (linear image net), 7e-4 (image) and 4e-3 (text) per unit
  gradient on wiki, so the item-specific part of the outputs never grows, θ ≈ 0, NLL = log 2,
  and the codes sit at chance (avg mAP 0.129, chance 0.108, ``fast``, 20 % noise);
* *too large* (wiki × 10³, or 4096-d non-negative features of norm 100 on 1,800 rows): the
  balance term η‖Σ_batch f + rest‖²/(n·bs) has curvature 2η·bs·(‖x̄_batch‖² + 1)/n along the
  mean input direction, so one SGD step maps the column sums u + r to (1 − k)(u + r) with the
  gain k = lr·2η·bs·(‖x̄‖² + 1)/n (:func:`balance_gain`); k > 2 is unstable: k = 47 (wiki × 10³)
  and 11.6 (norm-100 features) overflow within the first outer iteration, then NaN. (The
  PyTorch port's log(1+e^θ) overflows even earlier, at θ > 88.7; our softplus does not.)

Neither is a bug of the recipe: they are the scale the official lr and 0.01·N init were made
for (CNN fc7 features, bag-of-words counts). The benchmark fixes the inputs at the protocol
level (the spec's ``feature_transform``, default ``zscore``, identical for every method,
statistics from the training split): the mean input is 0, so k stays far below 2, and
lr·‖x − x̄‖² = lr·d keeps the outputs moving (wiki, ``fast``, 20 % noise, 3 seeds: avg mAP
0.204). When the loss does become non-finite, the run fails at the end of that outer iteration
naming both gains and the input norms. ``standardize=True`` (z-scores inside the method)
predates the protocol transform and equals ``feature_transform=zscore`` for DCMH; it stays so
that older records resolve.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nrchbench.errors import RunFailed
from nrchbench.methods._common import ImageHead, image_head, mlp, optimizer_step
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, Step, StepPlan, StepView, TrainData, apply_plan
from nrchbench.methods.dcmh_losses import (
    LR_SCHEDULES,
    balance_gain,
    dcmh_balance,
    dcmh_nll,
    dcmh_quantization,
    dcmh_update_codes,
    label_similarity,
    learning_rates,
    sign_pm1,
)
from nrchbench.params import Params
from nrchbench.registry import METHODS

log = logging.getLogger(__name__)

__all__ = [
    "DCMH",
    "LR_SCHEDULES",
    "DCMHParams",
    "balance_gain",
    "dcmh_balance",
    "dcmh_nll",
    "dcmh_quantization",
    "dcmh_update_codes",
    "label_similarity",
    "learning_rates",
    "sign_pm1",
]


# --------------------------------------------------------------------------- networks
@torch.no_grad()
def _init_normal(module: nn.Module, std: float, generator: torch.Generator) -> nn.Module:
    """Every Linear weight and bias ~ N(0, std²) (the official port's init), from ``generator``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std, generator=generator)
            nn.init.normal_(m.bias, 0.0, std, generator=generator)
    return module


def _input_stats(x: torch.Tensor, center: bool, standardize: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(shift, scale) of the input preprocessing fitted on the training features."""
    if standardize:
        std = x.std(0, keepdim=True)
        return x.mean(0, keepdim=True), torch.where(std > 1e-8, std, torch.ones_like(std))
    if center:
        return x.mean(0, keepdim=True), None
    return None, None


def _apply_stats(x: torch.Tensor, shift: torch.Tensor | None, scale: torch.Tensor | None) -> torch.Tensor:
    if shift is not None:
        x = x - shift
    if scale is not None:
        x = x / scale
    return x


# --------------------------------------------------------------------------- method
class DCMHParams(Params):
    """DCMH hyper-parameters; defaults = the official code (METHODS.md §6)."""

    image_head: ImageHead = Field("linear", description="linear (CNN frozen up to fc7) or mlp (trainable fc7 analogue)")
    image_hidden: int = Field(4096, ge=1, description="width of the mlp image head")
    text_hidden: int = Field(8192, ge=1, description="width of the text net's hidden layer")
    epochs: int = Field(500, ge=1, description="outer iterations")
    batch_size: int = Field(128, ge=1)
    gamma: float = Field(1.0, ge=0, description="weight of the quantisation term")
    eta: float = Field(1.0, ge=0, description="weight of the bit-balance term")
    lr: float = Field(10**-1.5, gt=0, description="first learning rate")
    lr_schedule: Literal["pytorch", "matlab", "tf"] = Field("pytorch", description="see the module docstring")
    init_std: float = Field(0.01, gt=0, description="std of the normal init of the image net")
    text_init_std: float = Field(0.01, gt=0, description="std of the normal init of the text net")
    center_text: bool = Field(False, description="subtract the training mean of the text (MATLAB code)")
    standardize: bool = Field(False, description="z-score both modalities with training statistics ([BENCH])")


@METHODS.register("dcmh")
class DCMH(HashingMethod):
    """DCMH (Jiang & Li, CVPR 2017): likelihood of label similarity + quantisation + balance, alternating.

    Hyper-parameters: :class:`DCMHParams`. Per-epoch log: losses ``loss`` (weighted
    objective), ``loss_nll``, ``loss_quant``, ``loss_balance`` (unweighted terms, each the mean
    over the epoch's image and text steps of the step value divided by n·bs), value ``lr``,
    times ``img``, ``txt``, ``b``.

    Strategy capability (``supports_strategies``): an ``image`` step per image-net SGD step
    and a ``text`` step per text-net step; the per-sample loss of a step's anchor i is its
    share of the step objective, (Σ_j NLL_ij + γ‖B_i − f_i‖²)/m, against the epoch's partner
    buffer of m rows; an epoch restricted to kept rows trains DCMH on that subset (anchors,
    partners, S and the balance term); a step restricted to kept anchors drops the others'
    terms (the balance term keeps the whole buffer); label-head codes are the raw outputs
    (the ±1 scale of B); extra parameters join both optimisers.

    Random streams: the official code seeds torch with the run's seed and draws the default
    ``nn.Linear`` init, then the normal init, from it; the F/G buffers and the batch
    permutations come from a second generator seeded with the seed. Both are explicit
    generators here (:meth:`Rng.raw_torch`), with the same draws in the same order.
    """

    name = "dcmh"
    description = "DCMH (CVPR 2017), feature-based: inter-modal likelihood + quantisation + balance"
    Params = DCMHParams
    presets = {
        "paper": {},
        "fast": {"epochs": 250, "text_hidden": 1024, "text_init_std": 0.0283},
        "tiny": {"epochs": 15, "lr": 0.1, "batch_size": 8, "text_hidden": 64, "image_hidden": 64, "text_init_std": 0.1},
    }
    uses_labels = True
    supports_strategies = True

    def setup(self, data: TrainData, rng: Rng) -> None:
        p = self.p
        init = rng.raw_torch()
        img = image_head(p.image_head, data.image.shape[1], p.image_hidden, self.bits, init)
        txt = mlp(data.text.shape[1], p.text_hidden, self.bits, 2, init)
        self.img_net = _init_normal(img, p.init_std, init).to(data.device)
        self.txt_net = _init_normal(txt, p.text_init_std, init).to(data.device)

        image, text = data.image.float(), data.text.float()
        self.image_shift_, self.image_scale_ = _input_stats(image, False, p.standardize)
        self.text_shift_, self.text_scale_ = _input_stats(text, p.center_text, p.standardize)
        self._image = _apply_stats(image, self.image_shift_, self.image_scale_)
        self._text = _apply_stats(text, self.text_shift_, self.text_scale_)
        self._labels = data.labels.float()

        # F, G buffers ~ N(0,1) from the seed (drawn on the CPU so every device starts alike).
        self._gen = rng.raw_torch()
        n = data.n
        self._f_buf = torch.randn(n, self.bits, generator=self._gen).to(data.device)
        self._g_buf = torch.randn(n, self.bits, generator=self._gen).to(data.device)
        self.codes_ = dcmh_update_codes(self._f_buf, self._g_buf)

        wd = 5e-4 if p.lr_schedule == "matlab" else 0.0
        self._lrs = learning_rates(p.lr_schedule, p.lr, p.epochs)
        self._opt_img = torch.optim.SGD(self.img_net.parameters(), lr=float(self._lrs[0]), weight_decay=wd)
        self._opt_txt = torch.optim.SGD(self.txt_net.parameters(), lr=float(self._lrs[0]), weight_decay=wd)
        self._bs = min(p.batch_size, n)
        self.balance_gains_ = {
            m: balance_gain(net, x[: self._bs], float(self._lrs[0]), p.eta, n)
            for m, net, x in (("image", self.img_net, self._image), ("text", self.txt_net, self._text))
        }
        log.info("dcmh balance-term step gains at init (stable < 2): %s", self.balance_gains_)

    # ------------------------------------------------------------------ the epoch as steps
    # One outer iteration (METHODS.md §6.3): ⌊m/bs⌋ image-net steps, ⌊m/bs⌋ text-net steps,
    # then B = sign(F+G), over the epoch's rows (m = n without a strategy's selection).
    def _part(self, part: str) -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(net, optimiser, inputs, own buffer, other modality's buffer) of a step's part."""
        if part == "image":
            return self.img_net, self._opt_img, self._image, self._f_buf, self._g_buf
        return self.txt_net, self._opt_txt, self._text, self._g_buf, self._f_buf

    def begin_epoch(
        self, epoch: int, data: TrainData, rng: Rng, log: EpochLog, keep: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The epoch's learning rate, train mode, and the epoch's rows: with ``keep``, anchors,
        partners (the buffers' rows), S and the balance term are all restricted to the kept
        rows — DCMH trained on the kept subset (as the clean-label oracle trains on D_clean)."""
        self._lr = float(self._lrs[epoch])
        for opt in (self._opt_img, self._opt_txt):
            for group in opt.param_groups:
                group["lr"] = self._lr
        self.img_net.train()
        self.txt_net.train()
        if keep is None or np.asarray(keep, dtype=bool).all():
            self._rows = None
        else:
            self._rows = torch.from_numpy(np.flatnonzero(np.asarray(keep, dtype=bool))).to(data.device)
        self._totals = torch.zeros(3, device=data.device)
        self._steps = 0
        return keep

    def _m(self, n: int) -> int:
        return n if self._rows is None else int(self._rows.numel())

    def epoch_steps(self, epoch: int, data: TrainData, keep: np.ndarray | None) -> Iterator[Step]:
        """⌊m/bs⌋ image steps then ⌊m/bs⌋ text steps; each draws the first bs rows of a fresh
        permutation of the epoch's m rows from the method's generator (as the official code)."""
        m = self._m(data.n)
        bs = min(self._bs, m)
        for part, phase in (("image", "img"), ("text", "txt")):
            for _ in range(m // bs if bs else 0):
                perm = torch.randperm(m, generator=self._gen)[:bs].to(data.device)
                yield Step(part, perm if self._rows is None else self._rows[perm], phase)

    def _partners(self, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the other modality's buffer, the labels) over the epoch's rows."""
        if self._rows is None:
            return other, self._labels
        return other[self._rows], self._labels[self._rows]

    def forward_step(self, step: Step, data: TrainData) -> StepView:
        net, _, x, _, other = self._part(step.part)
        other, labels = self._partners(other)
        s = label_similarity(self._labels[step.idx], labels)
        out = net(x[step.idx])
        m = float(other.shape[0])

        def sample_loss() -> torch.Tensor:
            # The anchor's share of the step objective: (Σ_j NLL_ij + γ‖B_i − f_i‖²) / m.
            theta = 0.5 * (out @ other.T)
            nll = (F.softplus(theta) - s * theta).sum(1)
            return (nll + self.p.gamma * (self.codes_[step.idx] - out).pow(2).sum(1)) / m

        return StepView(
            step, {"out": out, "s": s, "other": other}, codes=lambda: {step.part: out}, sample_loss=sample_loss
        )

    def update_step(self, view: StepView, data: TrainData, plan: StepPlan | None = None) -> None:
        _, opt, _, own, _ = self._part(view.step.part)
        other = view.state["other"]
        (out, s, idx), weights, extra = apply_plan(plan, view.state["out"], view.state["s"], view.step.idx)
        if idx.numel() == 0:
            return
        norm = float(other.shape[0] * idx.numel())
        gamma, eta = self.p.gamma, self.p.eta
        if weights is None:
            nll = dcmh_nll(out, other, s)
            quant = dcmh_quantization(self.codes_[idx], out)
        else:
            theta = 0.5 * (out @ other.T)
            nll = (weights * (F.softplus(theta) - s * theta).sum(1)).sum()
            quant = (weights * (self.codes_[idx] - out).pow(2).sum(1)).sum()
        if self._rows is None:
            bal = dcmh_balance(out, own, idx)
        else:
            bal = (out.sum(0) + own[self._rows].sum(0) - own[idx].sum(0)).pow(2).sum()
        loss = (nll + gamma * quant + eta * bal) / norm
        if extra is not None:
            loss = loss + extra
        optimizer_step(loss, opt)
        own[idx] = out.detach()
        self._totals += torch.stack([nll.detach(), quant.detach(), bal.detach()]) / norm
        self._steps += 1

    def end_epoch(self, epoch: int, data: TrainData, log: EpochLog) -> None:
        with log.timer("b", data.device):
            self.codes_ = dcmh_update_codes(self._f_buf, self._g_buf)
        nll, quant, bal = (self._totals / max(self._steps, 1)).tolist()
        if not all(math.isfinite(v) for v in (nll, quant, bal)):
            g = self.balance_gains_
            raise RunFailed(
                f"dcmh diverged in outer iteration {epoch} (nll={nll:.3g}, quant={quant:.3g}, balance={bal:.3g}); "
                f"balance-term step gain at init image {g['image']:.3g}, text {g['text']:.3g} (stable < 2), mean input "
                f"norms image {float(self._image.norm(dim=1).mean()):.3g}, text {float(self._text.norm(dim=1).mean()):.3g}: "
                "normalise the inputs (--feature-transform zscore) or lower 'lr'"
            )
        log.losses.update(
            loss=nll + self.p.gamma * quant + self.p.eta * bal, loss_nll=nll, loss_quant=quant, loss_balance=bal
        )
        log.values["lr"] = self._lr

    @torch.no_grad()
    def train_sample_losses(self, data: TrainData) -> np.ndarray:
        """ℓ_i = ½[mean_j ℓ(F_i, G_j) + mean_j ℓ(F_j, G_i)], ℓ(a, b) = softplus(Θ) − S_ij·Θ,
        Θ = ½aᵀb, with fresh outputs F, G of every training row (PEERS.md §6.0)."""
        f = self.encode("image", data.image)
        g = self.encode("text", data.text)
        n = data.n
        chunk = max(1, 2**22 // max(n, 1))
        rows_mean, cols_sum = [], torch.zeros(n, dtype=f.dtype, device=f.device)
        for start in range(0, n, chunk):  # ℓ_ij over image rows i × text columns j, once
            rows = slice(start, min(start + chunk, n))
            theta = 0.5 * (f[rows] @ g.T)
            ell = F.softplus(theta) - label_similarity(self._labels[rows], self._labels) * theta
            rows_mean.append(ell.mean(1))
            cols_sum += ell.sum(0)  # S is symmetric: column i holds ℓ(F_j, G_i)
        losses = (0.5 * (torch.cat(rows_mean) + cols_sum / n)).double().cpu().numpy() if n else np.zeros(0)
        if not np.isfinite(losses).all():
            raise RunFailed(f"NaN in {self.name} per-sample training loss; lower 'lr' or check the input features")
        return losses

    @torch.no_grad()
    def train_codes(self, data: TrainData) -> dict[str, torch.Tensor]:
        return {"image": self.encode("image", data.image), "text": self.encode("text", data.text)}

    def add_parameters(self, params: Iterable[nn.Parameter]) -> None:
        """Extra parameters join both optimisers (plain SGD, the epoch's lr): image steps update
        them with the image part's gradients, text steps with the text part's."""
        params = list(params)
        self._opt_img.add_param_group({"params": params})
        self._opt_txt.add_param_group({"params": params})

    # ------------------------------------------------------------------ encode
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.img_net.eval()
        return self.img_net(_apply_stats(x.float(), self.image_shift_, self.image_scale_))

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        self.txt_net.eval()
        return self.txt_net(_apply_stats(x.float(), self.text_shift_, self.text_scale_))
