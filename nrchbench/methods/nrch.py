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
import warnings
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from torch import nn

from nrchbench.errors import ConfigError, RunFailed
from nrchbench.methods._common import iter_batches, mlp
from nrchbench.methods.base import EpochLog, HashingMethod, Mixture, Rng, TrainData
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
    "per_sample_loss",
    "prototype_loss",
    "quantization_loss",
    "rch_loss",
    "theta_at",
]

# Rows per chunk of the per-sample-loss pass (memory only; results do not depend on it).
DNS_CHUNK = 4096


# ============================================================================ losses
def _rch_rows(S: torch.Tensor, T: torch.Tensor, margin: float, shift: float, tau: float, mask: str) -> torch.Tensor:
    """Row-anchored RCH term ℓ(i) = −ĉ_ii + τ·log Σ_j exp(z_ij) + m for a square S."""
    d = S.diagonal()
    hard = S >= (d[:, None] - margin)  # a comparison: no gradient flows through the mask
    c = torch.where(hard, S, S - shift)
    eye = torch.eye(S.shape[0], dtype=torch.bool, device=S.device)
    c_max = torch.where(eye, c.diagonal().clamp(min=0)[:, None].expand_as(c), c)
    logits = c_max / tau
    if mask == "zero":
        logits = logits * (~T).to(logits.dtype)
    elif mask == "exclude":
        logits = logits.masked_fill(T, float("-inf"))
    else:
        raise ConfigError(f"nrch parameter 'rch_mask': expected 'zero' or 'exclude', got {mask!r}")
    return -c.diagonal() + tau * torch.logsumexp(logits, dim=1) + margin


def rch_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    shift: float = 1.0,
    tau: float = 1.0,
    bidirectional: bool = False,
    mask: str = "zero",
) -> torch.Tensor:
    """Per-sample Robust Contrastive Hashing term L_r (METHODS.md §4.2(1)).

    With S = u vᵀ (rows: image anchors), T_ij = 1[ỹ_iᵀỹ_j > 0] off the diagonal:
    ĉ_ij = S_ij if S_ij ≥ S_ii − m else S_ij − ξ; ĉ_ii = max(S_ii, 0);
    ℓ_i2t(i) = −S_ii + τ log Σ_j exp(ĉ_ij (1 − T_ij) / τ) + m.

    Args:
        u: n×L image outputs **after the loss's second tanh** (ũ = tanh(h)).
        v: n×L text outputs after the second tanh.
        labels: n×C noisy labels in {0,1} (float).
        margin: m. shift: ξ. tau: τ.
        bidirectional: False → L_r = 2·ℓ_i2t (the code); True → ℓ_i2t(i) + ℓ_t2i(i), the
            column-wise term anchored at text i (hard mask relative to S_ii of that column,
            diagonal clamp as the code's unused ``cost_im_max``).
        mask: ``zero`` → label-sharing pairs get logit 0 (the code); ``exclude`` → −∞.

    Returns:
        L_r per sample, shape (n,).
    """
    S = u @ v.t()
    T = (labels @ labels.t()) > 0
    T.fill_diagonal_(False)
    rows = _rch_rows(S, T, margin, shift, tau, mask)
    if not bidirectional:
        return rows + rows
    return rows + _rch_rows(S.t(), T.t(), margin, shift, tau, mask)


def quantization_loss(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-sample L_q = mean_k (|ũ_k| − 1/√L)² + mean_k (|ṽ_k| − 1/√L)² (§4.2(2)), shape (n,).

    ``u`` and ``v`` are the outputs after the loss's second tanh.
    """
    target = 1.0 / math.sqrt(u.shape[1])
    return (u.abs() - target).pow(2).mean(1) + (v.abs() - target).pow(2).mean(1)


def prototype_loss(h: torch.Tensor, g: torch.Tensor, W: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_W = mean_{i,c} [(ȳ_ic − sg(h_i)·tanh(w_c))² + (ȳ_ic − sg(g_i)·tanh(w_c))²] (§4.2(4)).

    ``h``/``g`` are the raw net outputs (single tanh, L2-normalised); they are detached here,
    so L_W trains only W. ȳ = 2ỹ − 1. Returns a scalar.
    """
    ybar = 2.0 * labels - 1.0
    P = W.tanh()
    return ((ybar - h.detach() @ P.t()).pow(2) + (ybar - g.detach() @ P.t()).pow(2)).mean()


def per_sample_loss(h: torch.Tensor, g: torch.Tensor, W: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """DNS per-sample loss ℓ_i = max_{c: ỹ_ic=1} [(1 − h_i·tanh(w_c))² + (1 − g_i·tanh(w_c))²] (§4.2(5)).

    Computed as the code does: the squared errors against ȳ = 2ỹ − 1 times ỹ, max over
    classes, so a row without positive labels gets 0. Shape (n,).
    """
    ybar = 2.0 * labels - 1.0
    P = W.tanh()
    err = (ybar - h @ P.t()).pow(2) + (ybar - g @ P.t()).pow(2)
    return (err * labels).max(dim=1).values


def nrch_batch_loss(
    h: torch.Tensor, g: torch.Tensor, W: torch.Tensor, labels: torch.Tensor, params: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """The training loss of one (selected) batch: total = mean(λL_r + (1−λ)L_q) + L_W.

    Returns a dict with ``loss`` (to backpropagate) and the unweighted batch means
    ``loss_rch`` (L_r), ``loss_q`` (L_q) and ``loss_w`` (L_W).
    """
    u, v = h.tanh(), g.tanh()  # the code applies tanh a second time inside the loss
    lr = rch_loss(
        u,
        v,
        labels,
        margin=params["margin"],
        shift=params["shift"],
        tau=params["tau"],
        bidirectional=params["rch_bidirectional"],
        mask=params["rch_mask"],
    )
    lq = quantization_loss(u, v)
    lam = params["lam"]
    l_hash = (lam * lr + (1.0 - lam) * lq).mean()
    lw = prototype_loss(h, g, W, labels)
    return {"loss": l_hash + lw, "loss_rch": lr.mean(), "loss_q": lq.mean(), "loss_w": lw}


# ============================================================================ noise separator
def minmax_normalise(losses: np.ndarray) -> np.ndarray:
    """(ℓ − min ℓ + 1e-8) / (max ℓ − min ℓ + 1e-8) in float64, as the code does (§4.3)."""
    x = np.asarray(losses, dtype=np.float64)
    if x.size == 0:
        return x
    return (x - x.min() + 1e-8) / (x.max() - x.min() + 1e-8)


def gmm_clean_posterior(
    x: np.ndarray, *, max_iter: int = 10, tol: float = 0.5, reg_covar: float = 5e-4, random_state: int = 0
) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Fit a 2-component 1-D GMM and return the posterior of the lower-mean component.

    Args:
        x: 1-D normalised per-sample losses.
        max_iter, tol, reg_covar: ``sklearn.mixture.GaussianMixture`` settings (§4.3).
        random_state: seeds the k-means initialisation (the code leaves it unseeded).

    Returns:
        (p_clean of shape (n,), {"means", "variances", "weights"} sorted by ascending mean,
        so component 0 is the "clean" one). With fewer than two distinct values no mixture
        can be fitted: every row gets p_clean = 1 and the lists have one entry.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    if x.shape[0] < 2 or np.ptp(x) == 0:
        m = float(x.mean()) if x.size else 0.0
        return np.ones(x.shape[0]), {"means": [m], "variances": [0.0], "weights": [1.0]}
    gmm = GaussianMixture(n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x)
    prob = gmm.predict_proba(x)
    means = gmm.means_.ravel()
    order = np.argsort(means, kind="stable")
    info = {
        "means": [float(means[k]) for k in order],
        "variances": [float(gmm.covariances_.ravel()[k]) for k in order],
        "weights": [float(gmm.weights_[k]) for k in order],
    }
    return prob[:, int(means.argmin())], info


def theta_at(epoch: int, params: dict[str, Any]) -> float:
    """The DNS threshold θ of ``epoch``: 0 before ``dns_start_epoch``; then θ (``const``)
    or θ·epoch/(epochs−1) (``linear``, the code's unused ``threshold_schedule`` with
    ``num_gradual = epochs``)."""
    if epoch < params["dns_start_epoch"]:
        return 0.0
    theta = float(params["theta"])
    if params["theta_schedule"] == "const":
        return theta
    epochs = int(params["epochs"])
    return theta if epochs <= 1 else theta * epoch / (epochs - 1)


# ============================================================================ networks
class _HashHead(nn.Module):
    """MLP → tanh → row L2-normalisation (the official ``ImgModule``/``TxtModule``)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.fc = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(x).tanh(), dim=1)


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
    """

    name = "nrch"
    description = "NRCH (ACM MM 2024): robust contrastive hashing + GMM noise separator, official recipe"
    Params = NRCHParams
    presets = _presets_for(NRCHParams)
    uses_labels = True
    selects_samples = True
    LOSS_KEYS: ClassVar[tuple[str, ...]] = ("loss", "loss_rch", "loss_q", "loss_w")

    # ---------------------------------------------------------------- training
    def setup(self, data: TrainData, rng: Rng) -> None:
        p = self.p
        gen = rng.torch("init")
        img = _HashHead(mlp(data.image.shape[1], p.hidden, self.bits, p.image_layers, gen))
        txt = _HashHead(mlp(data.text.shape[1], p.hidden, self.bits, p.text_layers, gen))
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

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        log = EpochLog(epoch)
        selected = self.select(epoch, data, rng, log)
        keep = None if selected is None or selected.all() else torch.from_numpy(selected).to(data.device)
        labels = data.labels.to(torch.float32)
        image, text = data.image.to(torch.float32), data.text.to(torch.float32)
        sums = torch.zeros(len(self.LOSS_KEYS), device=data.device)
        batches = 0
        with log.timer("train", data.device):
            for idx in iter_batches(data.n, self.p.batch_size, self._batch_gen, data.device):
                if keep is not None:
                    idx = idx[keep[idx]]
                    if idx.numel() == 0:
                        continue
                terms = nrch_batch_loss(
                    self.img_net(image[idx]), self.txt_net(text[idx]), self.W, labels[idx], self._pd
                )
                self._opt_img.zero_grad(set_to_none=True)
                self._opt_txt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                self._opt_img.step()
                self._opt_txt.step()
                sums += torch.stack([terms[k].detach() for k in self.LOSS_KEYS])
                batches += 1
        if batches:
            log.losses.update(zip(self.LOSS_KEYS, (sums / batches).tolist()))
        return log

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
