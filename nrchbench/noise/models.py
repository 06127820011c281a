"""The built-in noise models: ``nrch``, ``symmetric``, ``asymmetric``, ``bitflip`` (PROTOCOL §2).

The seeding, draw order, exact-rate and nesting rules shared by the sample-level models are
in :mod:`nrchbench.noise.base`. Each class documents its per-sample draws and which rows it
treats as *ineligible* (rows it cannot change; never selected; if fewer than ⌊rate·N⌋ rows
are eligible, :meth:`~nrchbench.noise.base.NoiseModel.apply` raises a ConfigError).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, StrictInt, ValidationInfo, field_validator

from nrchbench.errors import ConfigError
from nrchbench.noise.base import (
    CHUNK_ROWS,
    STREAM_DRAWS,
    STREAM_PARAMS,
    NoiseModel,
    SampleNoiseModel,
    stream,
)
from nrchbench.params import Params
from nrchbench.registry import NOISE

__all__ = ["AsymmetricNoise", "AsymmetricParams", "BitflipNoise", "BitflipParams", "NRCHNoise", "SymmetricNoise"]


def _cardinality(y: np.ndarray) -> np.ndarray:
    return y.sum(1, dtype=np.int64)


@NOISE.register("one-swap")
class NRCHNoise(SampleNoiseModel):
    """NRCH official generator: one random positive off, one random negative on (cardinality kept).

    Draws per corrupted sample: ``C`` uniforms ``u``; the positive turned off is the
    positive class with the largest ``u``, the negative turned on the negative class with
    the largest ``u`` (each uniform over its set). Ineligible: rows with no positive or no
    negative (the official code would then change only one entry, breaking the
    "cardinality kept, exactly 2 entries flipped" property).
    """

    name = "one-swap"
    description = "NRCH official generator: one random positive off and one random negative on (cardinality kept)."
    ineligible_reason = "they have no positive or no negative label to swap"

    def eligible(self, y: np.ndarray, state: Any) -> np.ndarray:
        k = _cardinality(y)
        return (k >= 1) & (k <= y.shape[1] - 1)

    def width(self, n_classes: int) -> int:
        return n_classes

    def corrupt(self, rows: np.ndarray, draws: np.ndarray, state: Any) -> np.ndarray:
        pos = rows.astype(bool)
        r = np.arange(rows.shape[0])
        c_off = np.where(pos, draws, -1.0).argmax(1)
        c_on = np.where(pos, -1.0, draws).argmax(1)
        out = rows.copy()
        out[r, c_off] = 0
        out[r, c_on] = 1
        return out


@NOISE.register("symmetric")
class SymmetricNoise(SampleNoiseModel):
    """Uniform relabelling: a uniformly drawn different class / label set of the same size.

    For a row with k positives out of C classes the new set is uniform over the
    ``binom(C, k) − 1`` size-k sets that differ from the true set (single-label, k = 1: a
    uniformly drawn different class). Rejection-free, so every row uses exactly ``C + 1``
    uniforms ``(u0, u_1..u_C)``: ``u0`` picks the overlap ``m = |new ∩ true|`` by inverse
    CDF of ``P(m) ∝ binom(k, m)·binom(C−k, k−m)``, m < k; the new set keeps the ``m``
    positives with the smallest ``u_c`` and adds the ``k − m`` negatives with the smallest
    ``u_c`` (ties, probability ~2⁻⁵³, by class index). Ineligible: rows
    with k = 0 or k = C (no other set of that size exists).
    """

    name = "symmetric"
    description = "Relabel to a uniformly drawn different class (multi-label: a different label set of the same size)."
    ineligible_reason = "they have no label or every label (no different set of the same size exists)"

    def prepare(self, y: np.ndarray, seed: int, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        c = y.shape[1]
        ks = np.unique(_cardinality(y))
        table = np.full((c + 1, c), 2.0)  # 2.0 > any uniform: never counted
        for k in (int(v) for v in ks if 1 <= v <= c - 1):
            w = [math.comb(k, m) * math.comb(c - k, k - m) for m in range(k)]
            total = sum(w)  # = binom(C, k) − 1
            cum = 0
            for m in range(k):
                cum += w[m]
                table[k, m] = cum / total  # exact int division, correctly rounded; last is 1.0
        return params, table

    def eligible(self, y: np.ndarray, state: Any) -> np.ndarray:
        k = _cardinality(y)
        return (k >= 1) & (k <= y.shape[1] - 1)

    def width(self, n_classes: int) -> int:
        return n_classes + 1

    def corrupt(self, rows: np.ndarray, draws: np.ndarray, state: Any) -> np.ndarray:
        k = _cardinality(rows)
        m = (state[k] <= draws[:, :1]).sum(1)
        keys = draws[:, 1:]
        pos = rows.astype(bool)
        keep = _smallest(keys, pos, m) | _smallest(keys, ~pos, k - m)
        return keep.astype(np.uint8)


def _smallest(keys: np.ndarray, mask: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per row i, mark the ``counts[i]`` entries of ``mask`` with the smallest keys (ties: lower index).

    Repeated argmin over the rows that still need entries: counts are small (≤ the label
    cardinality), so this is much cheaper than sorting every row.
    """
    sel = np.zeros(keys.shape, dtype=bool)
    work = np.where(mask, keys, np.inf)
    live = np.flatnonzero(counts > 0)
    taken = 0
    while live.size:
        j = work.argmin(1) if live.size == work.shape[0] else work[live].argmin(1)
        sel[live, j] = True
        work[live, j] = np.inf
        taken += 1
        live = live[counts[live] > taken]
    return sel


def _check_involution(perm: np.ndarray, c: int, what: str) -> np.ndarray:
    if perm.shape != (c,) or not np.array_equal(np.sort(perm), np.arange(c)):
        raise ConfigError(f"noise model 'asymmetric': {what} must be a permutation of 0..{c - 1}, got {perm.tolist()}")
    if not np.array_equal(perm[perm], np.arange(c)):
        raise ConfigError(
            f"noise model 'asymmetric': {what} must be an involution (π(π(c)) = c, classes swapped in pairs); "
            f"got {perm.tolist()}"
        )
    return perm


def _perm_from_pairs(pairs: list[list[int]], c: int) -> np.ndarray:
    # Types, shapes and repeated classes are checked by AsymmetricParams; the range needs C.
    perm = np.arange(c)
    for a, b in pairs:
        if not (0 <= a < c and 0 <= b < c):
            raise ConfigError(
                f"noise model 'asymmetric': bad pair [{a}, {b}] in 'pairs': classes must be in 0..{c - 1}"
            )
        perm[a], perm[b] = b, a
    return perm


def _perm_random(c: int, seed: int) -> np.ndarray:
    # MRL's pairing made symmetric: shuffled classes, inx[i] ↔ inx[half + i].
    inx = np.argsort(stream(seed, STREAM_PARAMS).random(c), kind="stable")
    half = c // 2
    perm = np.arange(c)
    perm[inx[:half]] = inx[half : 2 * half]
    perm[inx[half : 2 * half]] = inx[:half]
    return perm


def _perm_cooccurrence(y: np.ndarray) -> np.ndarray:
    # Greedy: pairs (a < b) by decreasing co-occurrence count, ties by (a, b); a pair is
    # taken when both classes are still free. Deterministic and seed-free.
    yf = y.astype(np.float64)
    co = yf.T @ yf
    c = y.shape[1]
    a, b = np.triu_indices(c, k=1)
    cnt = co[a, b]
    order = np.lexsort((b, a, -cnt))
    perm = np.arange(c)
    free = np.ones(c, dtype=bool)
    for t in order:
        i, j = a[t], b[t]
        if free[i] and free[j]:
            perm[i], perm[j] = j, i
            free[i] = free[j] = False
    return perm


class AsymmetricParams(Params):
    """Parameters of ``asymmetric`` noise (the class pairing π)."""

    mode: Literal["random", "cooccurrence"] = Field(
        "random",
        description="random: pairing drawn from the seed; cooccurrence: most co-occurring classes paired (seed-free)",
    )
    pairs: list[list[StrictInt]] | None = Field(
        None, description="the pairing given as [[a, b], ...] (classes swapped; unlisted classes fixed)"
    )
    permutation: list[StrictInt] | None = Field(None, description="the pairing given as an involution of 0..C-1")

    @field_validator("mode", mode="before")
    @classmethod
    def _lower_mode(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("pairs")
    @classmethod
    def _check_pairs(cls, v: list[list[int]] | None, info: ValidationInfo) -> list[list[int]] | None:
        if v is None:
            return v
        if info.data.get("mode", "random") != "random":
            raise ValueError(f"mode {info.data['mode']!r} draws its own pairing; drop 'pairs'/'permutation'")
        seen: set[int] = set()
        for p in v:
            if len(p) != 2:
                raise ValueError(f"'pairs' must be a list of [a, b] class indices; {p} is not a pair")
            a, b = p
            if a == b or a in seen or b in seen:
                raise ValueError(f"bad pair [{a}, {b}]: classes must be distinct and each used at most once")
            seen.update((a, b))
        return v

    @field_validator("permutation")
    @classmethod
    def _check_permutation(cls, v: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if v is None:
            return v
        if info.data.get("pairs") is not None:
            raise ValueError("give either 'pairs' or 'permutation', not both")
        if info.data.get("mode", "random") != "random":
            raise ValueError(f"mode {info.data['mode']!r} draws its own pairing; drop 'pairs'/'permutation'")
        return v


@NOISE.register("asymmetric")
class AsymmetricNoise(SampleNoiseModel):
    """Class-dependent flip through a class involution π (c → π(c); multi-label: every positive moves).

    π is (param ``mode``) ``"random"``: classes shuffled from the seed and paired
    ``inx[i] ↔ inx[C//2 + i]`` (odd C: one fixed point); ``"cooccurrence"``: greedy
    pairing of the most co-occurring classes of the given clean labels (ties by class
    index; with no co-occurrence, e.g. single-label data, pairs follow index order); or
    given as ``pairs`` ([[a, b], ...], unlisted classes fixed) or ``permutation`` (an
    involution of 0..C−1). No per-sample draws: the noisy row is ``y[π⁻¹]``. Ineligible:
    rows with π(y) = y (all positives fixed points or closed under π).
    """

    name = "asymmetric"
    description = (
        "Class-dependent flip through a fixed class pairing π (random from the seed, given, or co-occurrence)."
    )
    Params = AsymmetricParams
    ineligible_reason = "π maps their label set onto itself"

    def prepare(self, y: np.ndarray, seed: int, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        c = y.shape[1]
        mode = params["mode"]
        pairs, permutation = params["pairs"], params["permutation"]
        if permutation is not None:
            perm = _check_involution(np.asarray(permutation, dtype=np.int64), c, "'permutation'")
            mode = "given"
        elif pairs is not None:
            perm = _perm_from_pairs(pairs, c)
            mode = "given"
        elif mode == "cooccurrence":
            perm = _perm_cooccurrence(y)
        else:
            perm = _perm_random(c, seed)
        out = {
            "mode": mode,
            "permutation": [int(v) for v in perm],
            "pairs": [[int(a), int(perm[a])] for a in range(c) if perm[a] > a],
            "fixed_points": [int(a) for a in range(c) if perm[a] == a],
        }
        inverse = np.argsort(perm)
        return out, inverse

    def eligible(self, y: np.ndarray, state: Any) -> np.ndarray:
        out = np.empty(y.shape[0], dtype=bool)
        for start in range(0, y.shape[0], CHUNK_ROWS):
            blk = y[start : start + CHUNK_ROWS]
            out[start : start + CHUNK_ROWS] = (blk[:, state] != blk).any(1)
        return out

    def corrupt(self, rows: np.ndarray, draws: np.ndarray, state: Any) -> np.ndarray:
        # noisy[π(c)] = y[c]  ⇔  noisy = y[:, π⁻¹]
        return rows[:, state]


class BitflipParams(Params):
    """Parameters of ``bitflip`` noise."""

    rho_neg: float | None = Field(
        None, ge=0, le=1, description="probability that a negative turns on (default: cardinality-balanced)"
    )

    @field_validator("rho_neg", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a number in [0, 1], not a bool")
        return v


@NOISE.register("bitflip")
class BitflipNoise(NoiseModel):
    """Per-entry flips: each positive turns off with ρ+ = rate, each negative turns on with ρ−.

    ρ− (param ``rho_neg``) defaults to ρ+·k̄/(C − k̄) with k̄ the mean clean cardinality
    (cardinality-balanced; clipped to 1; 0 when k̄ = C). One uniform matrix U (N×C,
    row-major, :data:`~nrchbench.noise.base.STREAM_DRAWS`) per seed: an entry flips iff
    U < ρ of its sign, so higher rates flip supersets. ``corrupted`` = rows with at least
    one flip. Rows that lose every label are allowed and counted (``rows_emptied``).
    """

    name = "bitflip"
    description = (
        "Per-entry flips: positives off with rho+ (= rate), negatives on with rho- (default cardinality-balanced)."
    )
    unit = "entry"
    Params = BitflipParams

    def _apply(
        self, y: np.ndarray, rate: float, seed: int, params: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
        n, c = y.shape
        k_mean = float(y.sum(dtype=np.int64) / n) if n else 0.0
        rho_neg = params["rho_neg"]
        if rho_neg is None:
            rule = "balanced"
            rho_neg = min(1.0, rate * k_mean / (c - k_mean)) if c - k_mean > 0 else 0.0
        else:
            rule = "given"
            rho_neg = float(rho_neg)
        rng = stream(seed, STREAM_DRAWS)
        noisy = np.empty_like(y)
        corrupted = np.empty(n, dtype=bool)
        pos_flips = neg_flips = 0
        for start in range(0, n, CHUNK_ROWS):
            blk = y[start : start + CHUNK_ROWS]
            u = rng.random(blk.shape)
            pos = blk.astype(bool)
            flip_pos = pos & (u < rate)
            flip_neg = ~pos & (u < rho_neg)
            pos_flips += int(np.count_nonzero(flip_pos))
            neg_flips += int(np.count_nonzero(flip_neg))
            flip = flip_pos | flip_neg
            noisy[start : start + CHUNK_ROWS] = blk ^ flip
            corrupted[start : start + CHUNK_ROWS] = flip.any(1)
        n_pos = int(y.sum(dtype=np.int64))
        n_neg = n * c - n_pos
        emptied = int(np.count_nonzero((_cardinality(noisy) == 0) & (_cardinality(y) > 0)))
        params_out = {"rho_pos": rate, "rho_neg": rho_neg, "rho_neg_rule": rule, "k_mean": k_mean}
        extra = {
            "frac_pos_flipped": pos_flips / n_pos if n_pos else 0.0,
            "frac_neg_flipped": neg_flips / n_neg if n_neg else 0.0,
            "rows_emptied": emptied,
            "frac_rows_emptied": emptied / n if n else 0.0,
        }
        return noisy, corrupted, params_out, extra
