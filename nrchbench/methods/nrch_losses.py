"""NRCH's losses and its Dynamic Noise Separator, as pure functions (METHODS.md §4.2–§4.3).

The method classes are in :mod:`nrchbench.methods.nrch`; the GMM separator here is also the
rule the ``gmm-select`` strategy generalises.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from nrchbench.errors import ConfigError

__all__ = [
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


# ============================================================================ losses
def _mask_label_sharing(logits: torch.Tensor, T: torch.Tensor, mask: str) -> torch.Tensor:
    """Label-sharing pairs T get logit 0 (``zero``, the code) or −∞ (``exclude``)."""
    if mask == "zero":
        return logits * (~T).to(logits.dtype)
    if mask == "exclude":
        return logits.masked_fill(T, float("-inf"))
    raise ConfigError(f"nrch parameter 'rch_mask': expected 'zero' or 'exclude', got {mask!r}")


def _rch_rows(S: torch.Tensor, T: torch.Tensor, margin: float, shift: float, tau: float, mask: str) -> torch.Tensor:
    """Row-anchored RCH term ℓ(i) = −ĉ_ii + τ·log Σ_j exp(z_ij) + m for a square S."""
    d = S.diagonal()
    hard = S >= (d[:, None] - margin)  # a comparison: no gradient flows through the mask
    c = torch.where(hard, S, S - shift)
    eye = torch.eye(S.shape[0], dtype=torch.bool, device=S.device)
    c_max = torch.where(eye, c.diagonal().clamp(min=0)[:, None].expand_as(c), c)
    logits = _mask_label_sharing(c_max / tau, T, mask)
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


def prototype_loss(
    h: torch.Tensor, g: torch.Tensor, W: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """L_W = mean_{i,c} [(ȳ_ic − sg(h_i)·tanh(w_c))² + (ȳ_ic − sg(g_i)·tanh(w_c))²] (§4.2(4)).

    ``h``/``g`` are the raw net outputs (single tanh, L2-normalised); they are detached here,
    so L_W trains only W. ȳ = 2ỹ − 1. With ``weights`` (a strategy's per-sample weights):
    mean_i w_i · mean_c [...]. Returns a scalar.
    """
    if weights is not None:
        return (weights * prototype_sample_loss(h, g, W, labels)).mean()
    ybar = 2.0 * labels - 1.0
    P = W.tanh()
    return ((ybar - h.detach() @ P.t()).pow(2) + (ybar - g.detach() @ P.t()).pow(2)).mean()


def prototype_sample_loss(h: torch.Tensor, g: torch.Tensor, W: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_W of each sample: mean_c [(ȳ_ic − sg(h_i)·tanh(w_c))² + (ȳ_ic − sg(g_i)·tanh(w_c))²], shape (n,)."""
    ybar = 2.0 * labels - 1.0
    P = W.tanh()
    return ((ybar - h.detach() @ P.t()).pow(2) + (ybar - g.detach() @ P.t()).pow(2)).mean(1)


def per_sample_loss(h: torch.Tensor, g: torch.Tensor, W: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """DNS per-sample loss ℓ_i = max_{c: ỹ_ic=1} [(1 − h_i·tanh(w_c))² + (1 − g_i·tanh(w_c))²] (§4.2(5)).

    Computed as the code does: the squared errors against ȳ = 2ỹ − 1 times ỹ, max over
    classes, so a row without positive labels gets 0. Shape (n,).
    """
    ybar = 2.0 * labels - 1.0
    P = W.tanh()
    err = (ybar - h @ P.t()).pow(2) + (ybar - g @ P.t()).pow(2)
    return (err * labels).max(dim=1).values


def _rch(u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """:func:`rch_loss` with the method's parameters."""
    return rch_loss(
        u,
        v,
        labels,
        margin=params["margin"],
        shift=params["shift"],
        tau=params["tau"],
        bidirectional=params["rch_bidirectional"],
        mask=params["rch_mask"],
    )


def nrch_batch_loss(
    h: torch.Tensor,
    g: torch.Tensor,
    W: torch.Tensor,
    labels: torch.Tensor,
    params: dict[str, Any],
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The training loss of one (selected) batch: total = mean(λL_r + (1−λ)L_q) + L_W.

    ``weights`` (a strategy's per-sample weights, None = all 1) weight each sample's
    λL_r + (1−λ)L_q and L_W terms; the means stay over the batch.

    Returns a dict with ``loss`` (to backpropagate) and the unweighted batch means
    ``loss_rch`` (L_r), ``loss_q`` (L_q) and ``loss_w`` (L_W; weighted when ``weights`` is given).
    """
    u, v = h.tanh(), g.tanh()  # the code applies tanh a second time inside the loss
    lr = _rch(u, v, labels, params)
    lq = quantization_loss(u, v)
    lam = params["lam"]
    if weights is None:
        l_hash = (lam * lr + (1.0 - lam) * lq).mean()
    else:
        l_hash = (weights * (lam * lr + (1.0 - lam) * lq)).mean()
    lw = prototype_loss(h, g, W, labels, weights)
    return {"loss": l_hash + lw, "loss_rch": lr.mean(), "loss_q": lq.mean(), "loss_w": lw}


def nrch_sample_loss(
    h: torch.Tensor, g: torch.Tensor, W: torch.Tensor, labels: torch.Tensor, params: dict[str, Any]
) -> torch.Tensor:
    """The batch's training loss attributed to each sample: λL_r(i) + (1−λ)L_q(i) + L_W(i),
    with the batch's rows as the contrastive partners (its mean is the batch's ``loss``). Shape (n,)."""
    u, v = h.tanh(), g.tanh()
    lam = params["lam"]
    return (
        lam * _rch(u, v, labels, params)
        + (1.0 - lam) * quantization_loss(u, v)
        + prototype_sample_loss(h, g, W, labels)
    )


def _rch_rows_against(
    S: torch.Tensor, own: torch.Tensor, T: torch.Tensor, margin: float, shift: float, tau: float, mask: str
) -> torch.Tensor:
    """:func:`_rch_rows` for c anchors against N partners: S (c×N), ``own`` (c,) the column of
    each anchor's own pair, T (c×N) the label-sharing mask (False at the own pair)."""
    ar = torch.arange(S.shape[0], device=S.device)
    d = S[ar, own]
    hard = S >= (d[:, None] - margin)
    c = torch.where(hard, S, S - shift)
    is_own = torch.zeros_like(hard)
    is_own[ar, own] = True
    cd = c[ar, own]
    logits = _mask_label_sharing(torch.where(is_own, cd.clamp(min=0)[:, None].expand_as(c), c) / tau, T, mask)
    return -cd + tau * torch.logsumexp(logits, dim=1) + margin


def rch_loss_against_all(
    u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, params: dict[str, Any]
) -> torch.Tensor:
    """L_r of the anchors ``rows`` with **every** row of (u, v) as partners (:func:`rch_loss`
    on the whole training set, evaluated for some rows only). ``u``/``v`` are after the second
    tanh. With ``rows`` = all rows it equals ``rch_loss(u, v, labels, ...)``. Shape (len(rows),)."""
    ar = torch.arange(rows.shape[0], device=u.device)
    T = (labels[rows] @ labels.t()) > 0
    T[ar, rows] = False
    args = (params["margin"], params["shift"], params["tau"], params["rch_mask"])
    out = _rch_rows_against(u[rows] @ v.t(), rows, T, *args)
    if not params["rch_bidirectional"]:
        return out + out
    return out + _rch_rows_against(v[rows] @ u.t(), rows, T, *args)


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
