"""A per-run cost model for sweep progress: how long each run will take, and the sweep's ETA.

Pure (no I/O, no clock): the sweep feeds it what it knows and asks it for predictions.

* **Features of a run** (:func:`features`): its *kind* — method, dataset, preset, strategy —
  and its *work*: training epochs (from the resolved parameters) × dataset rows (the
  ``n`` dataset option, else the dataset's default size when known, else 1). Code length
  and noise rate are not in the model: on the committed records they change a kind's run
  time by less than the run-to-run spread of a shared machine.
* **Cost of a run** = ``fit_rate(kind) × work + other(kind)``: the training part scales with
  the work; ``other`` is the rest (process start, loading, noise, encoding, evaluation).
* **Calibration** (:meth:`CostModel.observe`): every finished run gives its kind a fit rate
  (seconds of ``timing.fit`` per unit of work) and an ``other`` time. The first run of a
  fresh worker process is *cold* (lazy imports, JIT compilation: seconds on a tiny run): it
  stands for its kind only until a warm run of the kind ends, less the warm-up measured
  on the kinds seen both ways. Runs of *this* sweep
  outrank the *prior* (records already in the results directory, observed with
  ``prior=True``): a kind seen in this sweep is predicted from this sweep's runs only (the
  geometric mean of their rates); a kind known only from the prior is predicted from it,
  scaled by this sweep's speed (the geometric mean, over kinds seen both ways, of this
  sweep's rate over the prior's); a kind seen nowhere falls back to the same method on other
  datasets or presets, then to every kind (both scaled by the speed), then to the live
  estimates of running runs.
* **A running run** (:class:`Running`) that has finished ``e`` of ``E`` epochs in ``t``
  seconds is predicted from its own pace (``t·E/e``, the first epoch counted once) blended
  with the model (weight ``e/E`` on its own pace; its own pace alone when no run of its
  kind has finished yet, and pending runs of that kind borrow it); remaining = prediction
  − elapsed.
* **ETA** (:func:`eta`): the pending runs, in queue order, are dealt to the ``workers``
  (each free when its running run ends) — the time at which the last one ends. This is
  remaining work / workers, but exact at the tail, where one long run is left.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CostModel", "RunCost", "Running", "error_factor", "eta", "features"]

Kind = tuple[str, str, str, str]


@dataclass(frozen=True)
class RunCost:
    """What the model knows of one run before it starts."""

    kind: Kind  # method, dataset, preset, strategy
    work: float  # epochs × rows (rows = 1 where unknown)
    epochs: int


def features(spec: Any, default_sizes: Mapping[str, int] | None = None) -> RunCost:
    """The cost features of a :class:`~nrchbench.spec.RunSpec` (or anything with its fields)."""
    params = dict(getattr(spec, "resolved_params", None) or {})
    epochs = params.get("epochs")
    epochs = int(epochs) if isinstance(epochs, (int, float)) and epochs > 0 else 1
    options = dict(getattr(spec, "dataset_options", None) or {})
    rows = options.get("n")
    if not isinstance(rows, (int, float)) or rows <= 0:
        rows = (default_sizes or {}).get(spec.dataset, 1)
    kind = (str(spec.method), str(spec.dataset), str(spec.preset), str(getattr(spec, "strategy", "none")))
    return RunCost(kind, float(epochs) * float(rows), epochs)


def _gmean(values: Iterable[float]) -> float | None:
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(logs) / len(logs)) if logs else None


def _mean(values: Iterable[float]) -> float | None:
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


class CostModel:
    """Predicted seconds per run, calibrated online (see the module docstring).

    Args:
        default_sizes: dataset → rows used when a spec has no ``n`` dataset option.
    """

    def __init__(self, default_sizes: Mapping[str, int] | None = None) -> None:
        self.default_sizes = dict(default_sizes or {})
        # kind → [fit rate], [other seconds]; "now" = this sweep's warm runs, "prior" = earlier records
        self._rate: dict[str, dict[Kind, list[float]]] = {"now": defaultdict(list), "prior": defaultdict(list)}
        self._other: dict[str, dict[Kind, list[float]]] = {"now": defaultdict(list), "prior": defaultdict(list)}
        self._cold: dict[Kind, list[tuple[float, float, float]]] = defaultdict(list)  # (work, seconds, fit)
        self._derived: tuple[dict[Kind, list[float]], dict[Kind, list[float]]] | None = None
        self._cache: dict[Kind, tuple[float | None, float]] = {}  # kind → (fit rate, other seconds)

    def features(self, spec: Any) -> RunCost:
        return features(spec, self.default_sizes)

    # ------------------------------------------------------------------ calibration
    def observe(
        self,
        spec: Any,
        seconds: float,
        fit_seconds: float | None = None,
        *,
        rows: int | None = None,
        prior: bool = False,
        cold: bool = False,
    ) -> None:
        """A finished run of ``spec`` took ``seconds`` in all, ``fit_seconds`` of them training
        (None: all of it). ``rows``: its dataset's size (a record's ``dataset.n``), learnt as
        the dataset's default size. ``prior``: a record found before this sweep, not one of its
        runs. ``cold``: the first run of a fresh worker process, which carries its one-off
        warm-up (lazy imports, JIT compilation); it counts for its kind only until a warm run
        of the kind is seen, less the warm-up measured on kinds seen both ways."""
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            return
        if isinstance(rows, int) and rows > 0 and "n" not in (getattr(spec, "dataset_options", None) or {}):
            self.default_sizes.setdefault(str(spec.dataset), rows)
        fit = seconds if fit_seconds is None else min(max(float(fit_seconds), 0.0), float(seconds))
        cost = self.features(spec)
        self._derived = None
        if cold and not prior:
            self._cold[cost.kind].append((cost.work, float(seconds), fit))
            return
        which = "prior" if prior else "now"
        if fit > 0:
            self._rate[which][cost.kind].append(fit / cost.work)
        self._other[which][cost.kind].append(float(seconds) - fit)

    def observed(self, *, prior: bool = False) -> int:
        """How many runs were observed (this sweep's, or the prior's)."""
        if prior:
            return sum(len(v) for v in self._other["prior"].values())
        return sum(len(v) for v in self._other["now"].values()) + sum(len(v) for v in self._cold.values())

    def warmup_s(self) -> float:
        """A fresh worker's one-off warm-up: cold minus warm seconds, on the kinds seen both ways (0: none)."""
        gaps = []
        for kind, runs in self._cold.items():
            rates, others = self._rate["now"].get(kind), self._other["now"].get(kind)
            if others:
                warm = _gmean(rates or ()) or 0.0
                gaps += [seconds - (warm * work + (_mean(others) or 0.0)) for work, seconds, _ in runs]
        return max(sorted(gaps)[len(gaps) // 2], 0.0) if gaps else 0.0

    def _now(self) -> tuple[dict[Kind, list[float]], dict[Kind, list[float]]]:
        """This sweep's (fit rates, other seconds) per kind: warm runs, else cold ones less the warm-up."""
        if self._derived is None:
            self._cache.clear()
            rate = {k: list(v) for k, v in self._rate["now"].items() if v}
            other = {k: list(v) for k, v in self._other["now"].items() if v}
            warmup = self.warmup_s()
            for kind, runs in self._cold.items():
                if kind in other:
                    continue
                for work, seconds, fit in runs:
                    left = max(seconds - warmup, 0.05 * seconds)
                    rate.setdefault(kind, []).append(fit * left / seconds / work)
                    other.setdefault(kind, []).append((seconds - fit) * left / seconds)
            self._derived = (rate, other)
        return self._derived

    def speed(self) -> float:
        """This sweep's fit rates over the prior's, on the kinds both saw (1 when none)."""
        ratios = []
        for kind, rates in self._now()[0].items():
            now, before = _gmean(rates), _gmean(self._rate["prior"].get(kind, ()))
            if now and before:
                ratios.append(now / before)
        return _gmean(ratios) or 1.0

    def _fit_rate(self, kind: Kind) -> float | None:
        now, prior = self._now()[0], self._rate["prior"]
        if now.get(kind):
            return _gmean(now[kind])
        speed = self.speed()
        if prior.get(kind):
            return _gmean(prior[kind]) * speed  # type: ignore[operator]
        for pred in (lambda k: k[0] == kind[0], lambda k: True):  # same method elsewhere, then anything
            rate = _gmean(r for k, rs in now.items() if pred(k) for r in rs)
            if rate is None:
                base = _gmean(r for k, rs in prior.items() if pred(k) for r in rs)
                rate = base * speed if base is not None else None
            if rate is not None:
                return rate
        return None

    def _other_s(self, kind: Kind) -> float:
        for table in (self._now()[1], self._other["prior"]):
            if table.get(kind):
                return _mean(table[kind]) or 0.0
        everything = [v for table in (self._now()[1], self._other["prior"]) for vs in table.values() for v in vs]
        return _mean(everything) or 0.0

    def knows(self, kind: Kind) -> bool:
        """Whether a run of ``kind`` was seen to finish (in this sweep or the prior)."""
        return bool(self._now()[1].get(kind) or self._other["prior"].get(kind))

    def predict(self, spec: Any) -> float | None:
        """Predicted seconds of ``spec``'s run, or None when nothing has been observed yet."""
        cost = self.features(spec)
        self._now()  # (re)derives this sweep's tables and empties the cache after an observation
        if cost.kind not in self._cache:
            self._cache[cost.kind] = (self._fit_rate(cost.kind), self._other_s(cost.kind))
        rate, other = self._cache[cost.kind]
        return None if rate is None else rate * cost.work + other


@dataclass
class Running:
    """A run in progress: ``epochs_done`` of ``epochs`` after ``elapsed`` seconds."""

    spec: Any
    elapsed: float
    epochs_done: int = 0
    epochs: int = 1
    first_epoch_s: float | None = None  # elapsed when its first epoch ended (set-up and loading included)

    def pace(self) -> float | None:
        """Its total seconds extrapolated from its own epochs (None before the first): after two
        or more, the first (which carries the loading and set-up) is counted once."""
        e, total = self.epochs_done, max(self.epochs, 1)
        if e <= 0 or self.elapsed <= 0:
            return None
        first = self.first_epoch_s
        if e >= 2 and first is not None and 0 < first < self.elapsed:
            return first + (self.elapsed - first) * (total - 1) / (e - 1)
        return self.elapsed * total / e


def _running_total(model: CostModel, run: Running) -> float | None:
    predicted, own = model.predict(run.spec), run.pace()
    if own is None:
        return predicted
    if predicted is None or not model.knows(model.features(run.spec).kind):
        return own  # a kind never seen finish: its own pace beats a borrowed rate
    w = min(run.epochs_done / max(run.epochs, 1), 1.0)
    return w * own + (1.0 - w) * predicted


def eta(model: CostModel, running: Iterable[Running], pending: Iterable[Any], workers: int) -> float | None:
    """Seconds until every run is done, or None when some run cannot be predicted yet.

    Runs of a kind the model has never seen finish are priced by the live pace of running
    runs of that kind (per unit of work) where there is one, else by the model's fallback
    (the same method elsewhere, then every kind), else by the pace of any running run, so
    the ETA appears after the first epoch rather than the first run.
    """
    running, pending = list(running), list(pending)
    live: dict[Kind, list[float]] = defaultdict(list)
    for r in running:
        pace = r.pace()
        if pace is not None:
            cost = model.features(r.spec)
            live[cost.kind].append(pace / cost.work)
    everything = _gmean(v for vs in live.values() for v in vs)

    def guess(spec: Any) -> float | None:
        cost = model.features(spec)
        if not model.knows(cost.kind) and live.get(cost.kind):
            return _gmean(live[cost.kind]) * cost.work  # type: ignore[operator]
        p = model.predict(spec)
        return p if p is not None else (everything * cost.work if everything is not None else None)

    ends: list[float] = []
    for r in running:
        total = _running_total(model, r)
        if total is None:
            total = guess(r.spec)
        if total is None:
            return None
        ends.append(max(total - r.elapsed, 0.0))
    slots = max(int(workers), 1)
    ends = sorted(ends)[-slots:] if len(ends) > slots else ends
    ends += [0.0] * (slots - len(ends))
    heapq.heapify(ends)
    for spec in pending:
        seconds = guess(spec)
        if seconds is None:
            return None
        heapq.heappush(ends, heapq.heappop(ends) + seconds)
    return max(ends) if ends else 0.0


def error_factor(predicted: float, actual: float) -> float:
    """max(p/a, a/p): 1 is exact, 1.5 is 50 % off either way (inf when either is not positive)."""
    if predicted <= 0 or actual <= 0:
        return math.inf
    return max(predicted / actual, actual / predicted)
