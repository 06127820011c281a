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

The random streams are in :mod:`nrchbench.noise.draws`, the input checks in
:mod:`nrchbench.noise.checks` and the realised-noise report in :mod:`nrchbench.noise.report`;
their names are re-exported here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from nrchbench.errors import ConfigError
from nrchbench.noise.checks import (
    MODALITIES,
    check_features,
    check_labels,
    check_rate,
    check_seed,
    n_to_corrupt,
)
from nrchbench.noise.draws import (
    CHUNK_ROWS,
    DRAW_VERSION,
    STREAM_DRAWS,
    STREAM_FEATURES,
    STREAM_ORDER,
    STREAM_PAIRS,
    STREAM_PARAMS,
    stream,
)
from nrchbench.noise.report import (
    EXACT_PAIRS_MAX_N,
    PAIR_SAMPLES,
    crossmodal_pairs_changed,
    noise_report,
    pairs_changed,
    row_flips,
)
from nrchbench.params import Params, params_from_defaults

log = logging.getLogger(__name__)

__all__ = [
    "CHUNK_ROWS",
    "DRAW_VERSION",
    "EXACT_PAIRS_MAX_N",
    "MODALITIES",
    "PAIR_SAMPLES",
    "STREAM_DRAWS",
    "STREAM_FEATURES",
    "STREAM_ORDER",
    "STREAM_PAIRS",
    "STREAM_PARAMS",
    "NoiseModel",
    "NoisyLabels",
    "SampleNoiseModel",
    "check_count",
    "check_features",
    "check_labels",
    "check_rate",
    "check_seed",
    "corruption_order",
    "crossmodal_pairs_changed",
    "n_to_corrupt",
    "noise_report",
    "pairs_changed",
    "row_flips",
    "stream",
]


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
