"""Ray backend: each run of a sweep is a Ray task on a local instance or on a cluster.

``nrchbench sweep ... --backend ray [--address auto|HOST:PORT] [--gpus-per-run F] [--cpus-per-run N]``

How it works (the driver is the process that called :meth:`RayBackend.run_all`):

* **Scheduling.** Each pending spec becomes one task ``ray.remote(num_cpus=cpus_per_run,
  num_gpus=gpus_per_run, max_retries=max_retries)``, so a cluster with G GPUs runs G/F runs
  at once. The driver keeps at most as many tasks in flight as the cluster has slots for
  (re-read every few seconds, so nodes that join are used), which makes ``on_start`` mean
  "started" and ``run_timeout`` measure run time rather than queueing time.
* **Faults.** A task whose worker process or node dies is retried by Ray up to
  ``max_retries`` times (system failures only: a run that *raises* is already a failed
  result from :func:`~nrchbench.backends.execute` and is never retried). After the last
  retry, or when a run exceeds ``run_timeout`` seconds (it is then cancelled with
  ``ray.cancel(force=True)``), the run is recorded ``failed`` with the reason, so a sweep
  never hangs on a lost node; the next sweep reruns it. The driver waits with
  ``ray.wait(timeout=...)`` and catches every :class:`ray.exceptions.RayError`. Ctrl-C
  cancels every outstanding task and re-raises; finished records stay as they are.
* **Records.** Identical to the local backend (same runner, same atomic writer, same
  ``run_id`` and path). The driver drops a marker file with a random token into ``out``;
  a task writes its record itself only if it sees that marker with that token (a shared
  filesystem), otherwise the record travels back in the task's result and the driver
  writes it. ``--save-codes`` needs the shared filesystem (codes are not shipped back).
* **Data: a per-node cache actor.** At the start the driver places one small actor
  (``num_cpus=0``, :class:`~ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy`,
  owned by the driver so it dies with the sweep) on every alive node. Tasks on that node
  ask it for their dataset: the actor loads it once (from the node's own disk, with
  ``load_dataset``) and keeps it in the node's object store (LRU, ``cache_size``
  datasets); every worker process on the node then maps the same arrays zero-copy. Why
  this and not the alternatives: the driver may not have the data at all (on clusters
  the data lives on the nodes), so ``ray.put`` from the driver is out; a per-process
  cache would load and hold one copy per worker process (8 copies of NUS-WIDE on an
  8-GPU node). If the actor is unavailable (a node that joined late, the actor died, the
  dataset fails to load) the task loads the data itself, so errors read exactly as with
  the local backend. The cache reaches the runner as its ``loader`` argument.
* **Where.** ``RunResult.host``/``pid`` name the worker; ``RunResult.node`` the Ray node id.

Without ``address`` (or with ``address=None``) a local Ray instance is started for the
sweep and shut down at the end (unless this process was already connected to Ray, in which
case that connection is used and left open).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray  # a missing ray makes get_backend() raise the one-line RAY_HINT

from nrchbench.backends import OnResult, OnStart, RunKwargs, RunResult, cores, execute, lost_result
from nrchbench.errors import ConfigError
from nrchbench.jsonutil import canonical_json
from nrchbench.records import Record
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)

MARKER_PREFIX = ".nrchbench-ray-"
#: Seconds between refreshes of the cluster's size (slots, new nodes).
REFRESH_S = 5.0


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
        data_cache: serve datasets from a per-node cache actor (see the module docstring).
        cache_size: datasets each node's cache keeps.
        records_on_workers: let a worker that sees the driver's ``out`` write its record
            (False: every record travels back and the driver writes it).
        init_kwargs: extra keyword arguments for ``ray.init``.
        poll_s: seconds between checks for timeouts while nothing finishes.
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
    def _connect(self) -> bool:
        """Connect to (or start) Ray; True if this call did, so :meth:`run_all` disconnects."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if self.address is None:
            n = self.num_cpus or (max(1, math.ceil(self.jobs * self.cpus_per_run)) if self.jobs > 1 else cores())
            kwargs["num_cpus"] = n
        else:
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
    def run_all(self, specs: list[RunSpec], run_kwargs: RunKwargs, on_start: OnStart, on_result: OnResult) -> None:
        if not specs:
            return
        kw = _portable_kwargs(run_kwargs, self.cpus_per_run)
        if kw.device.startswith("cuda") and self.gpus_per_run == 0:
            raise ConfigError(
                f"--device {kw.device} with --backend ray: give --gpus-per-run (e.g. 1) so Ray assigns GPUs"
            )
        by_id = {s.run_id: s for s in specs}
        if self.gpus_per_run > 0:
            _warn_cpu_presets(specs)
        connected = self._connect()
        marker: Path | None = None
        caches: _NodeCaches | None = None
        try:
            self._check_fits()
            token = secrets.token_hex(16)
            if kw.out is not None and self.records_on_workers:
                marker = Path(kw.out) / f"{MARKER_PREFIX}{token}"
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(token)
            if self.data_cache:
                caches = _NodeCaches(self.cache_size, kw.plugins)
            task = _remote_task().options(
                num_cpus=self.cpus_per_run,
                num_gpus=self.gpus_per_run,
                max_retries=self.max_retries,
                retry_exceptions=False,
            )
            self._loop(specs, by_id, kw, token, task, caches, on_start, on_result)
            if caches is not None:
                self.cache_stats = caches.stats()
                loads = {node[:12]: st.get("loads") for node, st in self.cache_stats.items()}
                log.info("ray: dataset loads per node: %s", loads)
        finally:
            if caches is not None:
                caches.close()
            if marker is not None:
                marker.unlink(missing_ok=True)
            if connected:
                ray.shutdown()

    def _loop(
        self,
        specs: list[RunSpec],
        by_id: dict[str, RunSpec],
        kw: RunKwargs,
        token: str,
        task: Any,
        caches: _NodeCaches | None,
        on_start: OnStart,
        on_result: OnResult,
    ) -> None:
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
                    handles = caches.handles if caches is not None else {}
                    ref = task.remote(rs, kw_dict, token, handles, self.gpus_per_run > 0)
                    in_flight[ref] = (rs.run_id, time.monotonic())
                    on_start(rs)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=self.poll_s)
                if ready:
                    ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
                for ref in ready:
                    run_id, _t = in_flight.pop(ref)
                    on_result(self._collect(ref, by_id[run_id], kw))
                if self.run_timeout is not None:
                    now = time.monotonic()
                    for ref, (run_id, t_sub) in list(in_flight.items()):
                        if now - t_sub > self.run_timeout:
                            del in_flight[ref]
                            _cancel(ref)
                            reason = f"run exceeded run_timeout={self.run_timeout:g}s and was cancelled"
                            on_result(_lost(by_id[run_id], reason, kw.out))
        except BaseException:
            # Ctrl-C (or a failing callback): stop everything still running; records of
            # finished runs are complete files already.
            for ref in in_flight:
                _cancel(ref)
            if in_flight:
                log.warning("ray: cancelled %d run(s) in flight", len(in_flight))
            raise

    def _collect(self, ref: Any, spec: RunSpec, kw: RunKwargs) -> RunResult:
        """The result of a finished task, or a failed one when it was lost."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # our task code raised (not the run: execute never raises)
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return _lost(spec, f"ray task error: {_one_line(cause)}", kw.out)
        except ray.exceptions.RayError as exc:  # worker/node died after the retries, object lost, ...
            reason = f"lost after {self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}: {_one_line(exc)}"
            return _lost(spec, reason, kw.out)


# ---------------------------------------------------------------------- driver helpers
def _one_line(exc: BaseException) -> str:
    from nrchbench.runner import one_line

    return one_line(exc)


def _cancel(ref: Any) -> None:
    try:
        ray.cancel(ref, force=True)
    except Exception as exc:  # already finished, or the node is gone
        log.debug("ray.cancel: %s", exc)


def _portable_kwargs(kw: RunKwargs, cpus_per_run: float) -> RunKwargs:
    """Paths that mean the same on every node (absolute), and torch threads = CPUs per run.

    Workers do not share the driver's working directory, so ``out``, ``data_root`` and
    ``--plugin`` files are made absolute; a ``data_root`` left unset becomes the driver's
    resolved ``$NRCHBENCH_DATA`` or ``./datasets``: data must sit at that path on every node.
    """
    from nrchbench.utils import resolve_data_root

    plugins = tuple(str(Path(p).resolve()) if Path(p).is_file() else p for p in kw.plugins)
    return replace(
        kw,
        out=str(Path(kw.out).resolve()) if kw.out is not None else None,
        data_root=str(resolve_data_root(kw.data_root).resolve()),
        plugins=plugins,
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


def failed_record(spec: RunSpec, reason: str) -> Record:
    """A ``status: failed`` record for a run that never returned (its ``env`` is the driver's)."""
    from nrchbench.runner import failed_record as _failed

    return _failed(spec.with_device("cpu"), reason)


def _lost(spec: RunSpec, reason: str, out: str | None) -> RunResult:
    """A lost run → a failed result with a record for the driver to write.

    If the worker wrote an ``ok`` record before it was lost (shared filesystem), that one
    stands.
    """
    if out is not None:
        from nrchbench.records import find_record

        rec = find_record(out, spec)
        if rec is not None and rec.status == "ok":
            return RunResult(spec.run_id, "ok", None, rec, True, rec.env.hostname, 0, 0.0)
    res = lost_result(spec, reason)
    res.record = failed_record(spec, reason)
    return res


# ---------------------------------------------------------------------- the per-node cache
class _DatasetCache:
    """Lives on one node; loads each dataset once and keeps it in the node's object store."""

    def __init__(self, size: int, plugins: tuple[str, ...]) -> None:
        from nrchbench.backends import _setup_worker

        _setup_worker(tuple(plugins), None)
        self.size = max(1, int(size))
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.loads = 0

    def get(self, key: str, args: tuple[Any, ...], options: dict[str, Any]) -> list[Any]:
        if key in self.items:
            self.items.move_to_end(key)
        else:
            from nrchbench.datasets import load_dataset

            ds = load_dataset(*args, **options)
            self.items[key] = ray.put(ds)
            self.loads += 1
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return [self.items[key]]  # a list, so the caller gets the reference, not the value

    def stats(self) -> dict[str, Any]:
        return {"loads": self.loads, "cached": len(self.items), "pid": os.getpid(), "host": socket.gethostname()}


class _NodeCaches:
    """One :class:`_DatasetCache` actor per alive node, owned by the driver."""

    def __init__(self, size: int, plugins: tuple[str, ...]) -> None:
        self.size, self.plugins = size, tuple(plugins)
        self.handles: dict[str, Any] = {}
        self.actor_class = ray.remote(num_cpus=0, max_restarts=0)(_DatasetCache)

    def refresh(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cls = self.actor_class
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        for node_id in list(self.handles):
            if node_id not in alive:
                del self.handles[node_id]
        for node_id in sorted(alive - set(self.handles)):
            strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
            self.handles[node_id] = cls.options(scheduling_strategy=strategy).remote(self.size, self.plugins)

    def stats(self, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
        """Per node: how many datasets its cache loaded (for tests, benchmarks and the log)."""
        refs = {h.stats.remote(): node for node, h in self.handles.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout) if refs else ([], [])
        out: dict[str, dict[str, Any]] = {}
        for ref, node in refs.items():
            try:
                out[node] = ray.get(ref, timeout=0) if ref in ready else {"error": "no answer"}
            except ray.exceptions.RayError as exc:  # the node died
                out[node] = {"error": _one_line(exc)}
        return out

    def close(self) -> None:
        for h in self.handles.values():
            try:
                ray.kill(h)
            except Exception as exc:
                log.debug("ray.kill: %s", exc)
        self.handles.clear()


# ---------------------------------------------------------------------- the task (on workers)
def _sees_driver_fs(out: str | None, token: str) -> bool:
    """True when this worker sees the driver's ``out`` (the marker file holds the token)."""
    if out is None:
        return False
    try:
        return (Path(out) / f"{MARKER_PREFIX}{token}").read_text() == token
    except OSError:
        return False


class _CachedLoader:
    """A ``load_dataset`` stand-in that asks this node's cache actor first."""

    def __init__(self, actor: Any, fallback: Callable[..., Any]) -> None:
        self.actor, self.fallback = actor, fallback

    def __call__(
        self,
        name_or_dir: Any,
        data_root: Any = None,
        split: Any = None,
        split_seed: int = 0,
        val_size: Any = 0,
        **options: Any,
    ) -> Any:
        args = (str(name_or_dir), None if data_root is None else str(data_root), split, split_seed, val_size)
        key = canonical_json({"args": list(args), "options": options})
        try:
            ref = ray.get(self.actor.get.remote(key, args, dict(options)))[0]
            return ray.get(ref)
        except Exception as exc:  # the actor is gone or the load failed: load here (same errors as locally)
            log.debug("dataset cache unavailable (%s); loading in this process", exc)
            return self.fallback(name_or_dir, data_root, split, split_seed, val_size, **options)


def _run_task(spec: RunSpec, kw: dict[str, Any], token: str, caches: dict[str, Any], gpu: bool) -> RunResult:
    """One run on a Ray worker (see :func:`_remote_task`)."""
    from nrchbench.datasets import load_dataset

    ctx = ray.get_runtime_context()
    node_id = ctx.get_node_id()
    run_kwargs = RunKwargs(**kw)
    if not _sees_driver_fs(run_kwargs.out, token):
        if run_kwargs.save_codes:
            log.warning("node %s does not share %s with the driver: codes are not saved", node_id[:12], run_kwargs.out)
        run_kwargs = replace(run_kwargs, out=None)
    if run_kwargs.device == "auto":
        # The driver resolved ``auto`` on its own hardware; what counts is this worker's
        # (the device is not part of the run id).
        import torch

        spec = spec.with_device("cuda" if gpu and torch.cuda.is_available() else "cpu")
    actor = caches.get(node_id)
    loader = _CachedLoader(actor, load_dataset) if actor is not None else None
    result = execute(spec, run_kwargs, loader=loader)
    result.node = node_id
    return result


_REMOTE: Any = None


def _remote_task() -> Any:
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(_run_task)
    return _REMOTE
