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
import time
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nrchbench.errors import ConfigError
from nrchbench.methods._common import IMAGE_HEADS, check_choice, check_positive_ints, image_head, sync, two_layer_mlp
from nrchbench.methods.base import EpochCallback, HashingMethod, TrainView
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
def _init_normal(module: nn.Module, std: float) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.normal_(m.bias, 0.0, std)
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
@METHODS.register("dcmh")
class DCMH(HashingMethod):
    """DCMH (Jiang & Li, CVPR 2017): likelihood of label similarity + quantisation + balance, alternating.

    Hyper-parameters (``defaults``): ``image_head`` (``linear`` | ``mlp``), ``image_hidden``
    (mlp width), ``text_hidden``, ``epochs`` (outer iterations), ``batch_size``, ``gamma``,
    ``eta``, ``lr`` (first learning rate), ``lr_schedule`` (``pytorch`` | ``matlab`` | ``tf``),
    ``init_std`` / ``text_init_std`` (std of the normal init of all weights and biases of the
    image / text net), ``center_text`` (subtract the training mean of the text features, as
    the MATLAB code does), ``standardize`` (z-score every input dimension of both modalities
    with the training mean and std; a [BENCH] option, off by default, for low-norm features
    such as wiki's, where the official init and lr never leave the saddle).

    Per-epoch logs: ``loss`` (weighted objective), ``loss_nll``, ``loss_quant``,
    ``loss_balance`` (unweighted terms, each the mean over the epoch's image and text
    steps of the step value divided by n·bs), ``lr``, ``time_img``, ``time_txt``, ``time_b``.
    """

    name: ClassVar[str] = "dcmh"
    description: ClassVar[str] = "DCMH (CVPR 2017), feature-based: inter-modal likelihood + quantisation + balance"
    uses_labels: ClassVar[bool] = True
    selects_samples: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {
        "image_head": "linear",
        "image_hidden": 4096,
        "text_hidden": 8192,
        "epochs": 500,
        "batch_size": 128,
        "gamma": 1.0,
        "eta": 1.0,
        "lr": 10**-1.5,
        "lr_schedule": "pytorch",
        "init_std": 0.01,
        "text_init_std": 0.01,
        "center_text": False,
        "standardize": False,
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "fast": {"epochs": 250, "text_hidden": 1024, "text_init_std": 0.0283},
        "tiny": {
            "epochs": 15,
            "lr": 0.1,
            "batch_size": 8,
            "text_hidden": 64,
            "image_hidden": 64,
            "text_init_std": 0.1,
        },
    }

    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """Per-dataset overrides of ``defaults`` (none: DCMH uses the same values everywhere).

        The runner merges these *below* the preset and the user's overrides:
        defaults ← dataset_params(name) ← preset ← overrides.
        """
        return {}

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        p = self.params
        check_choice("dcmh", "image_head", p["image_head"], IMAGE_HEADS)
        check_choice("dcmh", "lr_schedule", p["lr_schedule"], LR_SCHEDULES)
        check_positive_ints("dcmh", p, ("epochs", "batch_size", "text_hidden", "image_hidden"))

    def _build(self, d_img: int, d_txt: int) -> tuple[nn.Module, nn.Module]:
        p = self.params
        img = image_head(p["image_head"], d_img, int(p["image_hidden"]), self.bits)
        txt = two_layer_mlp(d_txt, int(p["text_hidden"]), self.bits)
        return _init_normal(img, float(p["init_std"])), _init_normal(txt, float(p["text_init_std"]))

    def fit(self, view: TrainView, *, seed: int, callback: EpochCallback | None = None) -> None:
        """Alternating training of the image net, the text net and B (METHODS.md §6.3)."""
        self._check_params()
        p = self.params
        device = view.device
        n, bits = view.n, self.bits
        bs = min(int(p["batch_size"]), n)
        gamma, eta = float(p["gamma"]), float(p["eta"])
        epochs = int(p["epochs"])

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        img_net, txt_net = self._build(view.image.shape[1], view.text.shape[1])
        self.img_net, self.txt_net = img_net.to(device), txt_net.to(device)

        image = view.image.float()
        text = view.text.float()
        self.image_shift_, self.image_scale_ = _input_stats(image, False, p["standardize"])
        self.text_shift_, self.text_scale_ = _input_stats(text, p["center_text"], p["standardize"])
        image = _apply_stats(image, self.image_shift_, self.image_scale_)
        text = _apply_stats(text, self.text_shift_, self.text_scale_)
        labels = view.labels.float()

        # F, G buffers ~ N(0,1) from the seed (drawn on the CPU so every device starts alike).
        f_buf = torch.randn(n, bits, generator=gen).to(device)
        g_buf = torch.randn(n, bits, generator=gen).to(device)
        codes = dcmh_update_codes(f_buf, g_buf)

        wd = 5e-4 if p["lr_schedule"] == "matlab" else 0.0
        lrs = learning_rates(p["lr_schedule"], float(p["lr"]), epochs)
        opt_img = torch.optim.SGD(self.img_net.parameters(), lr=float(lrs[0]) if epochs else 0.0, weight_decay=wd)
        opt_txt = torch.optim.SGD(self.txt_net.parameters(), lr=float(lrs[0]) if epochs else 0.0, weight_decay=wd)
        steps = n // bs
        norm = float(n * bs)

        def half_epoch(net, opt, x, own, other, totals) -> None:
            for _ in range(steps):
                idx = torch.randperm(n, generator=gen)[:bs].to(device)
                s = label_similarity(labels[idx], labels)
                out = net(x[idx])
                nll = dcmh_nll(out, other, s)
                quant = dcmh_quantization(codes[idx], out)
                bal = dcmh_balance(out, own, idx)
                loss = (nll + gamma * quant + eta * bal) / norm
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                own[idx] = out.detach()
                totals += torch.stack([nll.detach(), quant.detach(), bal.detach()]) / norm

        for epoch in range(epochs):
            lr = float(lrs[epoch])
            for opt in (opt_img, opt_txt):
                for group in opt.param_groups:
                    group["lr"] = lr
            totals = torch.zeros(3, device=device)
            self.img_net.train()
            self.txt_net.train()

            t0 = time.perf_counter()
            half_epoch(self.img_net, opt_img, image, f_buf, g_buf, totals)
            sync(device)
            t1 = time.perf_counter()
            half_epoch(self.txt_net, opt_txt, text, g_buf, f_buf, totals)
            sync(device)
            t2 = time.perf_counter()
            codes = dcmh_update_codes(f_buf, g_buf)
            sync(device)
            t3 = time.perf_counter()

            nll, quant, bal = (totals / max(2 * steps, 1)).tolist()
            logs = {
                "loss": nll + gamma * quant + eta * bal,
                "loss_nll": nll,
                "loss_quant": quant,
                "loss_balance": bal,
                "lr": lr,
                "time_img": t1 - t0,
                "time_txt": t2 - t1,
                "time_b": t3 - t2,
            }
            log.debug("dcmh epoch %d: %s", epoch, logs)
            if callback is not None:
                callback(epoch, logs)
        self.codes_ = codes

    # ------------------------------------------------------------------ encode
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.img_net.eval()
        return self.img_net(_apply_stats(x.float(), self.image_shift_, self.image_scale_))

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        self.txt_net.eval()
        return self.txt_net(_apply_stats(x.float(), self.text_shift_, self.text_scale_))
