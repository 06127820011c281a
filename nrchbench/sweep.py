"""Sweeps: many specs, resumable, crash-proof and shareable, on a pluggable backend.

* **Resume.** A record's path derives from its run id; a record is written atomically (temp
  file + rename), after its codes file; a sweep skips every spec whose record exists with
  ``status: ok`` (unless ``force``). Killing a sweep at any moment (even SIGKILL) and
  starting it again loses at most the runs in flight and never leaves a half-written or
  duplicate record; the temp files of a killed writer are removed at the next start.
* **Isolation.** Runs do not share the sweep's process (the local backend runs each in a
  worker process, the Ray backend in a Ray worker): a run that dies is recorded ``failed``
  with the reason and the sweep goes on.
* **Sharing.** Each spec is claimed just before it runs (:mod:`nrchbench.claims`), so sweeps
  started on one results directory — on one machine or several sharing a filesystem —
  split the work and run each spec once. A sweep that finds a spec claimed by another goes
  on with the others and at the end waits for it: it returns when every one of its specs has
  a record, taking over the claims of sweeps that died.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nrchbench.backends import RunKwargs, RunResult, get_backend
from nrchbench.claims import HEARTBEAT_S, TIMEOUT_S, Claims, clean_claim_leftovers
from nrchbench.provenance import code_version, current_code_version, short
from nrchbench.records import Record, find_record, record_path, write_record
from nrchbench.resultsdir import check_writable, clean_stale_tmp
from nrchbench.spec import RunSpec
from nrchbench.sweep_progress import SweepEvent, SweepProgress, default_sizes, remove_run_tmp, takes

log = logging.getLogger(__name__)


ProgressFn = Callable[[SweepEvent], None]


@dataclass
class SweepSummary:
    """What a sweep did: counts, wall time and one row per spec (where it ran, how long).

    ``ok + failed + skipped == total``. ``skipped`` counts specs with an ``ok`` record this
    sweep did not run; ``elsewhere`` counts the specs that another sweep on ``out`` ran while
    this one ran (among ``skipped`` if ok, among ``failed`` if not).
    """

    out: str
    backend: str
    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    elsewhere: int = 0
    #: ``ok`` records another code version made: kept (among ``skipped``) or rerun (``--rerun-stale``).
    stale: int = 0
    stale_rerun: int = 0
    stale_versions: dict[str, int] = field(default_factory=dict)
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
        "elsewhere": False,
        **extra,
    }


def _stamp(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (inode, mtime): tells whether someone wrote it since."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def failed_record(spec: RunSpec, reason: str, details: Mapping[str, Any] | None = None) -> Record:
    """The ``failed`` record the driver writes for a run that produced none (its process or
    node died, it could not start); ``details`` (exit code, last output) go to its diagnostics."""
    import torch

    from nrchbench.runner import failed_record as _failed

    if spec.device.startswith("cuda") and not torch.cuda.is_available():
        spec = spec.with_device("cpu")  # a CPU-only driver of GPU runs (the device is not hashed)
    rec = _failed(spec, reason)
    return rec.model_copy(update={"diagnostics": {"died": dict(details)}}) if details else rec


class Sweep:
    """A list of specs to bring to a record each (``status: ok`` where possible) under ``out``.

    Args:
        specs: resolved specs (:func:`nrchbench.grid.expand_grid`); duplicates by run id
            are kept once.
        out: results directory (checked writable here, before any work).
        backend: ``local`` or ``ray`` (or any name in :data:`nrchbench.backends.BACKENDS`).
        jobs: parallel runs (worker processes for ``local``).
        force: rerun specs that already have an ``ok`` record.
        rerun_stale: rerun specs whose ``ok`` record another code version made
            (:mod:`nrchbench.provenance`).
        data_root, device, save_codes: as for :func:`nrchbench.runner.run`.
        plugins: ``--plugin`` modules/files every worker imports first.
        backend_options: extra backend options (Ray: ``address``, ``gpus_per_run``, ``cpus_per_run``).
        claim_timeout_s, heartbeat_s: when another sweep's claim counts as stale, and how
            often this sweep's claims are touched (:mod:`nrchbench.claims`).
        wait_poll_s: seconds between checks while waiting for another sweep's runs.
    """

    def __init__(
        self,
        specs: Iterable[RunSpec],
        *,
        out: str | os.PathLike,
        backend: str = "local",
        jobs: int = 1,
        force: bool = False,
        rerun_stale: bool = False,
        data_root: str | os.PathLike | None = None,
        device: str = "auto",
        save_codes: bool = False,
        plugins: Iterable[str] = (),
        backend_options: Mapping[str, Any] | None = None,
        claim_timeout_s: float = TIMEOUT_S,
        heartbeat_s: float = HEARTBEAT_S,
        wait_poll_s: float = 1.0,
    ) -> None:
        self.out = Path(out)
        self.backend_name = backend
        self.jobs = int(jobs)
        self.force, self.rerun_stale = bool(force), bool(rerun_stale)
        self.stale: dict[str, str] = {}
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
        self.claim_timeout_s, self.heartbeat_s, self.wait_poll_s = claim_timeout_s, heartbeat_s, wait_poll_s
        unique: dict[str, RunSpec] = {}
        for rs in specs:
            unique.setdefault(rs.run_id, rs)
        self.specs = list(unique.values())

    def plan(self) -> tuple[list[RunSpec], list[RunSpec]]:
        """(pending, skipped): skipped specs have a valid ``ok`` record (never when forced) —
        made by this code version, or by any with ``rerun_stale`` off. ``self.stale`` maps the
        run ids whose ``ok`` record another code version made to that version."""
        pending, skipped = [], []
        current = current_code_version()
        self.stale: dict[str, str] = {}
        for rs in self.specs:
            rec = None if self.force else find_record(self.out, rs)
            if rec is not None and rec.status == "ok":
                version = code_version(rec.env)
                if version != current:
                    self.stale[rs.run_id] = version
                (pending if self.rerun_stale and version != current else skipped).append(rs)
            else:
                pending.append(rs)
        return pending, skipped

    def run(self, progress: ProgressFn | None = None) -> SweepSummary:
        """Run every pending spec; failed runs are recorded and the sweep goes on."""
        check_writable(self.out)
        return _SweepRun(self, progress).execute()


class _SweepRun:
    """The state of one :meth:`Sweep.run`: rows, counts, claims, and the backend callbacks."""

    def __init__(self, sweep: Sweep, progress: ProgressFn | None) -> None:
        self.sw, self.progress = sweep, progress
        self.out = sweep.out
        self.t0 = time.perf_counter()
        self.summary = SweepSummary(out=str(self.out), backend=sweep.backend_name, total=len(sweep.specs))
        self.rows: dict[str, dict[str, Any]] = {}
        self.done = 0
        self.claims = Claims(self.out, timeout_s=sweep.claim_timeout_s, heartbeat_s=sweep.heartbeat_s)
        self.by_id: dict[str, RunSpec] = {}
        self.seen: dict[str, tuple[int, int] | None] = {}  # the record file each spec had at the start
        self.deferred: list[RunSpec] = []  # claimed by another sweep in this round
        self.tracker = SweepProgress(sweep.jobs, default_sizes(rs.dataset for rs in sweep.specs))

    def _emit(self, kind: str, rs: RunSpec, result: RunResult | None = None) -> None:
        if self.progress is not None:
            ev = SweepEvent(kind, rs, self.done, self.summary.total, result, self.tracker.eta_s(), self.tracker.views())
            self.progress(ev)

    def _changed(self, rs: RunSpec) -> bool:
        """Whether another writer replaced ``rs``'s record since this sweep started."""
        return _stamp(record_path(self.out, rs)) != self.seen[rs.run_id]

    def execute(self) -> SweepSummary:
        sw, summary = self.sw, self.summary
        clean_stale_tmp(self.out)
        clean_claim_leftovers(self.out)
        self.claims.clean_stale()
        # which record file each spec has now, taken before planning: a record another sweep
        # writes from here on is seen as such (and its spec not run again)
        self.seen = {rs.run_id: _stamp(record_path(self.out, rs)) for rs in sw.specs}
        pending, skipped = sw.plan()
        summary.skipped = len(skipped)
        self._note_stale(pending)
        self.tracker.plan(pending)
        if pending:
            self.tracker.add_prior_from(self.out)
        for rs in skipped:
            self.done += 1
            self.rows[rs.run_id] = _row(rs, "skipped", path=str(record_path(self.out, rs)))
            self._emit("skip", rs)
        for rs in pending:
            self.by_id[rs.run_id] = rs
            self.rows[rs.run_id] = _row(rs, "pending")
        log.info(
            "sweep: %d run(s), %d already done, %d to run on %s",
            summary.total,
            len(skipped),
            len(pending),
            sw.backend.name,
        )
        extra = {"on_progress": self.on_progress} if takes(sw.backend.run_all, "on_progress") else {}
        try:
            with self.claims:
                queue = pending
                while queue:
                    self.deferred = []
                    sw.backend.run_all(queue, sw.run_kwargs, self.on_start, self.on_result, **extra)
                    queue = self._wait_for_others(self.deferred)
        except KeyboardInterrupt:
            # the backend stopped the runs in flight; their claims go with the Claims context
            remove_run_tmp(self.out, list(self.tracker.running))
            log.warning("sweep interrupted: %d run(s) in flight stopped", len(self.tracker.running))
            raise
        finally:
            clean_stale_tmp(self.out)
            self.claims.clean_stale()
            summary.wall_s = time.perf_counter() - self.t0
            summary.runs = [self.rows[rs.run_id] for rs in sw.specs]
        return summary

    def _note_stale(self, pending: list[RunSpec]) -> None:
        s, stale = self.summary, self.sw.stale
        s.stale_rerun = sum(rs.run_id in stale for rs in pending)
        s.stale = len(stale) - s.stale_rerun
        s.stale_versions = dict(Counter(short(v) for v in stale.values()))
        if stale:
            what = ", ".join(f"{v} ({n})" for v, n in s.stale_versions.items())
            log.info(  # the CLI prints it in its summary
                "sweep: %s %d record(s) made by another code version than this (%s): %s",
                *(("rerunning", s.stale_rerun) if s.stale_rerun else ("skipping", s.stale)),
                current_code_version(),
                what,
            )

    # -------------------------------------------------------------- backend callbacks
    def on_start(self, rs: RunSpec) -> bool:
        """Claim ``rs``; False (do not run it) when another sweep holds it or has just done it."""
        if not self.claims.acquire(rs):
            self.rows[rs.run_id]["status"] = "claimed elsewhere"
            self.deferred.append(rs)
            return False
        if self._changed(rs):  # done by another sweep while this one ran (checked under the claim)
            rec = find_record(self.out, rs)
            if rec is not None:
                self.claims.release(rs)
                self._done_elsewhere(rs, rec)
                return False
        self.rows[rs.run_id]["status"] = "running"
        self.tracker.start(rs)
        self._emit("start", rs)
        return True

    def on_progress(self, run_id: str, epochs_done: int, epochs: int) -> None:
        rs = self.tracker.epoch(run_id, epochs_done, epochs)
        if rs is not None:
            self._emit("epoch", rs)

    def on_result(self, res: RunResult) -> None:
        rs = self.by_id[res.run_id]
        try:
            record = self._record_of(rs, res)
        finally:
            self.claims.release(rs)
        status, error = (record.status, record.error) if record is not None else (res.status, res.error)
        if status == "ok":
            self.summary.ok += 1
        else:
            self.summary.failed += 1
            log.warning("run %s (%s) failed: %s", rs.run_id, rs.label(), error)
        self.done += 1
        self.tracker.finish(rs, res.seconds, record, (res.host, res.pid) if res.pid else None)
        eta_s, at = self.tracker.eta_s(), time.perf_counter() - self.t0
        what = f"{self.done}/{self.summary.total} done at {at:.1f}s, {rs.label()} in {res.seconds:.1f}s"
        log.info("sweep: %s; predicted remaining %s", what, "unknown" if eta_s is None else f"{eta_s:.1f}s")
        self.rows[rs.run_id].update(
            status=status,
            error=error,
            host=res.host,
            pid=res.pid,
            seconds=res.seconds,
            node=res.node or None,
            path=str(record_path(self.out, rs)) if record is not None else None,
        )
        self._emit("done", rs, res)

    def _record_of(self, rs: RunSpec, res: RunResult) -> Record | None:
        """The record of a finished run, written if the worker could not write it itself."""
        if res.record is not None:
            if not res.written:
                write_record(self.out, res.record)
            return res.record
        # No record came back: the run's process or node died, or it could not start.
        if self._changed(rs):  # it wrote its record before it was lost: that one stands
            rec = find_record(self.out, rs)
            if rec is not None and rec.status == "ok":
                return rec
        record = failed_record(rs, res.error or "run failed without a reason", res.details)
        write_record(self.out, record)
        return record

    def _done_elsewhere(self, rs: RunSpec, rec: Record) -> None:
        """Another sweep ran ``rs`` while this one ran: its outcome counts (a failure too)."""
        if rec.status == "ok":
            self.summary.skipped += 1
        else:
            self.summary.failed += 1
        self.summary.elsewhere += 1
        self.done += 1
        self.tracker.drop(rs)
        status = "skipped" if rec.status == "ok" else "failed"
        self.rows[rs.run_id].update(status=status, error=rec.error, path=str(record_path(self.out, rs)), elsewhere=True)
        self._emit("skip", rs)

    def _wait_for_others(self, deferred: list[RunSpec]) -> list[RunSpec]:
        """Wait until a spec another sweep held is free (returned, to claim) or done by it."""
        while deferred:
            left, free = [], False
            for rs in deferred:
                if self.claims.holder(rs) is None:
                    rec = find_record(self.out, rs) if self._changed(rs) else None
                    if rec is not None:
                        self._done_elsewhere(rs, rec)
                        continue
                    free = True  # released without a record, or its owner died: take it over
                left.append(rs)
            if free or not left:
                return left
            deferred = left
            self._emit("wait", left[0])
            time.sleep(self.sw.wait_poll_s)
        return []


def run_sweep(
    specs: Iterable[RunSpec],
    *,
    out: str | os.PathLike,
    backend: str = "local",
    jobs: int = 1,
    force: bool = False,
    rerun_stale: bool = False,
    data_root: str | os.PathLike | None = None,
    device: str = "auto",
    save_codes: bool = False,
    progress: ProgressFn | None = None,
    plugins: Iterable[str] = (),
    backend_options: Mapping[str, Any] | None = None,
    **sweep_options: Any,
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
        rerun_stale=rerun_stale,
        data_root=data_root,
        device=device,
        save_codes=save_codes,
        plugins=plugins,
        backend_options=backend_options,
        **sweep_options,
    ).run(progress)
