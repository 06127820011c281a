"""Label-noise machinery shared by every noise model (PROTOCOL.md §2).

A noise model turns clean training labels ``Y`` (N×C, {0,1}) into noisy labels and reports
what it did. :class:`NoiseModel` owns validation, seeding, the realised-noise report and
the guarantees; a model implements a few hooks.

Randomness and draw order (fixed; changing it changes every published noise draw):

* Every random number comes from ``np.random.default_rng([seed, stream])`` (PCG64 seeded
  through ``SeedSequence``) and only as float64 uniforms from ``Generator.random`` (the
  bit generator's ``next_double``), which is the same on every machine. Sorting uses
  stable sorts, so ties (probability ~2⁻⁵³) are broken by index.
* Independent streams per purpose: :data:`STREAM_ORDER` (sample order),
  :data:`STREAM_DRAWS` (per-sample or per-entry draws), :data:`STREAM_PARAMS` (model
  parameters drawn from the seed, e.g. the asymmetric class pairing),
  :data:`STREAM_PAIRS` (the pair sample of the report when N is large) and
  :data:`STREAM_FEATURES` (draws seeded by a model parameter instead of the noise seed,
  e.g. ``instance``'s random projection). Because the sample
  order has its own stream, the sample-level models corrupt the same samples at one
  (seed, rate) whenever their eligible rows coincide.
* Draws are generated in row blocks of :data:`CHUNK_ROWS` rows; ``Generator.random`` fills
  sequentially, so the blocking never changes the values.

Sample-level models (``unit == "sample"``):

1. ``eligible`` = rows whose labels *can* be changed by the model (e.g. ``nrch`` needs at
   least one positive and one negative). Ineligible rows are never corrupted.
2. ``M = ⌊rate·N⌋`` over all N rows, exactly, with ``rate`` read as the decimal it prints
   as (so 0.29·100 is 29, not the float product's 28); if fewer than M rows are eligible a
   :class:`~nrchbench.errors.ConfigError` says so.
3. One uniform key per row (all N rows, :data:`STREAM_ORDER`); the eligible rows sorted by
   key (stable) form the corruption order; the first ``M`` of them are corrupted.
4. The sample at position ``p`` of that order takes row ``p`` of a ``(M, width)`` matrix of
   uniforms from :data:`STREAM_DRAWS` (``width`` is model-specific).

Steps 3–4 give nesting: at a higher rate the order is the same, so the corrupted set grows
by a suffix, and the draws of position ``p`` are the same values (a longer prefix of the
same stream), so a sample corrupted at both rates gets the same noisy labels. A model may
replace the uniform keys of step 3 by keys of its own (:meth:`SampleNoiseModel.order_keys`,
e.g. ``instance`` weights them by the sample's features); the order stays rate-free.

Declared capabilities (class attributes of :class:`NoiseModel`):

* ``Params``: the model's parameters as a :class:`~nrchbench.params.Params` model;
  ``Model.Params.check(values, owner=...)`` refuses unknown or ill-typed values with one line
  (the spec resolver calls it, so a bad value never reaches a run).
* ``needs_features``: the model reads the training features; callers pass
  ``features=(image, text)`` (N-row arrays, or ``None`` for a modality it does not use).
* ``corrupts``: ``"labels"`` (the labels change) or ``"pairs"`` (the image–text pairing
  changes: the result has ``text_index`` and the labels are untouched).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Integral, Real
from typing import Any, ClassVar, Literal

import numpy as np

from nrchbench.errors import ConfigError, DataError
from nrchbench.params import Params, params_from_defaults

log = logging.getLogger(__name__)

STREAM_ORDER = 0
STREAM_DRAWS = 1
STREAM_PARAMS = 2
STREAM_PAIRS = 3
#: Model-internal draws that are not tied to the noise seed (e.g. ``instance``'s projection).
STREAM_FEATURES = 4

#: Bumped whenever the draw order changes (recorded in every report as ``draw_version``).
DRAW_VERSION = 1

#: Rows per block of random draws (bounds memory; does not change any value).
CHUNK_ROWS = 1 << 15
#: Above this many samples ``frac_pairs_changed`` is estimated from sampled pairs.
EXACT_PAIRS_MAX_N = 50_000
#: Number of sampled pairs for the estimate.
PAIR_SAMPLES = 1_000_000
#: Target size (entries) of one block of the exact pairwise computation.
_PAIR_BLOCK = 1 << 22


def stream(seed: int, purpose: int) -> np.random.Generator:
    """The PCG64 generator of one purpose (``STREAM_*``) for ``seed``."""
    return np.random.default_rng([int(seed), int(purpose)])


@dataclass
class NoisyLabels:
    """The output of a noise model.

    Attributes:
        labels: noisy labels, N×C uint8 in {0,1}.
        clean_mask: bool N, True where the noisy row equals the clean row.
        corrupted: bool N, the samples the model selected (sample-level models: exactly
            ⌊rate·N⌋ of them, each differing from its clean row) or altered (``bitflip``:
            the rows where at least one entry flipped). Equal to ``~clean_mask`` for the
            built-in models.
        report: the realised-noise report (JSON-serialisable; see :func:`noise_report`).
        text_index: ``None`` for label-noise models. For a ``corrupts = "pairs"`` model, an
            int64 permutation of the N training rows: row ``i`` is paired with the text of
            row ``text_index[i]`` (``i`` itself on intact pairs); the labels are unchanged.
            Apply it as ``text_train = text_train[text_index]`` before a method sees the data.
    """

    labels: np.ndarray
    clean_mask: np.ndarray
    corrupted: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)
    text_index: np.ndarray | None = None

    @property
    def n_corrupted(self) -> int:
        return int(np.count_nonzero(self.corrupted))


# ---------------------------------------------------------------------------- validation
def check_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a C-contiguous uint8 N×C array or raise a one-line error."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D N×C array of 0/1, got shape {arr.shape}; reshape it to (samples, classes)"
        )
    if arr.shape[1] == 0:
        raise DataError(f"{name} has no classes (shape {arr.shape}); expected N×C with C ≥ 1")
    if arr.dtype == np.uint8 or arr.dtype == np.bool_:
        bad = arr.dtype == np.uint8 and arr.size and int(arr.max()) > 1
    elif np.issubdtype(arr.dtype, np.number):
        bad = arr.size and not bool(((arr == 0) | (arr == 1)).all())
    else:
        raise DataError(f"{name} must be numeric 0/1, got dtype {arr.dtype}")
    if bad:
        r, c = np.argwhere((arr != 0) & (arr != 1))[0]
        raise DataError(
            f"{name} must be binary (0/1): found {arr[r, c]!r} at row {r}, column {c}; binarise the label matrix"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def check_rate(rate: Any) -> float:
    """Return ``rate`` as a float in [0, 1] or raise a one-line :class:`ConfigError`."""
    if isinstance(rate, bool) or not isinstance(rate, Real) or not math.isfinite(float(rate)):
        raise ConfigError(f"noise rate must be a number in [0, 1], got {rate!r}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ConfigError(f"noise rate must be in [0, 1], got {rate!r}")
    return float(rate)


def check_seed(seed: Any) -> int:
    """Return ``seed`` as a non-negative int or raise a one-line :class:`ConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ConfigError(f"noise seed must be a non-negative integer, got {seed!r}")
    return int(seed)


MODALITIES = ("image", "text")


def check_features(features: Any, n: int, needed: tuple[str, ...], owner: str) -> dict[str, np.ndarray]:
    """The needed modalities of ``features = (image, text)`` as checked N-row arrays (dtype kept).

    Args:
        features: a pair ``(image, text)`` of N×d arrays (numpy, torch or anything
            ``np.asarray`` reads); a modality that is not needed may be ``None``.
        n: the number of label rows the features must match.
        needed: the modalities used (``"image"``, ``"text"``).
        owner: who asks, for messages (e.g. ``"noise model 'instance'"``).

    Raises:
        ConfigError: no features or not a pair. DataError: a needed modality is missing, not
            2-D with N rows, not numeric, or not finite.
    """
    if features is None:
        raise ConfigError(
            f"{owner} needs the training features: pass features=(image, text) with one row per label row"
        )
    if not isinstance(features, (tuple, list)) or len(features) != 2:
        raise ConfigError(
            f"{owner}: features must be a pair (image, text) of N-row arrays, got {type(features).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    for name, value in zip(MODALITIES, features):
        if name not in needed:
            continue
        if value is None:
            raise DataError(f"{owner} uses the {name} features but features[{MODALITIES.index(name)}] is None")
        if hasattr(value, "detach") and callable(value.detach):  # torch.Tensor
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
            raise DataError(
                f"{owner}: {name} features must be a 2-D array with {n} rows (one per label row) and at least one "
                f"column, got shape {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise DataError(f"{owner}: {name} features must be numeric, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise DataError(f"{owner}: {name} features must be real numbers, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            r, c = np.argwhere(~np.isfinite(arr))[0]
            raise DataError(f"{owner}: {name} features hold a non-finite value ({arr[r, c]}) at row {r}, column {c}")
        out[name] = arr
    return out


def n_to_corrupt(rate: float, n: int) -> int:
    """⌊rate·n⌋ with ``rate`` read as the decimal it prints as (0.29·100 → 29, not 28)."""
    return math.floor(Fraction(repr(float(rate))) * n)


# ---------------------------------------------------------------------------- report
def row_flips(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """Number of entries that differ per row (int64 N), computed in row blocks."""
    out = np.empty(clean.shape[0], dtype=np.int64)
    for start in range(0, clean.shape[0], CHUNK_ROWS):
        blk = slice(start, start + CHUNK_ROWS)
        out[blk] = np.count_nonzero(noisy[blk] != clean[blk], axis=1)
    return out


def pairs_changed(clean: np.ndarray, noisy: np.ndarray, changed: np.ndarray, seed: int) -> dict[str, Any]:
    """Fraction of pairs i<j whose similarity 1[share ≥ 1 label] differs between clean and noisy.

    Exact for ``N ≤ EXACT_PAIRS_MAX_N``: only pairs touching a changed row can change, so
    the changed rows are put first and each is compared (float32 label products, exact
    for counts < 2²⁴) with every row after it. Above that size, ``PAIR_SAMPLES`` unordered
    pairs are drawn uniformly (with replacement, :data:`STREAM_PAIRS`) and the result is
    an estimate (``pairs_estimated: true`` with its standard error).
    """
    n = clean.shape[0]
    total_pairs = n * (n - 1) // 2
    if total_pairs == 0:
        return {"frac_pairs_changed": 0.0, "pairs_estimated": False}
    idx = np.flatnonzero(changed)
    m = idx.size
    if m == 0:
        return {"frac_pairs_changed": 0.0, "pairs_estimated": False}
    if n <= EXACT_PAIRS_MAX_N:
        order = np.concatenate([idx, np.flatnonzero(~changed)])
        yc = clean[order].astype(np.float32)
        yn = noisy[order].astype(np.float32)
        count = 0
        block = max(1, _PAIR_BLOCK // n)
        for a in range(0, m, block):
            b = min(m, a + block)
            # Rows a..b-1 against every row after a: (row t, column j) is the pair
            # (a+t, a+1+j), valid when j ≥ t.
            sc = (yc[a:b] @ yc[a + 1 :].T) > 0.5
            sn = (yn[a:b] @ yn[a + 1 :].T) > 0.5
            d = sc != sn
            w = min(b - a, d.shape[1])
            count += int(np.count_nonzero(d)) - int(np.count_nonzero(np.tril(d[:, :w], k=-1)))
        return {"frac_pairs_changed": count / total_pairs, "pairs_estimated": False}
    i, j = _pair_sample(n, seed)
    touched = changed[i] | changed[j]
    it, jt = i[touched], j[touched]
    return _estimated(int(np.count_nonzero((clean[it] & clean[jt]).any(1) != (noisy[it] & noisy[jt]).any(1))))


def _pair_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``PAIR_SAMPLES`` pairs (i, j), i ≠ j, uniform with replacement (:data:`STREAM_PAIRS`)."""
    u = stream(seed, STREAM_PAIRS).random((PAIR_SAMPLES, 2))
    i = np.minimum((u[:, 0] * n).astype(np.int64), n - 1)
    j = np.minimum((u[:, 1] * (n - 1)).astype(np.int64), n - 2)
    j += j >= i  # uniform over j ≠ i
    return i, j


def _estimated(n_changed: int) -> dict[str, Any]:
    p = n_changed / PAIR_SAMPLES
    return {
        "frac_pairs_changed": p,
        "pairs_estimated": True,
        "pairs_sampled": PAIR_SAMPLES,
        "frac_pairs_changed_se": math.sqrt(max(p * (1 - p), 0.0) / PAIR_SAMPLES),
    }


def crossmodal_pairs_changed(y: np.ndarray, text_index: np.ndarray, seed: int) -> dict[str, Any]:
    """Fraction of ordered training pairs (image i, text row k), i ≠ k, whose similarity is wrong.

    After a pairing corruption the labels still say that image ``i`` and the text at row
    ``k`` are similar iff ``y_i·y_k > 0``; in truth that text is the text of row
    ``t = text_index[k]``, so they are similar iff ``y_i·y_t > 0``. For label noise the same
    count over ordered pairs equals :func:`pairs_changed` over unordered pairs (both
    directions of a pair change together), so the two statistics are one quantity: the
    fraction of pairwise similarities a method is told wrongly.

    Exact for ``N ≤ EXACT_PAIRS_MAX_N`` (only columns ``k`` with ``t ≠ k`` can differ);
    above that, ``PAIR_SAMPLES`` ordered pairs are drawn (:data:`STREAM_PAIRS`) and the
    result is an estimate with its standard error.
    """
    n = y.shape[0]
    total = n * (n - 1)
    moved = np.flatnonzero(text_index != np.arange(n))
    if total == 0 or moved.size == 0:
        return {"frac_pairs_changed": 0.0, "pairs_estimated": False}
    if n <= EXACT_PAIRS_MAX_N:
        yf = y.astype(np.float32)
        count = 0
        block = max(1, _PAIR_BLOCK // n)
        for a in range(0, moved.size, block):
            cols = moved[a : a + block]
            told = (yf @ yf[cols].T) > 0.5
            true = (yf @ yf[text_index[cols]].T) > 0.5
            d = told != true
            d[cols, np.arange(cols.size)] = False  # i = k is the pair itself, not counted here
            count += int(np.count_nonzero(d))
        return {"frac_pairs_changed": count / total, "pairs_estimated": False}
    i, k = _pair_sample(n, seed)  # ordered: (image i, text row k)
    t = text_index[k]
    touched = t != k
    it, kt, tt = i[touched], k[touched], t[touched]
    return _estimated(int(np.count_nonzero((y[it] & y[kt]).any(1) != (y[it] & y[tt]).any(1))))


def noise_report(
    clean: np.ndarray,
    noisy: np.ndarray,
    corrupted: np.ndarray,
    *,
    model: str,
    rate: float,
    seed: int,
    params: dict[str, Any],
    unit: str,
    extra: dict[str, Any] | None = None,
    flips: np.ndarray | None = None,
    pairs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The realised-noise report (PROTOCOL §2): every value a JSON number, bool, string or list.

    ``flips`` (optional) is :func:`row_flips` of (clean, noisy) if the caller has it;
    ``pairs`` (optional) replaces the label-pair statistic of :func:`pairs_changed` (a
    pairing corruption gives :func:`crossmodal_pairs_changed`).
    """
    n, c = clean.shape
    per_row = row_flips(clean, noisy) if flips is None else flips
    flipped = int(per_row.sum())
    changed = per_row > 0
    rep: dict[str, Any] = {
        "model": model,
        "draw_version": DRAW_VERSION,
        "rate": float(rate),
        "seed": int(seed),
        "params": params,
        "unit": unit,
        "n_samples": int(n),
        "n_classes": int(c),
        "n_corrupted": int(np.count_nonzero(corrupted)),
        "frac_samples_corrupted": float(np.count_nonzero(corrupted) / n) if n else 0.0,
        "frac_entries_flipped": float(flipped / (n * c)) if n else 0.0,
    }
    rep.update(pairs_changed(clean, noisy, changed, seed) if pairs is None else pairs)
    rep["cardinality_clean_mean"] = float(clean.sum(dtype=np.int64) / n) if n else 0.0
    rep["cardinality_noisy_mean"] = float(noisy.sum(dtype=np.int64) / n) if n else 0.0
    rep.update(extra or {})
    return rep


# ---------------------------------------------------------------------------- models
class NoiseModel:
    """Base class of noise-model plugins.

    Subclasses set the class attributes and implement :meth:`_apply` (or, for
    sample-level models, subclass :class:`SampleNoiseModel`; for pairing corruptions set
    ``corrupts = "pairs"`` and implement :meth:`_apply_pairs`). Register with
    ``@NOISE.register("name")`` and declare the class in the ``nrchbench.noise``
    entry-point group. The constructor only stores parameters; :meth:`apply` validates.

    Attributes:
        name: registry key.
        description: one line for ``nrchbench list noise``.
        unit: ``"sample"`` (rate = fraction of samples corrupted) or ``"entry"``
            (rate = per-entry probability or fraction of entries).
        Params: the accepted parameters (a :class:`~nrchbench.params.Params` model). A
            plugin that still declares a plain ``defaults = {...}`` dict gets a model built
            from it (:func:`~nrchbench.params.params_from_defaults`).
        needs_features: ``True`` if :meth:`apply` needs ``features=(image, text)``.
        corrupts: ``"labels"`` or ``"pairs"`` (see the module docstring).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    unit: ClassVar[str] = "sample"
    Params: ClassVar[type[Params]] = Params
    needs_features: ClassVar[bool] = False
    corrupts: ClassVar[Literal["labels", "pairs"]] = "labels"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("defaults")
        if isinstance(legacy, dict) and "Params" not in cls.__dict__:
            cls.Params = params_from_defaults(f"{cls.__name__}Params", legacy)

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    @classmethod
    def owner(cls) -> str:
        """How messages name this model: ``noise model 'x'``."""
        return f"noise model {cls.name or cls.__name__!r}"

    def check_params(self) -> Params:
        """The given parameters validated by :attr:`Params` (one-line :class:`ConfigError`)."""
        return self.Params.check(self.params, owner=self.owner())

    def apply(self, labels: Any, rate: float, seed: int, *, features: Any = None) -> NoisyLabels:
        """Corrupt ``labels`` (N×C, {0,1}) at ``rate`` with ``seed``; see the module docstring.

        ``features`` (``(image, text)``, N rows each) is read only by models that declare
        ``needs_features``; others ignore it.
        """
        y = check_labels(labels)
        rate = check_rate(rate)
        seed = check_seed(seed)
        params = self.check_params().model_dump()
        inputs = {"features": features} if self.needs_features else {}
        if self.corrupts == "pairs":
            return self._finish_pairs(y, rate, seed, *self._apply_pairs(y, rate, seed, params, **inputs))
        noisy, corrupted, params_out, extra = self._apply(y, rate, seed, params, **inputs)
        flips = row_flips(y, noisy)
        if (corrupted & (flips == 0)).any():  # the models guarantee it; a plugin might not
            raise RuntimeError(f"noise model {self.name!r} marked samples corrupted but left them unchanged")
        report = self._report(y, noisy, corrupted, rate, seed, params_out, extra, flips)
        clean_mask = flips == 0
        return NoisyLabels(labels=noisy, clean_mask=clean_mask, corrupted=corrupted, report=report)

    def _report(
        self,
        y: np.ndarray,
        noisy: np.ndarray,
        corrupted: np.ndarray,
        rate: float,
        seed: int,
        params_out: dict[str, Any],
        extra: dict[str, Any],
        flips: np.ndarray,
        pairs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        model = self.name or type(self).__name__
        return noise_report(
            y, noisy, corrupted, model=model, rate=rate, seed=seed, params=params_out, unit=self.unit,
            extra=extra, flips=flips, pairs=pairs,
        )  # fmt: skip

    def _finish_pairs(
        self,
        y: np.ndarray,
        rate: float,
        seed: int,
        text_index: np.ndarray,
        params_out: dict[str, Any],
        extra: dict[str, Any],
    ) -> NoisyLabels:
        n = y.shape[0]
        text_index = np.asarray(text_index, dtype=np.int64)
        if text_index.shape != (n,) or not np.array_equal(np.sort(text_index), np.arange(n)):
            raise RuntimeError(f"noise model {self.name!r} returned a text_index that is not a permutation of the rows")
        corrupted = text_index != np.arange(n)
        pairs = crossmodal_pairs_changed(y, text_index, seed)
        no_flips = np.zeros(n, dtype=np.int64)
        report = self._report(y, y, corrupted, rate, seed, params_out, extra, no_flips, pairs)
        return NoisyLabels(
            labels=y.copy(), clean_mask=~corrupted, corrupted=corrupted, report=report, text_index=text_index
        )

    def _apply(
        self, y: np.ndarray, rate: float, seed: int, params: dict[str, Any], **inputs: Any
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
        """Return (noisy labels, corrupted mask, resolved params, extra report entries).

        ``params`` is the validated parameter dict; ``inputs`` holds ``features`` when the
        model declares ``needs_features``.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def _apply_pairs(
        self, y: np.ndarray, rate: float, seed: int, params: dict[str, Any], **inputs: Any
    ) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        """``corrupts = "pairs"`` models: return (text_index, resolved params, extra report entries).

        ``text_index`` must be a permutation of the N rows; the rows it moves are the
        corrupted pairs.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def corruption_order(keys: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """The eligible rows sorted by ``keys`` (stable: ties by row index)."""
    order = np.argsort(keys, kind="stable")
    return order[eligible[order]]


def check_count(model: str, rate: float, n: int, n_eligible: int, reason: str) -> int:
    """⌊rate·n⌋, or a :class:`ConfigError` when fewer rows are eligible."""
    m = n_to_corrupt(rate, n)
    if m > n_eligible:
        raise ConfigError(
            f"noise model {model!r} cannot corrupt {m} of {n} samples at rate {rate}: only {n_eligible} "
            f"are eligible ({n - n_eligible} rows excluded because {reason}); lower the rate"
        )
    return m


class SampleNoiseModel(NoiseModel):
    """A model that corrupts exactly ⌊rate·N⌋ eligible samples (see the module docstring).

    Hooks:
        prepare(y, seed, params, **inputs) -> (resolved params, state): resolve parameters
            (e.g. draw a class pairing from ``stream(seed, STREAM_PARAMS)``), independent of
            the rate. ``inputs`` holds ``features`` when the model declares ``needs_features``.
        eligible(y, state) -> bool N: rows whose labels the model can change.
        order_keys(y, seed, state) -> float N: the keys whose stable ascending order is the
            corruption order (default: the uniforms of :data:`STREAM_ORDER`); rate-free.
        width(n_classes) -> int: uniforms drawn per corrupted sample.
        corrupt(rows, draws, state) -> new rows: must differ from ``rows`` on every row and
            depend only on (row, its draws, state). A model that needs the row numbers
            overrides ``corrupt_rows(index, rows, draws, state)`` instead.
        report_extra(y, noisy, corrupted, state) -> dict: model-specific report entries.
    """

    unit: ClassVar[str] = "sample"
    #: Why a row can be ineligible (for error messages).
    ineligible_reason: ClassVar[str] = "its labels cannot be changed by this model"

    def prepare(self, y: np.ndarray, seed: int, params: dict[str, Any], **inputs: Any) -> tuple[dict[str, Any], Any]:
        return params, None

    def eligible(self, y: np.ndarray, state: Any) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def order_keys(self, y: np.ndarray, seed: int, state: Any) -> np.ndarray:
        return stream(seed, STREAM_ORDER).random(y.shape[0])

    def width(self, n_classes: int) -> int:
        return 0

    def corrupt(self, rows: np.ndarray, draws: np.ndarray, state: Any) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def corrupt_rows(self, index: np.ndarray, rows: np.ndarray, draws: np.ndarray, state: Any) -> np.ndarray:
        return self.corrupt(rows, draws, state)

    def report_extra(self, y: np.ndarray, noisy: np.ndarray, corrupted: np.ndarray, state: Any) -> dict[str, Any]:
        return {}

    def _apply(
        self, y: np.ndarray, rate: float, seed: int, params: dict[str, Any], **inputs: Any
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
        n, c = y.shape
        params_out, state = self.prepare(y, seed, params, **inputs)
        elig = self.eligible(y, state)
        n_elig = int(np.count_nonzero(elig))
        m = check_count(self.name, rate, n, n_elig, self.ineligible_reason)
        chosen = corruption_order(self.order_keys(y, seed, state), elig)[:m]
        noisy = y.copy()
        width = self.width(c)
        rng = stream(seed, STREAM_DRAWS)
        for start in range(0, m, CHUNK_ROWS):
            stop = min(m, start + CHUNK_ROWS)
            rows_idx = chosen[start:stop]
            draws = rng.random((stop - start, width)) if width else np.empty((stop - start, 0))
            noisy[rows_idx] = self.corrupt_rows(rows_idx, y[rows_idx], draws, state)
        corrupted = np.zeros(n, dtype=bool)
        corrupted[chosen] = True
        extra = {"n_eligible": n_elig, "n_ineligible": n - n_elig}
        extra.update(self.report_extra(y, noisy, corrupted, state))
        return noisy, corrupted, params_out, extra
