"""Records → one long pandas frame: a row per (record, direction) with its identity and value.

The frame is what every table, comparison and plot aggregates. Columns: the table keys and
row keys of :mod:`nrchbench.report.identity` (JSON fields as canonical JSON text), the
direction, ``invariant``, ``bits``, ``noise_rate``, ``seed``, the metric ``value``, its
``state`` and the ``chance`` level, ``created``, ``run_id`` and ``record`` (the record's
position in the input).

``state`` is ``ok`` (a finite value), ``not computed`` (a successful run whose record lacks
the metric and has no saved codes to compute it from), ``undefined`` (the metric was computed
but has no value, e.g. no query had a relevant item) or ``failed`` (the run failed).

A record without the metric asked for is evaluated again from its saved codes
(``<run_id>.codes.npz``, written with ``--save-codes``) when they exist; records are never
changed. Noise-invariant runs (methods that never see labels) are placed in every noise
column of their data and protocol: they were trained once, and are the same run at any rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nrchbench.errors import ConfigError, DataError, NrchbenchError
from nrchbench.jsonutil import canonical_json
from nrchbench.provenance import code_version
from nrchbench.records import Record, record_path
from nrchbench.report.identity import ROW_KEYS, TABLE_KEYS, TableIdentity
from nrchbench.report.labels import config_slug, method_label, non_default

log = logging.getLogger(__name__)

__all__ = [
    "CELL_KEYS",
    "FRAME_COLUMNS",
    "SEED_KEYS",
    "TRAINING_METRICS",
    "is_score",
    "metric_direction",
    "metric_names",
    "record_frame",
    "record_identity",
    "record_label",
    "select_records",
]

DIRECTIONS = ("i2t", "t2i", "avg")
STATES = ("ok", "not computed", "undefined", "failed")
#: One cell of a table: its table, row and column.
CELL_KEYS = [*TABLE_KEYS, "direction", *ROW_KEYS, "bits", "noise_rate"]
#: One run (per direction): its cell and seed — the whole identity of a spec.
SEED_KEYS = [*CELL_KEYS, "seed"]
FRAME_COLUMNS = [*SEED_KEYS, "invariant", "state", "value", "chance", "created", "run_id", "record", "code_version"]
_NOISE = ["noise_model", "noise_params", "noise_rate"]


class _Reevaluator:
    """Metrics of a record computed again from its saved codes (cached per run)."""

    def __init__(self, results_dir: str | Path | None) -> None:
        self.results_dir = results_dir
        self.cache: dict[tuple[str, tuple[int, ...]], dict[str, Any] | None] = {}

    def metrics(self, rec: Record, metric: str) -> dict[str, Any] | None:
        """The record's metrics recomputed from its codes, under its own zero-relevant policy,
        with the record's top-k cut-offs plus the one ``metric`` asks for (e.g. ``map@50``)."""
        if self.results_dir is None or not rec.codes:
            return None
        topk = set(rec.spec.topk)
        _, _, k = metric.partition("@")
        if k.isdigit() and not metric.startswith("hamming_"):
            topk.add(int(k))
        key = (rec.run_id, tuple(sorted(topk)))
        if key not in self.cache:
            path = record_path(self.results_dir, rec).with_name(rec.codes)
            self.cache[key] = None
            if path.is_file():
                from nrchbench.runner import evaluate_codes_file

                log.info("evaluating run %s again from its saved codes %s", rec.run_id, path)
                try:
                    self.cache[key] = evaluate_codes_file(
                        path, topk=key[1], radius=rec.spec.radius, zero_relevant=rec.spec.zero_relevant
                    )
                except DataError as exc:
                    log.warning("cannot evaluate run %s from its codes: %s", rec.run_id, exc)
        return self.cache[key]


#: Training diagnostics that tables can show like metrics: the last epoch's value from the record's
#: history (the same in every direction), for methods and strategies that select or weight samples.
#: Key → (higher is better, description).
TRAINING_METRICS: dict[str, tuple[bool | None, str]] = {
    "sel_precision": (True, "last epoch's selection precision: clean fraction of the selected training rows"),
    "sel_recall": (True, "last epoch's selection recall: selected fraction of the clean training rows"),
    "selected_fraction": (None, "last epoch's selected fraction of the training rows"),
    "weight_mean_clean": (True, "last epoch's mean per-sample weight of the clean training rows"),
    "weight_mean_noisy": (False, "last epoch's mean per-sample weight of the noisy training rows"),
}


def _history_value(rec: Record, metric: str) -> tuple[str, float]:
    last = rec.history[-1].model_dump() if rec.history else {}
    v = last.get(metric)
    if v is None:
        return "not computed", math.nan
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "undefined", math.nan
    return "ok", float(v)


def _value(rec: Record, direction: str, metric: str, again: _Reevaluator) -> tuple[str, float]:
    if rec.status != "ok":
        return "failed", math.nan
    if metric in TRAINING_METRICS:
        return _history_value(rec, metric)
    metrics = rec.metrics.get(direction) or {}
    if metric not in metrics:
        metrics = (again.metrics(rec, metric) or {}).get(direction) or {}
    if metric not in metrics:
        return "not computed", math.nan
    v = metrics[metric]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "undefined", math.nan
    return "ok", float(v)


def _identity(rec: Record) -> dict[str, Any]:
    s = rec.spec
    return {
        "dataset": s.dataset,
        "dataset_options": canonical_json(s.dataset_options),
        "split": s.split or "",
        "split_seed": s.split_seed,
        "val_size": s.val_size,
        "feature_transform": s.feature_transform,
        "noise_model": "" if s.noise_invariant else (s.noise_model or ""),
        "noise_params": "{}" if s.noise_invariant else canonical_json(s.noise_params),
        "preset": s.preset,
        "selection": s.selection,
        "val_every": s.val_every,
        "zero_relevant": s.zero_relevant,
        "method": s.method,
        "params": canonical_json(non_default(s.method, s.params)),
        "strategy": s.strategy,
        "strategy_params": canonical_json(s.strategy_params),
        "resolved_params": canonical_json(s.resolved_params),
        "bits": s.bits,
        "noise_rate": math.nan if s.noise_invariant or s.noise_rate is None else float(s.noise_rate),
        "seed": s.seed,
        "invariant": bool(s.noise_invariant),
    }


def record_frame(
    records: Iterable[Record],
    metric: str,
    directions: Sequence[str] = DIRECTIONS,
    *,
    results_dir: str | Path | None = None,
) -> pd.DataFrame:
    """The long frame of ``records`` for one ``metric`` (see the module docstring).

    Args:
        records: typed records (:func:`nrchbench.records.load_records`).
        metric: a scalar metric key (``map``, ``map@50``, ...).
        directions: which of ``i2t``, ``t2i``, ``avg``.
        results_dir: where the records live, to find saved codes (None: never re-evaluate).
    """
    again = _Reevaluator(results_dir)
    rows = []
    for i, rec in enumerate(records):
        ident = _identity(rec)
        for d in directions:
            state, value = _value(rec, d, metric, again)
            chance = rec.metric(d, "chance")
            rows.append(
                {
                    **ident,
                    "direction": d,
                    "state": state,
                    "value": value,
                    "chance": float(chance) if isinstance(chance, int | float) else math.nan,
                    "created": rec.created,
                    "run_id": rec.run_id,
                    "record": i,
                    "code_version": code_version(rec.env),
                }
            )
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    frame = frame.astype({"bits": int, "seed": int, "noise_rate": float, "value": float, "chance": float})
    return _place_invariant(frame)


def _place_invariant(frame: pd.DataFrame) -> pd.DataFrame:
    """Noise-invariant rows repeated at every (noise model, noise params, rate) that the
    noise-aware runs of the same data and protocol were made at (unchanged where there are none)."""
    inv = frame[frame["invariant"]]
    if inv.empty:
        return frame.reset_index(drop=True)
    aware = frame[~frame["invariant"]]
    on = [k for k in [*TABLE_KEYS, "direction"] if k not in _NOISE]
    targets = aware[[*on, *_NOISE]].drop_duplicates()
    placed = inv.drop(columns=_NOISE).merge(targets, on=on, how="left")
    placed = placed.fillna({"noise_model": "", "noise_params": "{}"})
    return pd.concat([aware, placed[frame.columns]], ignore_index=True)


def metric_names(records: Iterable[Record]) -> list[str]:
    """The scalar metric keys present in any record (for messages)."""
    names = set()
    for rec in records:
        for d in DIRECTIONS:
            names.update(k for k, v in (rec.metrics.get(d) or {}).items() if isinstance(v, int | float))
    return sorted(names)


def select_records(
    records: Iterable[Record],
    *,
    dataset: str | None = None,
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    methods: Sequence[str] | None = None,
    bits: Sequence[int] | None = None,
    noise_rates: Sequence[float] | None = None,
    strategies: Sequence[str] | None = None,
) -> list[Record]:
    """The records matching every filter given (None: any). Noise-invariant records pass the
    noise filters: they are the same run at every noise model and rate. ``dataset`` matches
    the name or, for a dataset given as a directory, its folder name; ``strategies`` takes
    registry names or aliases (``none`` is the base method as is)."""
    rates = None if not noise_rates else {round(float(r), 9) for r in noise_rates}
    wanted = _strategy_names(strategies)
    out = []
    for rec in records:
        s = rec.spec
        aware = not s.noise_invariant
        if (
            (dataset is None or dataset in (s.dataset, Path(s.dataset).name))
            and (preset is None or s.preset == preset)
            and (split is None or s.split == split)
            and (not methods or s.method in methods)
            and (not bits or s.bits in bits)
            and (wanted is None or s.strategy in wanted)
            and (noise_model is None or not aware or s.noise_model == noise_model)
            and (rates is None or not aware or round(float(s.noise_rate or 0.0), 9) in rates)
        ):
            out.append(rec)
    return out


def _strategy_names(strategies: Sequence[str] | None) -> set[str] | None:
    """Canonical strategy names of a filter (None: any).

    Raises:
        ConfigError: a name no registered strategy has.
    """
    if not strategies:
        return None
    from nrchbench.errors import RegistryError
    from nrchbench.registry import STRATEGIES

    out = set()
    for name in strategies:
        try:
            out.add(STRATEGIES.canonical(name))
        except RegistryError as exc:
            raise ConfigError(f"strategy filter: {exc}") from None
    return out


def record_identity(rec: Record, direction: str = "", metric: str = "") -> TableIdentity:
    """The table identity a record belongs to (its data and protocol)."""
    return TableIdentity.from_mapping({**_identity(rec), "direction": direction, "metric": metric})


def record_slug(rec: Record) -> str:
    """A record's method configuration for a file name (:func:`~.labels.config_slug`)."""
    s = rec.spec
    return config_slug(s.method, s.params, s.strategy, s.strategy_params)


def record_label(rec: Record, labels: Mapping[str, str] | None = None) -> str:
    """The display label of a record's method configuration, as in tables (``†``: noise-invariant)."""
    s = rec.spec
    text = method_label(s.method, s.params, s.strategy, s.strategy_params, labels)
    return text + ("†" if s.noise_invariant else "")


def metric_direction(metric: str) -> bool:
    """True when a higher ``metric`` is better (from :func:`nrchbench.metrics.metric_info`).

    Raises:
        ConfigError: an unknown metric, or a descriptive number (a count, the chance level).
    """
    from nrchbench.metrics import metric_info

    if metric in TRAINING_METRICS:
        higher, description = TRAINING_METRICS[metric]
        if higher is None:
            raise ConfigError(f"metric {metric!r} is descriptive ({description}), not a score to rank")
        return higher
    try:
        info = metric_info(metric)
    except NrchbenchError as exc:
        raise ConfigError(str(exc)) from None
    if info.higher_is_better is None:
        raise ConfigError(f"metric {metric!r} is descriptive ({info.description}), not a score to rank")
    return info.higher_is_better


def is_score(metric: str) -> bool:
    try:
        metric_direction(metric)
    except ConfigError:
        return False
    return True
