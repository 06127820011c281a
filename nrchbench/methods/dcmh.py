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

Known limitation: with low-norm inputs (wiki: SIFT histograms of norm ≈ 0.18, LDA topics ≈
0.47) the official init and lr leave the nets at the saddle for all 500 iterations (mAP
0.159/0.126 vs chance 0.108 at ``paper``); this is faithful to the recipe, not a bug.
``standardize=True`` (z-scored inputs, a [BENCH] option) makes it learn there: ``fast``,
seed 0, 64 bits, CPU: 0.239/0.196 with clean labels, 0.181/0.150 at 50 % ``nrch`` noise.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nrchbench.errors import ConfigError
from nrchbench.methods._common import ImageHead, image_head, mlp
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.params import Params
from nrchbench.registry import METHODS

log = logging.getLogger(__name__)

LR_SCHEDULES = ("pytorch", "matlab", "tf")


# --------------------------------------------------------------------------- pure terms
def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """sign with 0 → +1 (values in {−1,+1}, same dtype as ``x``)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def label_similarity(batch_labels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """S (bs×n, float {0,1}): 1 where two rows share at least one label."""
    return (batch_labels @ labels.T > 0).to(batch_labels.dtype)


def dcmh_nll(f: torch.Tensor, other: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the inter-modal similarity (unnormalised sum).

    Args:
        f: bs×L outputs of the modality being trained.
        other: n×L buffer of the other modality's outputs.
        s: bs×n similarity in {0,1}.

    Returns:
        −Σ_ij (S_ij θ_ij − log(1+e^θ_ij)) with θ_ij = ½ f_iᵀ other_j (softplus, overflow-safe).
    """
    theta = 0.5 * (f @ other.T)
    return (F.softplus(theta) - s * theta).sum()


def dcmh_quantization(b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """‖B_batch − f‖_F² for the batch's rows of the code matrix."""
    return (b - f).pow(2).sum()


def dcmh_balance(f: torch.Tensor, buffer: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """‖Σ_{i∈batch} f_i + Σ_{j∉batch} buffer_j‖² (the η term with the buffer of §6.3).

    Args:
        f: bs×L fresh outputs of the batch rows ``index``.
        buffer: n×L buffer of the same modality (its batch rows are replaced by ``f``).
        index: bs distinct row indices.
    """
    rest = buffer.sum(0) - buffer[index].sum(0)
    return (f.sum(0) + rest).pow(2).sum()


def dcmh_update_codes(f_buffer: torch.Tensor, g_buffer: torch.Tensor) -> torch.Tensor:
    """B = sign(γ(F+G)) = sign(F+G), with 0 → +1."""
    return sign_pm1(f_buffer + g_buffer)


def learning_rates(schedule: str, lr: float, epochs: int) -> np.ndarray:
    """Per-outer-iteration learning rates of a named schedule (length ``epochs``)."""
    if schedule == "pytorch":
        return np.linspace(lr, 1e-6, epochs + 1)[:epochs]
    if schedule == "tf":
        return np.linspace(lr, 1e-6, max(epochs, 1))[:epochs]
    if schedule == "matlab":
        return np.logspace(math.log10(lr), -3, max(epochs, 1))[:epochs]
    raise ConfigError(f"dcmh parameter 'lr_schedule': expected one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")


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

    def _half_epoch(self, net: nn.Module, opt: torch.optim.Optimizer, x, own, other, totals) -> None:
        """⌊n/bs⌋ SGD steps of one modality's net against the other modality's buffer."""
        n, bs = own.shape[0], self._bs
        norm = float(n * bs)
        gamma, eta = self.p.gamma, self.p.eta
        for _ in range(n // bs):
            idx = torch.randperm(n, generator=self._gen)[:bs].to(own.device)
            s = label_similarity(self._labels[idx], self._labels)
            out = net(x[idx])
            nll = dcmh_nll(out, other, s)
            quant = dcmh_quantization(self.codes_[idx], out)
            bal = dcmh_balance(out, own, idx)
            loss = (nll + gamma * quant + eta * bal) / norm
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            own[idx] = out.detach()
            totals += torch.stack([nll.detach(), quant.detach(), bal.detach()]) / norm

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        """One outer iteration: image-net steps, text-net steps, then B = sign(F+G) (METHODS.md §6.3)."""
        log = EpochLog(epoch)
        lr = float(self._lrs[epoch])
        for opt in (self._opt_img, self._opt_txt):
            for group in opt.param_groups:
                group["lr"] = lr
        totals = torch.zeros(3, device=data.device)
        self.img_net.train()
        self.txt_net.train()
        with log.timer("img", data.device):
            self._half_epoch(self.img_net, self._opt_img, self._image, self._f_buf, self._g_buf, totals)
        with log.timer("txt", data.device):
            self._half_epoch(self.txt_net, self._opt_txt, self._text, self._g_buf, self._f_buf, totals)
        with log.timer("b", data.device):
            self.codes_ = dcmh_update_codes(self._f_buf, self._g_buf)
        nll, quant, bal = (totals / max(2 * (data.n // self._bs), 1)).tolist()
        log.losses.update(
            loss=nll + self.p.gamma * quant + self.p.eta * bal, loss_nll=nll, loss_quant=quant, loss_balance=bal
        )
        log.values["lr"] = lr
        return log

    # ------------------------------------------------------------------ encode
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.img_net.eval()
        return self.img_net(_apply_stats(x.float(), self.image_shift_, self.image_scale_))

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        self.txt_net.eval()
        return self.txt_net(_apply_stats(x.float(), self.text_shift_, self.text_scale_))
