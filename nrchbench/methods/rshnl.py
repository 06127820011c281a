"""RSHNL (Pu et al., AAAI 2025): robust self-paced hashing with noisy labels.

References are to ``../shared/docs/PEERS.md`` §3, ``docs/METHODS.md`` (section "RSHNL") and
to the official code, github.com/perquisite/RSHNL @ 34de146 (``[CODE file Lx]`` = line x of
that file). The pure functions (losses, weights, the γ rule) hold no state and draw nothing;
the method class :class:`RSHNL` (networks, optimiser, schedule) is built on them.

Notation: h, g ∈ R^{n×L} the unit-norm image/text codes (tanh, then row L2-normalisation);
W ∈ R^{C×L} the unit-norm class centres, W = E(I_C) from the centre generator E;
ỹ ∈ {0,1}^{n×C} the noisy labels; q = 0.01 the robustness exponent.

**Multi-label reading.** The official code is single-label only (wiki, xmedia,
INRIA-Websearch, xmedianet; symmetric noise), yet its CAL term is written as
``sum(labels * predict, dim=1)`` [CODE losses.py L42–43]. Applied unchanged to multi-hot
labels this is the *label-set posterior* p_Y = Σ_c ỹ_c p_c: the probability mass the class
posterior puts on the noisy positive set, i.e. the probability that "the predicted class is
one of the sample's labels". We adopt exactly that:

* for single-label data p_Y = p_y, so every formula reduces bit for bit to the code;
* φ_q(p_Y) is then a robust (GCE-like) loss of one event, so ℓ_i stays on the same scale
  as in the single-label code and the self-paced threshold γ keeps its meaning;
* a row with no positive label has p_Y = 0 and a constant ℓ_i = 2·φ_q(0) = 2((1−q)/q + q)
  with no gradient (:func:`cal_loss` keeps it out of autograd, where the code's p^q would
  give NaN gradients; after ``tp`` its weight is 0).

**The self-paced threshold γ must depend on C** (PEERS §3.4): the posterior's logits are
cosines ≤ 1 at temperature 1, so the class-averaged ℓ cannot fall below a floor
ℓ_floor(C, k, L) > 0 that grows with the number of classes C (about log C). (It bounds the
average over classes, not each sample: with unbalanced centres a favoured class can go
lower; on wiki the official run's 5th percentile ends at 2.49 against a floor of 2.72.) A
fixed γ = 5 gives weight 0 to almost every sample once ℓ_floor > 5 (COCO, IAPR). :func:`loss_floor` gives the floor in closed form and
:func:`auto_gamma` the rule γ = ρ·ℓ_floor with ρ = :data:`GAMMA_RATIO` = 1.14, which
reproduces the official per-dataset values (argparse comments "3 5 8 9" for wiki, xmedia,
INRIA-Websearch, xmedianet with C = 10, 20, 100, 200 at L = 128; see :data:`OFFICIAL_GAMMA`)
to within ±0.55. Floors from :func:`loss_floor` (two modalities, q = 0.01; k = positives per
sample; the numerically optimised floor for k = 1 agrees to 3 decimals):

=====  ====  =====  =====  =====  =====  ===============  ==================
C      k     L=16   L=32   L=64   L=128  γ (ρ=1.14, L=64)  data set
=====  ====  =====  =====  =====  =====  ===============  ==================
10     1     2.72   2.72   2.72   2.72   3.10             wiki
24     4     2.69   2.67   2.67   2.67   3.04             MIRFlickr (k̄ 3.8)
21     2     3.35   3.34   3.34   3.34   3.81             NUS-WIDE tc21
80     3     5.38   5.35   5.34   5.33   6.08             MS-COCO
255    6     6.59   6.56   6.55   6.54   7.47             IAPR TC-12
=====  ====  =====  =====  =====  =====  ===============  ==================

(For k > 1 the closed form is the symmetric point of a regular simplex of centres; jointly
optimising centres and codes for 256 random label sets gives floors 2–8 % lower, e.g.
6.04 instead of 6.55 for C = 255, k = 6, so the rule leaves clean multi-label samples some
more room than single-label ones.) :func:`empirical_floor` (a percentile of the ℓ_i
measured at epoch ``tp``, PEERS §3.4 [BENCH]) is the data-driven alternative. The floor is
what a fully trained model can reach: on nrchbench's wiki features (SIFT/LDA), 64 bits and a
1,024-unit CPU configuration, the official code's ℓ_i at epoch tp = 5 still has a 5th
percentile of 3.55, so γ ≈ 3 (the official wiki value, and this rule's 3.10) gives every
sample weight 0 from tp until CHL alone has brought some codes near their (then frozen)
centres: epochs 5–20 in the official run (seed 0); by epoch 49 a small, very clean set
trains CAL (weight > 0 for 10.7 % of the clean and 0.6 % of the noisy rows). That works:
over 3 seeds γ = 3 gives mAP 0.246 ± 0.004 against 0.183 ± 0.037 at γ = 5. The method
class must log the fraction of zero weights split by the clean mask.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from nrchbench.errors import ConfigError
from nrchbench.methods._common import LossMeans, TwoNetEncoder, dataset_key, iter_batches, linear
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.params import Params
from nrchbench.registry import METHODS

log = logging.getLogger(__name__)

__all__ = [
    "GAMMA_RATIO",
    "OFFICIAL_GAMMA",
    "RSHNL",
    "RSHNLParams",
    "auto_gamma",
    "cal_loss",
    "chl_loss",
    "class_posterior",
    "empirical_floor",
    "loss_floor",
    "phi_q",
    "positive_mass",
    "resolve_gamma",
    "rshnl_loss",
    "self_paced_loss",
    "self_paced_weights",
]

SelfPaced = Literal["linear", "hard", "off"]

#: The official per-dataset γ (argparse comment ``# 3 5 8 9`` [CODE main.py L31], in the order
#: of the dataset comment ``# wiki xmedia INRIA-Websearch xmedianet`` [CODE main.py L28]; the
#: defaults γ = 5, α = 0.1 are the xmedia entries and the default dataset is xmedia, which
#: supports this reading), keyed by the number of classes of each dataset.
OFFICIAL_GAMMA: dict[int, float] = {10: 3.0, 20: 5.0, 100: 8.0, 200: 9.0}

#: ρ in γ = ρ·ℓ_floor: the geometric mean of γ/ℓ_floor over :data:`OFFICIAL_GAMMA` at L = 128
#: (ratios 1.10, 1.25, 1.14, 1.08). A sample sitting exactly at the floor gets weight 1 − 1/ρ ≈ 0.12,
#: as the clean samples of the official weight histogram (``Imgs/SPL_weights_100.jpg``, 0.10–0.13).
GAMMA_RATIO = 1.14


# ============================================================================ CAL (centre aggregation)
def phi_q(p: torch.Tensor, q: float = 0.01) -> torch.Tensor:
    """The robust loss φ_q(p) = (1 − q)(1 − p^q)/q + q(1 − p), element-wise.

    [CODE losses.py L21, L42–43] (the same expression for CAL and CHL). φ_q → −log p as
    q → 0 and is 1 − p at q = 1; it is ≥ 0 on [0, 1] and 0 only at p = 1.

    Args:
        p: probabilities in [0, 1], any shape.
        q: the exponent, in (0, 1] (code default 0.01, ``--q``).

    Returns:
        φ_q(p), same shape as ``p``.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"phi_q: q must be in (0, 1], got {q!r}")
    return (1.0 - q) * (1.0 - p.pow(q)) / q + q * (1.0 - p)


def class_posterior(z: torch.Tensor, centres: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """p_ic = softmax_c(z_iᵀw_c / T): the class posterior from cosine logits to the centres.

    [CODE train_model.py L91–94]: ``W = emb(eye(C))``; ``softmax(feature.mm(W.T), dim=1)``.
    With unit-norm z and w_c the logits are cosines; the code has no temperature (T = 1;
    its ``--tau`` enters only CHL).

    Args:
        z: n×L codes (unit rows). centres: C×L centres (unit rows). temperature: T > 0.

    Returns:
        n×C posterior, rows summing to 1.
    """
    return torch.softmax(z @ centres.t() / temperature, dim=1)


def positive_mass(p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p_Y,i = Σ_c ỹ_ic·p_ic, the posterior mass on the noisy label set (multi-label reading).

    [CODE losses.py L42]: ``torch.sum(labels.float() * predict1, dim=1)``; equals p_y for
    one-hot labels. See the module docstring for the multi-label reading.

    Args:
        p: n×C posterior. labels: n×C in {0, 1}.

    Returns:
        p_Y, shape (n,).
    """
    return (labels.to(p.dtype) * p).sum(1)


def cal_loss(
    h: torch.Tensor,
    g: torch.Tensor,
    centres: torch.Tensor,
    labels: torch.Tensor,
    q: float = 0.01,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-sample CAL loss ℓ_i = φ_q(p_Y,i(h_i)) + φ_q(p_Y,i(g_i)).

    [CODE losses.py L42–43, L54] (``term1 = tmp1 + tmp2``), with p from
    :func:`class_posterior` and p_Y from :func:`positive_mass`.

    Args:
        h, g: n×L image/text codes. centres: C×L. labels: n×C noisy labels.
        q: φ_q exponent. temperature: posterior temperature (code: 1).

    Returns:
        ℓ, shape (n,); the gradient reaches h, g and the centres. A row without any positive
        label gets the constant 2·φ_q(0) and no gradient (the code, which never sees such a
        row, would give it NaN gradients through p^q at p = 0).
    """
    has_label = labels.sum(1) > 0
    total = torch.zeros((), dtype=h.dtype, device=h.device)
    for z in (h, g):
        p_y = positive_mass(class_posterior(z, centres, temperature), labels)
        # p^q has an infinite derivative at p = 0: keep an empty row out of the autograd
        # graph (the code would return NaN gradients for it); it gets the constant φ_q(0)
        safe = torch.where(has_label, p_y, torch.ones_like(p_y))
        total = total + torch.where(has_label, phi_q(safe, q), phi_q(torch.zeros_like(p_y), q))
    return total


# ============================================================================ NSH (self-paced weights)
def _check_gamma(gamma: float) -> None:
    if not gamma > 0:
        raise ValueError(f"RSHNL: the self-paced threshold gamma must be positive, got {gamma!r}")


def self_paced_weights(loss: torch.Tensor, gamma: float, mode: SelfPaced = "linear") -> torch.Tensor:
    """The self-paced weights v_i, detached.

    * ``linear`` (code default ``--linear True``): v_i = max(0, 1 − ℓ_i/γ) [CODE losses.py L60–62];
    * ``hard`` (``--linear False``): v_i = 1[ℓ_i < γ] [CODE losses.py L66];
    * ``off`` (``--self_paced False``, or any epoch before ``tp``): v_i = 1.

    Args:
        loss: per-sample ℓ, shape (n,). gamma: γ > 0. mode: see above.

    Returns:
        v, shape (n,), same dtype, no gradient.
    """
    _check_gamma(gamma)
    loss = loss.detach()
    if mode == "linear":
        return (1.0 - loss / gamma).clamp(min=0.0)
    if mode == "hard":
        return (loss < gamma).to(loss.dtype)
    if mode == "off":
        return torch.ones_like(loss)
    raise ValueError(f"RSHNL: self-paced mode must be 'linear', 'hard' or 'off', got {mode!r}")


def self_paced_loss(loss: torch.Tensor, gamma: float, mode: SelfPaced = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """The self-paced per-sample loss ℓ̃_i = v_i·ℓ_i + r(v_i) and the weights v_i.

    Regulariser [CODE losses.py L64, L67, L70]: linear r(v) = γ(v²/2 − v); hard r(v) = −γ·v;
    ``off``: ℓ̃ = ℓ. Because v is detached, r is a constant for the optimiser: it changes
    the reported loss value only, and training sees v_i·ℓ_i (PEERS §3.2).

    Args:
        loss: per-sample ℓ, shape (n,). gamma: γ > 0. mode: ``linear`` | ``hard`` | ``off``.

    Returns:
        (ℓ̃ of shape (n,), v of shape (n,)).
    """
    v = self_paced_weights(loss, gamma, mode)
    if mode == "linear":
        return v * loss + gamma * (0.5 * v * v - v), v
    if mode == "hard":
        return v * loss - gamma * v, v
    return loss, v


# ============================================================================ CHL (contrastive hashing)
def chl_loss(h: torch.Tensor, g: torch.Tensor, q: float = 0.01, tau: float = 1.0, doubled: bool = True) -> torch.Tensor:
    """The contrastive hashing term L_c = 2·mean_k φ_q(P_k) over the 2n codes a = [h; g].

    P_k = exp(a_kᵀa_k′/τ) / Σ_{l≠k} exp(a_kᵀa_l/τ), with k′ the cross-modal partner of k and
    the self-similarity removed from the denominator [CODE losses.py L10–27,
    ``cross_modal_contrastive_ctriterion_q``]. The code's two "directions" (``loss1`` over
    row blocks, ``loss2`` over column blocks of a symmetric matrix) are numerically identical,
    hence the factor 2 (``doubled=True``, the code); ``doubled=False`` gives mean_k φ_q(P_k).
    The log-sum-exp form used here equals the code's ``exp``/``sum`` up to rounding.

    Args:
        h, g: n×L image/text codes. q: φ_q exponent (the code passes ``opt.q``). tau: τ > 0.
        doubled: keep the code's factor 2.

    Returns:
        Scalar L_c.
    """
    n = h.shape[0]
    a = torch.cat([h, g])
    s = a @ a.t() / tau
    eye = torch.eye(2 * n, dtype=torch.bool, device=a.device)
    partner = torch.arange(2 * n, device=a.device).roll(n)
    pos = s[torch.arange(2 * n, device=a.device), partner]
    log_p = pos - torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=1)
    loss = phi_q(log_p.exp(), q).mean()
    return 2.0 * loss if doubled else loss


# ============================================================================ total
def rshnl_loss(
    h: torch.Tensor,
    g: torch.Tensor,
    centres: torch.Tensor,
    labels: torch.Tensor,
    *,
    epoch: int,
    tp: int = 5,
    gamma: float = 5.0,
    alpha: float = 0.1,
    lam: float = 1.0,
    q: float = 0.01,
    tau: float = 1.0,
    self_paced: SelfPaced = "linear",
    doubled: bool = True,
) -> dict[str, torch.Tensor]:
    """The training loss of one batch: L = λ·mean_i ℓ̃_i + α·L_c.

    [CODE losses.py L36–75] (``SupConLoss.forward`` with ``loss_type='RSHNL'``): ℓ̃ is
    :func:`self_paced_loss` of :func:`cal_loss` for ``epoch ≥ tp`` (0-based epoch index, code
    ``epoch >= opt.tp``) and the plain ℓ before; L_c is :func:`chl_loss` with the same q.

    Args:
        h, g: n×L codes. centres: C×L. labels: n×C noisy labels.
        epoch: 0-based epoch index. tp: the turning point (code 5). gamma: γ (code default 5;
            see :func:`auto_gamma`). alpha: α, CHL weight (code 0.1). lam: λ, CAL weight
            (code 1). q: φ_q exponent (0.01). tau: CHL temperature (1).
        self_paced: ``linear`` (code) | ``hard`` | ``off`` (``--self_paced False``).
        doubled: CHL factor 2 (code).

    Returns:
        ``loss`` (to backpropagate), ``loss_cal`` (mean ℓ̃, as in ``loss``), ``loss_cal_raw``
        (mean ℓ), ``loss_chl`` (L_c), ``sample_loss`` (ℓ, detached) and ``weights`` (v;
        ones before ``tp`` or with ``self_paced='off'``).
    """
    ell = cal_loss(h, g, centres, labels, q)
    mode: SelfPaced = self_paced if epoch >= tp else "off"
    ell_sp, v = self_paced_loss(ell, gamma, mode)
    lc = chl_loss(h, g, q=q, tau=tau, doubled=doubled)
    cal = ell_sp.mean()
    return {
        "loss": lam * cal + alpha * lc,
        "loss_cal": cal,
        "loss_cal_raw": ell.mean(),
        "loss_chl": lc,
        "sample_loss": ell.detach(),
        "weights": v,
    }


# ============================================================================ γ rule
def loss_floor(num_classes: int, bits: int, k: float = 1.0, q: float = 0.01, temperature: float = 1.0) -> float:
    """Closed-form floor of ℓ_i (two modalities) for C classes, k positives per sample, L bits.

    Both codes sit at the symmetric point of their k positive centres, the C centres forming
    a balanced unit-norm frame in R^L (a regular simplex when L ≥ C − 1):

        a  = √((C − k)/(k(C − 1)))             cosine to each positive centre
        b  = −√(k/((C − 1)(C − k)))            mean cosine to a negative centre
        s² = max(0, (C/L′ − k·a²)/(C − k) − b²), L′ = min(L, C − 1)   their variance (tight frame)
        p* = k·e^{a/T} / (k·e^{a/T} + (C − k)·e^{b/T + s²/(2T²)})
        ℓ_floor = 2·φ_q(p*)

    For k = 1 and L ≥ C − 1 this is the exact minimum of the class-averaged ℓ over centres and
    codes, mean_c ℓ(code of class c) (regular simplex); for L < C − 1 the second-order term
    e^{s²/2} approximates the spread of the negative cosines (the numerically optimised
    floor agrees to 3 decimals for C ≤ 200, L ≥ 16). ``k`` may be a mean cardinality k̄
    (0 < k < C).

    Args:
        num_classes: C ≥ 2. bits: L ≥ 1. k: positives per sample. q: φ_q exponent.
        temperature: posterior temperature (code: 1).

    Returns:
        ℓ_floor ≥ 0.
    """
    c = int(num_classes)
    if c < 2:
        raise ValueError(f"loss_floor: need at least 2 classes, got {num_classes!r}")
    if bits < 1:
        raise ValueError(f"loss_floor: bits must be positive, got {bits!r}")
    if not 0.0 < k < c:
        raise ValueError(f"loss_floor: k (positives per sample) must be in (0, {c}), got {k!r}")
    l_eff = min(int(bits), c - 1)
    a = math.sqrt((c - k) / (k * (c - 1)))
    b = -math.sqrt(k / ((c - 1) * (c - k)))
    s2 = max(0.0, (c / l_eff - k * a * a) / (c - k) - b * b)
    t = float(temperature)
    log_pos = math.log(k) + a / t
    log_neg = math.log(c - k) + b / t + s2 / (2.0 * t * t)
    p = 1.0 / (1.0 + math.exp(log_neg - log_pos))
    return 2.0 * float(phi_q(torch.tensor(p, dtype=torch.float64), q))


def auto_gamma(num_classes: int, bits: int, k: float = 1.0, ratio: float = GAMMA_RATIO, q: float = 0.01) -> float:
    """The class-count-aware threshold γ = ρ·:func:`loss_floor` (C, k̄, L).

    With ρ = :data:`GAMMA_RATIO` = 1.14 it gives 3.10, 4.56, 8.03, 9.53 for the official
    datasets (C = 10, 20, 100, 200; k = 1; L = 128), whose official values are 3, 5, 8, 9.

    Args:
        num_classes: C. bits: L. k: mean positives per sample k̄. ratio: ρ > 1 (a sample at the
            floor gets weight 1 − 1/ρ). q: φ_q exponent.

    Returns:
        γ > 0.
    """
    if not ratio > 1.0:
        raise ValueError(f"auto_gamma: ratio must be > 1 (else every sample gets weight 0), got {ratio!r}")
    return ratio * loss_floor(num_classes, bits, k, q)


def empirical_floor(losses: np.ndarray | torch.Tensor, percentile: float = 5.0) -> float:
    """ℓ_floor measured on data: the ``percentile``-th percentile of the per-sample ℓ_i.

    PEERS §3.4 [BENCH]: measured at epoch ``tp`` on all training samples, then γ = m·ℓ_floor
    with m searched in {1.5, 2, 3} on the val split. Linear interpolation (numpy's default).

    Args:
        losses: per-sample ℓ, any shape (flattened); must be finite and non-empty.
        percentile: in [0, 100].

    Returns:
        The percentile as a float.
    """
    x = losses.detach().cpu().double().numpy() if isinstance(losses, torch.Tensor) else np.asarray(losses, float)
    x = x.ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("empirical_floor: losses must be a non-empty array of finite values")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"empirical_floor: percentile must be in [0, 100], got {percentile!r}")
    return float(np.percentile(x, percentile))


def resolve_gamma(
    gamma: float | str, labels: torch.Tensor | np.ndarray, bits: int, ratio: float = GAMMA_RATIO, q: float = 0.01
) -> tuple[float, dict[str, float]]:
    """The γ a run uses: a number as given, or ``"auto"`` = :func:`auto_gamma` for the data.

    For ``"auto"``, C is the number of label columns and k the mean number of positives over
    the rows that have at least one (clipped to [1, C − 1]); both come from the labels the
    method trains on (the noisy ones: every noise model of nrchbench keeps the cardinality).

    Args:
        gamma: a positive number, or ``"auto"``. labels: n×C training labels in {0, 1}.
        bits: L. ratio: ρ of :func:`auto_gamma`. q: φ_q exponent.

    Returns:
        (γ, info) where info holds ``num_classes``, ``k`` and ``loss_floor`` for ``"auto"``
        (empty for a number).

    Raises:
        ConfigError: ``"auto"`` with fewer than 2 classes or no labelled row.
    """
    if gamma != "auto":
        _check_gamma(float(gamma))
        return float(gamma), {}
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    c = int(y.shape[1])
    card = y.sum(1)
    if c < 2 or not (card > 0).any():
        raise ConfigError(
            f"rshnl parameter 'gamma': 'auto' needs at least 2 classes and a labelled training row "
            f"(got {c} classes, {int((card > 0).sum())} labelled rows); give a number, e.g. -p gamma=5"
        )
    k = float(np.clip(card[card > 0].mean(), 1.0, c - 1.0))
    floor = loss_floor(c, bits, k, q)
    return ratio * floor, {"num_classes": float(c), "k": k, "loss_floor": floor}


# ============================================================================ networks
class _UnitHead(nn.Module):
    """Linear(d→H)–ReLU–Linear(H→H)–ReLU–Linear(H→L)–tanh–row L2-normalisation [CODE model.py].

    The hash nets' last layer has no bias and weights U(±1/√d) with d the *input* width of
    the net (``ImgNN``/``TextNN``); the centre generator's (``Embedding``) has a bias with
    PyTorch's default init and weights U(±1/√C), C = its input width. The first two layers
    have PyTorch's default init. Every draw comes from ``generator``.
    """

    def __init__(self, d_in: int, hidden: int, d_out: int, last_bias: bool, generator: torch.Generator) -> None:
        super().__init__()
        self.fc1 = linear(d_in, hidden, generator)
        self.fc2 = linear(hidden, hidden, generator)
        self.fc3 = linear(hidden, d_out, generator, bias=last_bias)
        bound = 1.0 / math.sqrt(d_in)
        with torch.no_grad():
            nn.init.uniform_(self.fc3.weight, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc2(F.relu(self.fc1(x))))
        return F.normalize(self.fc3(x).tanh(), dim=1)


# ============================================================================ method
#: Official per-dataset values [CODE main.py L28–31, argparse comments, in-order reading]
#: for the datasets of nrchbench that the release covers (only wiki; xmedia, INRIA-Websearch
#: and xmedianet are not nrchbench datasets).
_DATASET_PARAMS: dict[str, dict[str, Any]] = {"wiki": {"alpha": 0.05, "gamma": 3.0}}


class RSHNLParams(Params):
    """RSHNL hyper-parameters; defaults = the official code [CODE main.py, model.py] except γ."""

    hidden: int = Field(4096, ge=1, description="units of the hidden layers of both hash nets and of E")
    epochs: int = Field(150, ge=1, description="training epochs (--MAX_EPOCH)")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-4, gt=0, description="Adam learning rate of the nets and of E (no decay, no schedule)")
    tp: int = Field(5, ge=0, description="turning point: self-paced weights from this 0-based epoch on")
    gamma: float | Literal["auto"] = Field(
        "auto", description="self-paced threshold γ: a number, or auto = 1.14 × the loss floor of (C, k̄, L)"
    )
    gamma_ratio: float = Field(GAMMA_RATIO, gt=1, description="ρ of gamma=auto (γ = ρ·ℓ_floor)")
    alpha: float = Field(0.1, ge=0, description="α: weight of the contrastive term CHL")
    lam: float = Field(1.0, ge=0, description="λ: weight of the self-paced CAL term (--lamda)")
    q: float = Field(0.01, gt=0, le=1, description="exponent of the robust loss φ_q (CAL and CHL)")
    tau: float = Field(1.0, gt=0, description="temperature of CHL")
    self_paced: Literal["linear", "hard", "off"] = Field(
        "linear", description="linear (code), hard (--linear False) or off (--self_paced False)"
    )

    @field_validator("gamma", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
            raise ValueError("expected 'auto' or a positive number")
        return number


@METHODS.register("rshnl")
class RSHNL(TwoNetEncoder, HashingMethod):
    """RSHNL (AAAI 2025): centre aggregation with self-paced weights, plus a robust contrastive term.

    Hyper-parameters: :class:`RSHNLParams` (official code values; γ = ``auto``, the
    class-count-aware rule, unless a number is given or the dataset has an official value:
    :meth:`dataset_params`). Presets: ``paper`` = the official values; ``fast`` = hidden 1,024
    (nets and E) and 50 epochs, the configuration of the official-code fidelity runs on
    wiki; ``tiny`` = seconds (tests).

    Per-epoch log: losses ``loss`` (λ·mean ℓ̃ + α·L_c, the minimised value with the inert
    regulariser), ``loss_cal`` (mean ℓ̃), ``loss_cal_raw`` (mean ℓ), ``loss_chl`` (L_c), each the
    mean over the epoch's batches; values ``gamma`` (the resolved γ) and
    ``zero_weight_fraction`` (rows with v = 0; 0 before ``tp``); ``weights`` (v of every
    training row, from the batch it was trained in; 1 before ``tp``) and ``sample_loss`` (ℓ
    of every row, same batches); time ``train``.

    Random streams: initial weights from ``rng.torch("init")`` (image net, text net, E, in
    the code's order), batch permutations from ``rng.torch("batches")``.
    """

    name = "rshnl"
    description = "RSHNL (AAAI 2025): self-paced centre aggregation + robust contrastive hashing, official recipe"
    Params = RSHNLParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "fast": {"hidden": 1024, "epochs": 50},
        "tiny": {"hidden": 64, "epochs": 10, "tp": 3, "batch_size": 32, "lr": 3e-3},
    }
    uses_labels = True
    LOSS_KEYS: ClassVar[tuple[str, ...]] = ("loss", "loss_cal", "loss_cal_raw", "loss_chl")

    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """Official per-dataset α and γ where the release gives them (wiki: α 0.05, γ 3).

        Every other dataset keeps α = 0.1 (the code default) and γ = ``auto``.
        """
        return dict(_DATASET_PARAMS.get(dataset_key(dataset), {}))

    def setup(self, data: TrainData, rng: Rng) -> None:
        p = self.p
        c = data.num_classes
        self.gamma_, info = resolve_gamma(p.gamma, data.labels, self.bits, p.gamma_ratio, p.q)
        if info:
            log.info(
                "rshnl: gamma=auto -> %.4f (C=%d, k=%.3f, L=%d, floor %.4f)",
                self.gamma_,
                c,
                info["k"],
                self.bits,
                info["loss_floor"],
            )
        empty = int((data.labels.sum(1) == 0).sum())
        if empty:
            log.warning("rshnl: %d training rows have no label: constant CAL loss, weight 0 after tp", empty)
        gen = rng.torch("init")
        self.img_net = _UnitHead(data.image.shape[1], p.hidden, self.bits, False, gen).to(data.device)
        self.txt_net = _UnitHead(data.text.shape[1], p.hidden, self.bits, False, gen).to(data.device)
        self.emb = _UnitHead(c, p.hidden, self.bits, True, gen).to(data.device)
        self._eye = torch.eye(c, device=data.device)
        self._opt = torch.optim.Adam(
            [{"params": self.emb.parameters()}, {"params": [*self.img_net.parameters(), *self.txt_net.parameters()]}],
            lr=p.lr,
        )
        self._batch_gen = rng.torch("batches")

    def centres(self) -> torch.Tensor:
        """W = E(I_C): the C×L unit-norm class centres (recomputed from E, never stored)."""
        return self.emb(self._eye)

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        p = self.p
        log = EpochLog(epoch)
        image, text, labels = data.image.float(), data.text.float(), data.labels.float()
        weights = torch.ones(data.n, device=data.device)
        ell = torch.zeros(data.n, device=data.device)
        self.img_net.train()
        self.txt_net.train()
        means = LossMeans(self.LOSS_KEYS, data.device)
        with log.timer("train", data.device):
            for idx in iter_batches(data.n, p.batch_size, self._batch_gen, data.device):
                terms = rshnl_loss(
                    self.img_net(image[idx]),
                    self.txt_net(text[idx]),
                    self.centres(),
                    labels[idx],
                    epoch=epoch,
                    tp=p.tp,
                    gamma=self.gamma_,
                    alpha=p.alpha,
                    lam=p.lam,
                    q=p.q,
                    tau=p.tau,
                    self_paced=p.self_paced,
                )
                self._opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                self._opt.step()
                means.add(terms)
                weights[idx] = terms["weights"].to(weights.dtype)
                ell[idx] = terms["sample_loss"].to(ell.dtype)
        log.losses.update(means.means())
        w = weights.cpu().numpy().astype(np.float64)
        log.weights, log.sample_loss = w, ell.cpu().numpy().astype(np.float64)
        log.values["gamma"] = self.gamma_
        log.values["zero_weight_fraction"] = float((w == 0).mean()) if w.size else 0.0
        return log
