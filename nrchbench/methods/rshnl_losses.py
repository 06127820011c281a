"""RSHNL (Pu et al., AAAI 2025): the losses, self-paced weights and the γ rule, as pure functions.

References are to ``../shared/docs/PEERS.md`` §3, ``docs/METHODS.md`` (section "RSHNL") and
to the official code, github.com/perquisite/RSHNL @ 34de146 (``[CODE file Lx]`` = line x of
that file). The functions here (losses, weights, the γ rule) hold no state and draw nothing;
the method class :class:`~nrchbench.methods.rshnl.RSHNL` (networks, optimiser, schedule) is
built on them.

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

import math
from typing import Literal

import numpy as np
import torch

from nrchbench.errors import ConfigError

__all__ = [
    "GAMMA_RATIO",
    "OFFICIAL_GAMMA",
    "SelfPaced",
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
