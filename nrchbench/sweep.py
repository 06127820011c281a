"""Sweeps: many specs, resumable, on a pluggable backend.

Resume and crash safety come from three facts: a record's path derives from its run id; a
record is written atomically (temp file + rename), after its codes file; and a sweep skips
every spec whose record exists with ``status: ok`` (unless ``force``). So killing a sweep at
any moment (even SIGKILL) and starting it again loses at most the runs in flight and never
leaves a half-written or duplicate record; temp files a killed writer left behind are
removed when the next sweep starts and ends.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nrchbench.backends import RunKwargs, RunResult, get_backend
from nrchbench.records import clean_stale_tmp, find_record, record_path, write_record
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)


@dataclass
class SweepEvent:
    """One step of a sweep, for progress displays.

    ``kind`` is ``"skip"`` (a finished record exists), ``"start"`` or ``"done"``;
    ``result`` is set for ``done``; ``done``/``total`` count finished and skipped runs.
    """

    kind: str
    spec: RunSpec
    done: int
    total: int
    result: RunResult | None = None


ProgressFn = Callable[[SweepEvent], None]


@dataclass
class SweepSummary:
    """What a sweep did: counts, wall time and one row per spec (where it ran, how long)."""

    out: str
    backend: str
    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def all_ok(self) -> bool:
        return self.failed == 0


def _row(spec: RunSpec, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": spec.run_id,
        "method": spec.method,
        "dataset": spec.dataset,
        "bits": spec.bits,
        "noise_model": spec.noise_model,
        "noise_rate": spec.noise_rate,
        "seed": spec.seed,
        "preset": spec.preset,
        "status": status,
        "error": None,
        "host": None,
        "pid": None,
        "seconds": None,
        "node": None,
        **extra,
    }


class Sweep:
    """A list of specs to bring to ``status: ok`` under ``out``.

    Args:
        specs: resolved specs (:func:`nrchbench.grid.expand_grid`); duplicates by run id
            are kept once.
        out: results directory.
        backend: ``local`` or ``ray`` (or any name in :data:`nrchbench.backends.BACKENDS`).
        jobs: parallel runs (worker processes for ``local``).
        force: rerun specs that already have an ``ok`` record.
        data_root, device, save_codes: as for :func:`nrchbench.runner.run`.
        plugins: ``--plugin`` modules/files every worker imports first.
        backend_options: extra backend options (Ray: ``address``, ``gpus_per_run``, ``cpus_per_run``).
    """

    def __init__(
        self,
        specs: Iterable[RunSpec],
        *,
        out: str | os.PathLike,
        backend: str = "local",
        jobs: int = 1,
        force: bool = False,
        data_root: str | os.PathLike | None = None,
        device: str = "auto",
        save_codes: bool = False,
        plugins: Iterable[str] = (),
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.out = Path(out)
        self.backend_name = backend
        self.jobs = int(jobs)
        self.force = bool(force)
        self.device = str(device)
        self.run_kwargs = RunKwargs(
            out=str(self.out),
            data_root=str(data_root) if data_root is not None else None,
            device=self.device,
            save_codes=bool(save_codes),
            plugins=tuple(str(p) for p in plugins),
        )
        self.backend_options = dict(backend_options or {})
        self.backend = get_backend(backend, jobs=self.jobs, **self.backend_options)  # fail early
        unique: dict[str, RunSpec] = {}
        for rs in specs:
            unique.setdefault(rs.run_id, rs)
        self.specs = list(unique.values())

    def plan(self) -> tuple[list[RunSpec], list[RunSpec]]:
        """(pending, skipped): skipped specs have a valid ``ok`` record (never when forced)."""
        pending, skipped = [], []
        for rs in self.specs:
            rec = None if self.force else find_record(self.out, rs)
            if rec is not None and rec.status == "ok":
                skipped.append(rs)
            else:
                pending.append(rs)
        return pending, skipped

    def run(self, progress: ProgressFn | None = None) -> SweepSummary:
        """Run every pending spec; failed runs are recorded and the sweep goes on."""
        t0 = time.perf_counter()
        backend = self.backend
        clean_stale_tmp(self.out)
        pending, skipped = self.plan()
        total = len(self.specs)
        summary = SweepSummary(out=str(self.out), backend=self.backend_name, total=total, skipped=len(skipped))
        rows: dict[str, dict[str, Any]] = {}
        done = 0
        for rs in skipped:
            done += 1
            rows[rs.run_id] = _row(rs, "skipped", path=str(record_path(self.out, rs)))
            if progress is not None:
                progress(SweepEvent("skip", rs, done, total))
        by_id = {rs.run_id: rs for rs in pending}
        for rs in pending:
            rows[rs.run_id] = _row(rs, "pending")
        log.info("sweep: %d run(s), %d already done, %d to run on %s", total, len(skipped), len(pending), backend.name)

        def on_start(rs: RunSpec) -> None:
            rows[rs.run_id]["status"] = "running"
            if progress is not None:
                progress(SweepEvent("start", rs, done, total))

        def on_result(res: RunResult) -> None:
            nonlocal done
            rs = by_id[res.run_id]
            path = None
            if res.record is not None:
                path = record_path(self.out, res.record)
                if not res.written:
                    write_record(self.out, res.record)
            if res.status == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
                log.warning("run %s (%s) failed: %s", rs.run_id, rs.label(), res.error)
            done += 1
            rows[rs.run_id].update(
                status=res.status,
                error=res.error,
                host=res.host,
                pid=res.pid,
                seconds=res.seconds,
                node=res.node or None,
                path=str(path) if path is not None else None,
            )
            if progress is not None:
                progress(SweepEvent("done", rs, done, total, res))

        try:
            if pending:
                backend.run_all(pending, self.run_kwargs, on_start, on_result)
        finally:
            clean_stale_tmp(self.out)
            summary.wall_s = time.perf_counter() - t0
            summary.runs = [rows[rs.run_id] for rs in self.specs]
        return summary


def run_sweep(
    specs: Iterable[RunSpec],
    *,
    out: str | os.PathLike,
    backend: str = "local",
    jobs: int = 1,
    force: bool = False,
    data_root: str | os.PathLike | None = None,
    device: str = "auto",
    save_codes: bool = False,
    progress: ProgressFn | None = None,
    plugins: Iterable[str] = (),
    backend_options: Mapping[str, Any] | None = None,
) -> SweepSummary:
    """Run ``specs`` (resumable) and return the summary; see :class:`Sweep`.

    Example:
        >>> from nrchbench.grid import expand_grid
        >>> specs = expand_grid(["nrch", "dcmh"], "synthetic", [16], [0.2, 0.8], [0, 1], preset="tiny")
        >>> summary = run_sweep(specs, out="results", jobs=2)  # doctest: +SKIP
    """
    return Sweep(
        specs,
        out=out,
        backend=backend,
        jobs=jobs,
        force=force,
        data_root=data_root,
        device=device,
        save_codes=save_codes,
        plugins=plugins,
        backend_options=backend_options,
    ).run(progress)
