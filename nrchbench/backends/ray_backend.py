"""Ray backend: each run of a sweep is a Ray task on a local instance or on a cluster.

``nrchbench sweep ... --backend ray [--address auto|HOST:PORT] [--gpus-per-run F] [--cpus-per-run N]``

This module is the driver's side: connecting, and scheduling. The other concerns have their
own modules: the per-node dataset cache (:mod:`nrchbench.backends.ray_cache`), the task and
the fault handling (:mod:`nrchbench.backends.ray_task`).

* **Connecting.** Without ``address`` a local Ray instance is started for the sweep and shut
  down at the end (unless this process was already connected to Ray, in which case that
  connection is used and left open). A ``HOST:PORT`` or ``ray://HOST:PORT`` address is
  first probed with a plain TCP connection (``connect_timeout`` seconds), so a wrong address
  or a head that is down is one line at once rather than ``ray.init`` retrying for minutes.
* **Scheduling.** Each pending spec becomes one task ``ray.remote(num_cpus=cpus_per_run,
  num_gpus=gpus_per_run, max_retries=max_retries)``, so a cluster with G GPUs runs G/F runs
  at once. The driver keeps at most as many tasks in flight as the cluster has slots for
  (re-read every few seconds, so nodes that join are used), which makes ``on_start`` mean
  "starts now" (the sweep claims the spec there) and ``run_timeout`` measure run time
  rather than queueing time. The driver waits with ``ray.wait(timeout=...)``; Ctrl-C
  cancels every outstanding task and re-raises; finished records stay as they are.
* **Progress.** The tasks report every epoch to a small actor the driver drains while it
  waits (every ``poll_s`` at most), so the sweep display shows epochs and an ETA per run.
* **Records.** Identical to the local backend (same runner, same atomic writer, same
  ``run_id`` and path). The driver drops a marker file with a random token into ``out``; a
  task writes its record itself only if it sees that marker with that token (a shared
  filesystem), otherwise the record travels back in the task's result and the driver writes
  it. ``--save-codes`` needs the shared filesystem (codes are not shipped back).
* **Where.** ``RunResult.host``/``pid`` name the worker; ``RunResult.node`` the Ray node id.
"""

from __future__ import annotations

import logging
import math
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray  # a missing ray makes get_backend() raise the one-line RAY_HINT

from nrchbench.backends import OnProgress, OnResult, OnStart, RunKwargs, child_imports, cores
from nrchbench.backends.ray_cache import NodeCaches
from nrchbench.backends.ray_task import MARKER_PREFIX, cancel, collect, lost, progress_board, remote_task
from nrchbench.errors import ConfigError
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)

__all__ = ["MARKER_PREFIX", "RayBackend"]

#: Seconds between refreshes of the cluster's size (slots, new nodes).
REFRESH_S = 5.0
PROGRESS_TIMEOUT_S = 5.0  # a progress board that does not answer within this is skipped once


class RayBackend:
    """Run specs as Ray tasks.

    Args:
        jobs: ``--jobs``; above 1, at most this many runs in flight, and the CPUs of a
            local instance (``jobs × cpus_per_run``). 1 = as many as the cluster has slots
            (a local instance then gets every core of this machine).
        address: ``None`` = start a local Ray instance; ``"auto"`` = the cluster this
            machine belongs to (``ray start``); ``"HOST:PORT"`` (GCS address) or
            ``"ray://HOST:10001"`` (Ray client).
        gpus_per_run: GPUs each run requests (fractions share a GPU).
        cpus_per_run: CPUs each run requests (also torch's thread count per run).
        max_retries: retries of a run whose worker process or node died.
        run_timeout: seconds a run may take before it is cancelled and recorded failed
            (None = no limit).
        num_cpus: CPUs of a local instance (default: see ``jobs``).
        data_cache: serve datasets from a per-node cache actor (:mod:`~nrchbench.backends.ray_cache`).
        cache_size: datasets each node's cache keeps.
        records_on_workers: let a worker that sees the driver's ``out`` write its record
            (False: every record travels back and the driver writes it).
        init_kwargs: extra keyword arguments for ``ray.init``.
        poll_s: seconds between checks for timeouts while nothing finishes.
        connect_timeout: seconds to wait for a TCP connection to ``address`` before giving up.
    """

    name = "ray"

    def __init__(
        self,
        jobs: int = 1,
        address: str | None = None,
        gpus_per_run: float | None = None,
        cpus_per_run: float | None = None,
        max_retries: int = 2,
        run_timeout: float | None = None,
        num_cpus: int | None = None,
        data_cache: bool = True,
        cache_size: int = 2,
        records_on_workers: bool = True,
        init_kwargs: Mapping[str, Any] | None = None,
        poll_s: float = 1.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.jobs = int(jobs)
        self.address = str(address).strip() if address not in (None, "") else None
        self.gpus_per_run = float(gpus_per_run or 0.0)
        self.cpus_per_run = float(cpus_per_run if cpus_per_run is not None else 1.0)
        self.max_retries = int(max_retries)
        self.run_timeout = float(run_timeout) if run_timeout not in (None, 0) else None
        self.num_cpus = int(num_cpus) if num_cpus is not None else None
        self.data_cache = bool(data_cache)
        self.cache_size = int(cache_size)
        self.records_on_workers = bool(records_on_workers)
        self.init_kwargs = dict(init_kwargs or {})
        self.poll_s = float(poll_s)
        self.connect_timeout = float(connect_timeout)
        #: After :meth:`run_all`: per node id, what its dataset cache did (``loads``, ...).
        self.cache_stats: dict[str, dict[str, Any]] = {}
        if self.jobs < 1:
            raise ConfigError(f"--jobs {jobs!r}: expected a positive integer")
        if self.gpus_per_run < 0 or self.cpus_per_run < 0 or (self.gpus_per_run == 0 and self.cpus_per_run == 0):
            raise ConfigError(
                f"--gpus-per-run {gpus_per_run!r} / --cpus-per-run {cpus_per_run!r}: expected non-negative numbers, not both 0"
            )
        if self.max_retries < 0:
            raise ConfigError(f"max_retries {max_retries!r}: expected 0 or a positive integer")
        if self.run_timeout is not None and self.run_timeout < 0:
            raise ConfigError(f"run_timeout {run_timeout!r}: expected a positive number of seconds or None")

    # ------------------------------------------------------------------ connection
    def _probe(self) -> None:
        """A TCP connection to ``HOST:PORT`` (or ``ray://HOST:PORT``) within ``connect_timeout``, or one line."""
        if self.address is None or self.address.lower() in ("auto", "local"):
            return
        hostport = self.address.split("://", 1)[-1]
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"--address {self.address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=self.connect_timeout):
                pass
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
            raise ConfigError(
                f"--address {self.address}: no Ray head answers at {host}:{port} ({reason}, waited up to "
                f"{self.connect_timeout:g}s); start it with `ray start --head --port {port}` or fix the address"
            ) from None

    def _connect(self) -> bool:
        """Connect to (or start) Ray; True if this call did, so :meth:`run_all` disconnects."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if self.address is None:
            n = self.num_cpus or (max(1, math.ceil(self.jobs * self.cpus_per_run)) if self.jobs > 1 else cores())
            kwargs["num_cpus"] = n
        else:
            self._probe()
            kwargs["address"] = self.address
            kwargs.pop("include_dashboard")
        kwargs.update(self.init_kwargs)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"--address {self.address}" if self.address else "a local Ray instance"
            raise ConfigError(f"could not connect to {where}: {str(exc).splitlines()[0][:300]}") from None
        log.info("ray: connected, %s", ray.cluster_resources())
        return True

    def _check_fits(self) -> None:
        """Fail fast when no node can ever hold one run (it would wait forever)."""
        best_cpu = best_gpu = 0.0
        for node in ray.nodes():
            if node.get("Alive"):
                res = node.get("Resources", {})
                if res.get("CPU", 0.0) >= self.cpus_per_run and res.get("GPU", 0.0) >= self.gpus_per_run:
                    return
                best_cpu, best_gpu = max(best_cpu, res.get("CPU", 0.0)), max(best_gpu, res.get("GPU", 0.0))
        raise ConfigError(
            f"--cpus-per-run {self.cpus_per_run:g} --gpus-per-run {self.gpus_per_run:g}: no node of the Ray cluster has "
            f"that much (largest: {best_cpu:g} CPU, {best_gpu:g} GPU); lower them or add nodes"
        )

    def _slots(self) -> int:
        """Runs the cluster can hold at once (at least 1), capped by ``jobs`` when above 1."""
        res = ray.cluster_resources()
        caps = []
        if self.cpus_per_run > 0:
            caps.append(math.floor(res.get("CPU", 0.0) / self.cpus_per_run + 1e-9))
        if self.gpus_per_run > 0:
            caps.append(math.floor(res.get("GPU", 0.0) / self.gpus_per_run + 1e-9))
        n = max(1, min(caps))
        return min(n, self.jobs) if self.jobs > 1 else n

    # ------------------------------------------------------------------ the sweep
    def run_all(
        self,
        specs: list[RunSpec],
        run_kwargs: RunKwargs,
        on_start: OnStart,
        on_result: OnResult,
        on_progress: OnProgress | None = None,
    ) -> None:
        """Run ``specs`` as Ray tasks; ``on_progress(run_id, epochs_done, epochs)`` after every
        epoch of a run (reported by the tasks to a :class:`~.ray_task.ProgressBoard` actor)."""
        if not specs:
            return
        kw = _portable_kwargs(run_kwargs, self.cpus_per_run, specs)
        if kw.device.startswith("cuda") and self.gpus_per_run == 0:
            raise ConfigError(
                f"--device {kw.device} with --backend ray: give --gpus-per-run (e.g. 1) so Ray assigns GPUs"
            )
        if self.gpus_per_run > 0:
            _warn_cpu_presets(specs)
        connected = self._connect()
        marker: Path | None = None
        caches: NodeCaches | None = None
        board: Any = None
        try:
            self._check_fits()
            token = secrets.token_hex(16)
            if kw.out is not None and self.records_on_workers:
                marker = Path(kw.out) / f"{MARKER_PREFIX}{token}"
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(token)
            if self.data_cache:
                caches = NodeCaches(self.cache_size, kw.plugins)
            task = remote_task().options(
                num_cpus=self.cpus_per_run,
                num_gpus=self.gpus_per_run,
                max_retries=self.max_retries,
                retry_exceptions=False,
            )
            if on_progress is not None:
                board = progress_board()
            self._loop(specs, kw, token, task, caches, on_start, on_result, (board, on_progress))
            if caches is not None:
                self.cache_stats = caches.stats()
                loads = {node[:12]: st.get("loads") for node, st in self.cache_stats.items()}
                log.info("ray: dataset loads per node: %s", loads)
        finally:
            if board is not None:
                _kill(board)
            if caches is not None:
                caches.close()
            if marker is not None:
                marker.unlink(missing_ok=True)
            if connected:
                ray.shutdown()

    def _loop(
        self,
        specs: list[RunSpec],
        kw: RunKwargs,
        token: str,
        task: Any,
        caches: NodeCaches | None,
        on_start: OnStart,
        on_result: OnResult,
        progress: tuple[Any, OnProgress | None] = (None, None),
    ) -> None:
        by_id = {s.run_id: s for s in specs}
        board, on_progress = progress
        queue = list(reversed(specs))  # pop() from the end keeps the sweep's order
        in_flight: dict[Any, tuple[str, float]] = {}  # ref -> (run_id, submitted at)
        kw_dict = kw.to_dict()
        slots, refreshed = self._slots(), time.monotonic()
        if caches is not None:
            caches.refresh()
        try:
            while queue or in_flight:
                now = time.monotonic()
                if now - refreshed > REFRESH_S:
                    slots, refreshed = self._slots(), now
                    if caches is not None:
                        caches.refresh()
                while queue and len(in_flight) < slots:
                    rs = queue.pop()
                    if not on_start(rs):
                        continue
                    handles = caches.handles if caches is not None else {}
                    ref = task.remote(rs, kw_dict, token, handles, self.gpus_per_run > 0, board)
                    in_flight[ref] = (rs.run_id, time.monotonic())
                if not in_flight:
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=self.poll_s)
                if ready:
                    ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
                if board is not None:
                    _report_epochs(board, on_progress, {run_id for run_id, _t in in_flight.values()})
                for ref in ready:
                    run_id, _t = in_flight.pop(ref)
                    on_result(collect(ref, by_id[run_id], self.max_retries))
                if self.run_timeout is not None:
                    now = time.monotonic()
                    for ref, (run_id, t_sub) in list(in_flight.items()):
                        if now - t_sub > self.run_timeout:
                            del in_flight[ref]
                            cancel(ref)
                            reason = f"run exceeded run_timeout={self.run_timeout:g}s and was cancelled"
                            on_result(lost(by_id[run_id], reason))
        except BaseException:
            # Ctrl-C (or a failing callback): stop everything still running; records of
            # finished runs are complete files already.
            for ref in in_flight:
                cancel(ref)
            if in_flight:
                log.warning("ray: cancelled %d run(s) in flight", len(in_flight))
            raise


# ---------------------------------------------------------------------- driver helpers
def _report_epochs(board: Any, on_progress: Any, running: set[str]) -> None:
    """Pass the board's latest epochs of the runs still in flight to ``on_progress``
    (best effort: a board that does not answer costs progress ticks, never runs)."""
    try:
        latest = ray.get(board.drain.remote(), timeout=PROGRESS_TIMEOUT_S)
    except Exception as exc:
        log.debug("ray: progress board: %s", exc)
        return
    for run_id, (done, total) in latest.items():
        if run_id in running:
            on_progress(run_id, done, total)


def _kill(actor: Any) -> None:
    try:
        ray.kill(actor)
    except Exception as exc:  # the cluster is gone already
        log.debug("ray.kill: %s", exc)


def _portable_kwargs(kw: RunKwargs, cpus_per_run: float, specs: list[RunSpec]) -> RunKwargs:
    """Paths that mean the same on every node (absolute), the plugins the specs need, and
    torch threads = CPUs per run.

    Workers do not share the driver's working directory, so ``out``, ``data_root`` and
    ``--plugin`` files are made absolute; a ``data_root`` left unset becomes the driver's
    resolved ``$NRCHBENCH_DATA`` or ``./datasets``: data must sit at that path on every node.
    """
    from nrchbench.utils import resolve_data_root

    imports, _ = child_imports(specs)
    plugins = tuple(str(Path(p).resolve()) if Path(p).is_file() else p for p in (*kw.plugins, *imports))
    return replace(
        kw,
        out=str(Path(kw.out).resolve()) if kw.out is not None else None,
        data_root=str(resolve_data_root(kw.data_root).resolve()),
        plugins=tuple(dict.fromkeys(plugins)),
        threads=kw.threads or max(1, int(cpus_per_run)),
    )


def _warn_cpu_presets(specs: list[RunSpec]) -> None:
    auto_cpu = [s for s in specs if s.preset_requested == "auto" and s.device == "cpu"]
    if auto_cpu:
        log.warning(
            "%d run(s) asked for --preset auto, resolved to %r on this CPU-only driver although runs get GPUs; "
            "pass --preset paper to get the GPU preset",
            len(auto_cpu),
            auto_cpu[0].preset,
        )
