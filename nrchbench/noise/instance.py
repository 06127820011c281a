"""``instance``: instance-dependent label noise from a linear classifier's confusions (PROTOCOL §2).

Annotators confuse the items that look alike. The classifier-confusion construction
(Chen et al., AAAI 2021: the samples a classifier trained on the clean labels confuses most
are the ones whose labels are flipped, to the class it confuses them with) is made seeded,
exact, nested and multi-label here:

1. **Confusion model** (a pure function of the features, the clean labels and the
   parameters; the noise seed plays no part). The used modalities (``modality``) are
   z-scored per dimension and concatenated (d dimensions); if d > ``dim`` they are
   projected by a Rademacher matrix R (d×``dim``, entries ±1 from the uniforms of
   ``default_rng([projection_seed, STREAM_FEATURES])``, row-major, −1 where u < 0.5) and the
   projection is z-scored again, giving X (N×D). One ridge regression per class onto the
   clean labels with an unpenalised intercept, ``W = (XᵀX/N + λI)⁻¹ Xᵀ(Y − Ȳ)/N``
   (λ = ``ridge``; the regularised least-squares classifier), and its exact
   leave-one-out outputs ``F_i = y_i − (y_i − f_i)/(1 − h_i)``, ``h_i = 1/N + x_i(XᵀX/N +
   λI)⁻¹x_iᵀ/N``: the classifier's output for sample i when it was fitted without i. The
   class probabilities are ``p_ic = clip(F_ic, 10⁻⁶, 1 − 10⁻⁶)``.
2. **Which samples** (eligible: at least one positive and one negative, as for ``nrch``).
   Confusion score ``s_i = max_{c∈P_i}(1 − p_ic) · max_{c∈N_i} p_ic`` (P_i, N_i: the positive
   and negative classes): the classifier's belief in the most plausible one-label swap.
   The corruption order is a weighted sampling without replacement with weights
   ``s_i^γ`` (γ = ``sharpness``): with u_i the uniforms of :data:`STREAM_ORDER`, the keys
   ``log(−log(1 − u_i)) − γ·log s_i`` sorted ascending (stable) — exponential races, the
   first sample is i with probability ``s_i^γ / Σ s^γ`` (Efraimidis & Spirakis 2006). The
   first ⌊rate·N⌋ eligible samples of the order are corrupted, so higher rates corrupt
   supersets. γ = 0 is instance-independent (the order of ``nrch``/``symmetric``); large γ
   approaches Chen et al.'s deterministic "most confused first".
3. **What they receive** (C uniforms u_c per corrupted sample from :data:`STREAM_DRAWS`,
   by position in the order): one positive turns off, drawn with probability ∝
   ``(1 − p_ic)^γ`` over P_i, and one negative turns on, drawn ∝ ``p_ic^γ`` over N_i (the
   same races: argmin of ``log(−log(1 − u_c)) − γ·log w_c``). Single-label: the sample is
   relabelled to a wrong class drawn ∝ ``p^γ`` (for γ → ∞, the most confused class, as
   Chen et al.). The cardinality is kept and exactly two entries change.

Determinism: bit-identical for the same (features, labels, rate, seed, parameters) on the
same numpy/BLAS build. The classifier is float64 linear algebra, so another BLAS build can
change its outputs in the last bits; that moves a draw only where two keys agree to ~1e-13
relative.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy.linalg import cho_factor, cho_solve

from nrchbench.noise.base import (
    CHUNK_ROWS,
    STREAM_FEATURES,
    STREAM_ORDER,
    SampleNoiseModel,
    check_features,
    stream,
)
from nrchbench.params import Params
from nrchbench.registry import NOISE

__all__ = ["InstanceNoise", "InstanceParams", "clear_cache", "confusion_model"]

#: Probabilities are clipped to [EPS, 1 − EPS] so that every weight is positive.
EPS = 1e-6
#: Confusion models kept in memory (keyed by a hash of their inputs): a sweep over rates
#: and seeds on one dataset fits the classifier once.
CACHE_SIZE = 4
_CACHE: OrderedDict[str, tuple[np.ndarray, dict[str, Any]]] = OrderedDict()


class InstanceParams(Params):
    """Parameters of ``instance`` noise."""

    modality: Literal["both", "image", "text"] = Field("both", description="features the confusion classifier reads")
    sharpness: float = Field(
        1.0, ge=0, le=100, description="γ: weights s^γ (0: instance-independent; large: most confused first)"
    )
    ridge: float = Field(1e-2, gt=0, le=1e6, description="ridge penalty λ of the classifier (standardised features)")
    dim: int = Field(256, ge=1, le=8192, description="random-projection size when the features have more dimensions")
    projection_seed: int = Field(0, ge=0, description="seed of the random projection (not the noise seed)")


@dataclass
class _State:
    probs: np.ndarray  # N×C classifier probabilities in [EPS, 1 − EPS]
    score: np.ndarray  # N confusion scores (0 on ineligible rows)
    sharpness: float
    info: dict[str, Any]


def clear_cache() -> None:
    """Forget the cached confusion models."""
    _CACHE.clear()


def _digest(arrays: list[np.ndarray], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
    return h.hexdigest()


def _standardise_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and 1/std (1 where the std is 0) in float64, in row blocks."""
    n = x.shape[0]
    total = np.zeros(x.shape[1])
    for s in range(0, n, CHUNK_ROWS):
        total += x[s : s + CHUNK_ROWS].sum(0, dtype=np.float64)
    mean = total / n
    ss = np.zeros(x.shape[1])
    for s in range(0, n, CHUNK_ROWS):
        d = x[s : s + CHUNK_ROWS].astype(np.float64) - mean
        ss += (d * d).sum(0)
    std = np.sqrt(ss / n)
    return mean, np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0)


def _design(feats: list[np.ndarray], dim: int, projection_seed: int) -> tuple[np.ndarray, bool]:
    """X: the z-scored features, concatenated, projected to ``dim`` and z-scored again when wider."""
    n = feats[0].shape[0]
    widths = [f.shape[1] for f in feats]
    d = sum(widths)
    stats = [_standardise_stats(f) for f in feats]
    project = d > dim
    if project:
        r = np.where(stream(projection_seed, STREAM_FEATURES).random((d, dim)) < 0.5, -1.0, 1.0)
    out = np.empty((n, dim if project else d))
    for s in range(0, n, CHUNK_ROWS):
        blk = np.hstack([(f[s : s + CHUNK_ROWS].astype(np.float64) - m) * inv for f, (m, inv) in zip(feats, stats)])
        out[s : s + CHUNK_ROWS] = blk @ r if project else blk
    if project:
        m, inv = _standardise_stats(out)
        out -= m
        out *= inv
    return out, project


def confusion_model(
    feats: list[np.ndarray], y: np.ndarray, *, ridge: float, dim: int, projection_seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Leave-one-out ridge class probabilities ``p`` (N×C, clipped to [EPS, 1 − EPS]) and diagnostics.

    See the module docstring, step 1. Cached by a hash of the inputs. Memory: the design
    matrix, N × min(d, dim) float64.
    """
    key = _digest([*feats, y], f"{ridge!r}/{dim}/{projection_seed}")
    if key in _CACHE:
        _CACHE.move_to_end(key)
        probs, info = _CACHE[key]
        return probs.copy(), dict(info)
    n = y.shape[0]
    d_in = int(sum(f.shape[1] for f in feats))
    if n == 0:
        empty = {"classifier_dim": min(d_in, dim), "classifier_projected": d_in > dim}
        info = {"classifier": "ridge-loo", "classifier_input_dim": d_in, **empty}
        info.update(classifier_entry_accuracy=0.0, classifier_top1_in_labels=0.0, classifier_leverage_max=0.0)
        return np.full(y.shape, EPS), info
    x, projected = _design(feats, dim, projection_seed)
    yf = y.astype(np.float64)
    ybar = yf.mean(0)
    a = x.T @ x / n
    a[np.diag_indices_from(a)] += ridge
    cho = cho_factor(a)
    w = cho_solve(cho, x.T @ (yf - ybar) / n)
    a_inv = cho_solve(cho, np.eye(a.shape[0]))
    probs = np.empty_like(yf)
    lever = np.empty(n)
    for s in range(0, n, CHUNK_ROWS):
        xb, yb = x[s : s + CHUNK_ROWS], yf[s : s + CHUNK_ROWS]
        lever[s : s + CHUNK_ROWS] = 1.0 / n + ((xb @ a_inv) * xb).sum(1) / n
        fitted = xb @ w + ybar
        loo = yb - (yb - fitted) / np.maximum(1.0 - lever[s : s + CHUNK_ROWS], 1e-12)[:, None]
        probs[s : s + CHUNK_ROWS] = np.clip(loo, EPS, 1.0 - EPS)
    pos = y.astype(bool)
    info = {
        "classifier": "ridge-loo",
        "classifier_input_dim": d_in,
        "classifier_dim": int(x.shape[1]),
        "classifier_projected": bool(projected),
        "classifier_entry_accuracy": float(((probs > 0.5) == pos).mean()),
        "classifier_top1_in_labels": float(pos[np.arange(n), probs.argmax(1)].mean()),
        "classifier_leverage_max": float(lever.max()),
    }
    _CACHE[key] = (probs.copy(), dict(info))
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return probs, info


def _races(draws: np.ndarray, log_w: np.ndarray, mask: np.ndarray, sharpness: float) -> np.ndarray:
    """Per row, the entry of ``mask`` drawn with probability ∝ w^γ (exponential races on the draws)."""
    with np.errstate(divide="ignore"):
        key = np.log(-np.log1p(-draws)) - sharpness * log_w
    return np.where(mask, key, np.inf).argmin(1)


@NOISE.register("instance")
class InstanceNoise(SampleNoiseModel):
    """Instance-dependent noise: a leave-one-out ridge classifier's confusions pick the samples and their new label.

    See the module docstring for the exact construction. Needs the training features
    (``needs_features``). Ineligible: rows with no positive or no negative.
    """

    name = "instance"
    description = (
        "Instance-dependent: samples a linear classifier confuses are corrupted more often, "
        "to the classes it confuses them with (needs features)."
    )
    Params = InstanceParams
    needs_features = True
    ineligible_reason = "they have no positive or no negative label to swap"

    def prepare(
        self, y: np.ndarray, seed: int, params: dict[str, Any], *, features: Any = None, **inputs: Any
    ) -> tuple[dict[str, Any], _State]:
        used = ("image", "text") if params["modality"] == "both" else (params["modality"],)
        checked = check_features(features, y.shape[0], used, self.owner())
        probs, info = confusion_model(
            [checked[m] for m in used],
            y,
            ridge=params["ridge"],
            dim=params["dim"],
            projection_seed=params["projection_seed"],
        )
        pos = y.astype(bool)
        score = np.where(pos, 1.0 - probs, 0.0).max(1) * np.where(pos, 0.0, probs).max(1)
        return dict(params), _State(probs=probs, score=score, sharpness=float(params["sharpness"]), info=info)

    def eligible(self, y: np.ndarray, state: _State) -> np.ndarray:
        k = y.sum(1, dtype=np.int64)
        return (k >= 1) & (k <= y.shape[1] - 1)

    def order_keys(self, y: np.ndarray, seed: int, state: _State) -> np.ndarray:
        u = stream(seed, STREAM_ORDER).random(y.shape[0])
        with np.errstate(divide="ignore"):
            return np.log(-np.log1p(-u)) - state.sharpness * np.log(np.maximum(state.score, EPS * EPS))

    def width(self, n_classes: int) -> int:
        return n_classes

    def corrupt_rows(self, index: np.ndarray, rows: np.ndarray, draws: np.ndarray, state: _State) -> np.ndarray:
        p = state.probs[index]
        pos = rows.astype(bool)
        off = _races(draws, np.log1p(-p), pos, state.sharpness)
        on = _races(draws, np.log(p), ~pos, state.sharpness)
        out = rows.copy()
        r = np.arange(rows.shape[0])
        out[r, off] = 0
        out[r, on] = 1
        return out

    def report_extra(self, y: np.ndarray, noisy: np.ndarray, corrupted: np.ndarray, state: _State) -> dict[str, Any]:
        elig = self.eligible(y, state)
        pos = y[corrupted].astype(bool)
        p = state.probs[corrupted]
        turned_on = (noisy[corrupted] > y[corrupted]).argmax(1)
        turned_off = (noisy[corrupted] < y[corrupted]).argmax(1)
        m = int(np.count_nonzero(corrupted))
        return {
            **state.info,
            "confusion_mean_eligible": float(state.score[elig].mean()) if elig.any() else 0.0,
            "confusion_mean_corrupted": float(state.score[corrupted].mean()) if m else 0.0,
            "frac_to_most_confused": float((turned_on == np.where(pos, -1.0, p).argmax(1)).mean()) if m else 0.0,
            "frac_off_least_confident": float((turned_off == np.where(pos, 1.0 - p, -1.0).argmax(1)).mean())
            if m
            else 0.0,
        }
