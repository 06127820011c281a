"""What a sweep knows about its progress: the runs in flight, their epochs, and the ETA.

The sweep (:mod:`nrchbench.sweep`) tells a :class:`SweepProgress` when a run starts, finishes
an epoch, ends, or is done by another sweep; it asks for the ETA and the running runs, which
go into every :class:`~nrchbench.sweep.SweepEvent`. The predictions come from the cost model of
:mod:`nrchbench.eta`, with a prior from the records already in the results directory.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nrchbench.eta import CostModel, Running, eta

if TYPE_CHECKING:
    from nrchbench.backends import RunResult
    from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)

__all__ = ["RunView", "SweepEvent", "SweepProgress", "default_sizes", "remove_run_tmp", "takes"]


@dataclass
class SweepEvent:
    """One step of a sweep, for progress displays.

    ``kind`` is ``"skip"`` (a finished record exists, or another sweep just ran the spec:
    see the summary for its outcome),
    ``"start"``, ``"epoch"`` (a running run finished an epoch), ``"done"`` or ``"wait"``
    (waiting for runs another sweep holds; ``spec`` is one of them); ``result`` is set for
    ``done``; ``done``/``total`` count finished and skipped runs.
    """

    kind: str
    spec: RunSpec
    done: int
    total: int
    result: RunResult | None = None
    #: Seconds until this sweep's runs are done, from the cost model (None: not known yet).
    eta_s: float | None = None
    #: Every run in flight (``"epoch"`` events: ``spec`` finished an epoch).
    running: list[RunView] = field(default_factory=list)


@dataclass(frozen=True)
class RunView:
    """A running run as a display shows it."""

    run_id: str
    label: str
    epochs_done: int
    epochs: int
    elapsed_s: float
    remaining_s: float | None


def default_sizes(datasets: Iterable[str]) -> dict[str, int]:
    """Rows of each dataset whose loader declares a default ``n`` option (e.g. ``synthetic``)."""
    from nrchbench.registry import DATASETS

    sizes = {}
    for name in set(datasets):
        try:
            field = DATASETS.get(name).Options.model_fields.get("n")
        except Exception:  # a directory, an unknown name, a loader without Options: size unknown
            continue
        if field is not None and isinstance(field.default, int) and field.default > 0:
            sizes[name] = field.default
    return sizes


class SweepProgress:
    """Runs pending and in flight, and the cost model that prices them.

    Args:
        workers: runs at once (``--jobs``).
        sizes: dataset → default rows (:func:`default_sizes`).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, workers: int, sizes: dict[str, int] | None = None, clock: Any = time.monotonic) -> None:
        self.workers = max(int(workers), 1)
        self.model = CostModel(sizes)
        self.clock = clock
        self.pending: dict[str, Any] = {}
        self.running: dict[str, Running] = {}
        self._started: dict[str, float] = {}
        self._workers: set[Any] = set()  # (host, pid) of the workers that finished a run

    # ------------------------------------------------------------------ prior and plan
    def add_prior(self, records: Iterable[Any]) -> int:
        """Calibrate on earlier ``ok`` records (their ``timing`` and spec); returns how many."""
        count = 0
        for rec in records:
            timing = getattr(rec, "timing", None) or {}
            if rec.status == "ok" and timing.get("total"):
                rows = (rec.dataset or {}).get("n")
                self.model.observe(rec.spec, timing["total"], timing.get("fit"), rows=rows, prior=True)
                count += 1
        return count

    def add_prior_from(self, out: Any) -> None:
        """Calibrate on the records already under ``out`` (a prior is a nicety: never fatal)."""
        from nrchbench.records import load_records

        try:
            n = self.add_prior(load_records(out))
        except Exception as exc:
            log.warning("sweep: no run-time prior from %s: %s", out, exc)
            return
        log.debug("sweep: run-time prior from %d record(s)", n)

    def plan(self, specs: Iterable[Any]) -> None:
        """The runs this sweep will run, in queue order."""
        for spec in specs:
            self.pending[spec.run_id] = spec

    # ------------------------------------------------------------------ events
    def start(self, spec: Any) -> None:
        self.pending.pop(spec.run_id, None)
        epochs = self.model.features(spec).epochs
        self.running[spec.run_id] = Running(spec, 0.0, 0, epochs)
        self._started[spec.run_id] = self.clock()

    def epoch(self, run_id: str, epochs_done: int, epochs: int) -> Any:
        """A run finished an epoch; returns its spec (None if not running here)."""
        run = self.running.get(run_id)
        if run is None:
            return None
        run.epochs_done, run.epochs = int(epochs_done), max(int(epochs), 1)
        if run.first_epoch_s is None:
            run.first_epoch_s = max(self.clock() - self._started[run_id], 0.0)
        return run.spec

    def finish(self, spec: Any, seconds: float | None, record: Any = None, worker: Any = None) -> None:
        """A run ended; an ``ok`` one calibrates the model with its wall time and ``timing.fit``.
        ``worker`` (host, pid) tells the first run of each worker process (cold) from the others."""
        self.pending.pop(spec.run_id, None)
        self.running.pop(spec.run_id, None)
        started = self._started.pop(spec.run_id, None)
        cold = worker is not None and worker not in self._workers
        if worker is not None:
            self._workers.add(worker)
        if record is None or record.status != "ok":
            return
        wall = seconds if seconds else (self.clock() - started if started is not None else None)
        if wall:
            rows = (record.dataset or {}).get("n")
            self.model.observe(spec, wall, record.timing.get("fit"), rows=rows, cold=cold)

    def drop(self, spec: Any) -> None:
        """Not this sweep's to run any more (another sweep did it)."""
        self.pending.pop(spec.run_id, None)
        self.running.pop(spec.run_id, None)
        self._started.pop(spec.run_id, None)

    # ------------------------------------------------------------------ queries
    def _refresh(self) -> list[Running]:
        now = self.clock()
        for run_id, run in self.running.items():
            run.elapsed = max(now - self._started[run_id], 0.0)
        return list(self.running.values())

    def eta_s(self) -> float | None:
        """Seconds until this sweep's runs are done (None until something can be priced)."""
        return eta(self.model, self._refresh(), self.pending.values(), self.workers)

    def views(self) -> list[RunView]:
        """Every running run, oldest first."""
        views = []
        for run in self._refresh():
            single = eta(self.model, [run], [], 1)
            views.append(RunView(run.spec.run_id, run.spec.label(), run.epochs_done, run.epochs, run.elapsed, single))
        return sorted(views, key=lambda v: -v.elapsed_s)


def takes(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` accepts the keyword ``name`` (a backend's optional ``on_progress``)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def remove_run_tmp(out: Any, run_ids: list[str]) -> int:
    """Remove the temp files of the given runs' record writers, whatever their age: for runs
    this sweep stopped (Ctrl-C killed their workers), whose writers are dead."""
    from nrchbench.resultsdir import remove_stale_files

    if not run_ids:
        return 0
    names = "|".join(re.escape(r) for r in run_ids)
    return remove_stale_files(out, re.compile(rf"^\.(?:{names})(?:\.json|\.codes\.npz)\.[a-z0-9_]{{8}}\.tmp$"), 0.0)
