"""Sweep backends: where the runs of a sweep execute.

A backend gets the pending specs of a sweep and must, for each, call :func:`execute`
somewhere (in this process, a worker process, a Ray task on another host) and report the
:class:`RunResult` back through ``on_result`` in the driver process. The driver
(:mod:`nrchbench.sweep`) owns everything else: planning, resuming, writing records the worker
could not write, the summary.

The protocol (see :class:`Backend`)::

    class MyBackend:
        name = "mine"
        def __init__(self, jobs: int = 1, **options): ...
        def run_all(self, specs, run_kwargs, on_start, on_result) -> None: ...

* ``specs``: list of :class:`~nrchbench.spec.RunSpec` (picklable; :func:`execute` takes
  one, and a ``loader`` standing in for ``load_dataset``, e.g. a per-node cache).
* ``run_kwargs``: :class:`RunKwargs` — pass it to :func:`execute` unchanged. Its ``out`` is
  the results directory: a worker that sees the same filesystem writes the record itself
  (``RunResult.written``); otherwise set ``out=None`` before calling :func:`execute` and the
  driver writes the returned record (codes files need the shared filesystem).
* ``on_start(spec)`` when a run starts (optional for the backend to call), and
  ``on_result(result)`` exactly once per spec, in the driver process/thread that called
  ``run_all``. A run that raises inside :func:`execute` already becomes a failed result; a
  worker that dies (killed, out of memory) should be reported with :func:`lost_result`.
* ``run_all`` returns when every spec has been reported, and lets ``KeyboardInterrupt``
  propagate after cancelling what it can.

Backends are looked up by name in :data:`BACKENDS` (``module:Class``) and imported lazily, so
the Ray backend (``nrchbench/backends/ray_backend.py``, class ``RayBackend``) costs nothing
unless asked for; a missing ``ray`` gives the one-line hint of :data:`RAY_HINT`.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from nrchbench.errors import ConfigError, NrchbenchError
from nrchbench.records import Record
from nrchbench.spec import RunSpec

BACKENDS: dict[str, str] = {
    "local": "nrchbench.backends.local:LocalBackend",
    "ray": "nrchbench.backends.ray_backend:RayBackend",
}
RAY_HINT = "ray backend needs the optional extra: pip install 'nrchbench[ray]'"


@dataclass
class RunKwargs:
    """Everything a worker needs besides the spec (picklable, JSON-friendly)."""

    out: str | None = None
    data_root: str | None = None
    device: str = "auto"
    save_codes: bool = False
    plugins: tuple[str, ...] = ()
    threads: int | None = None  # torch threads per run (None = leave as is)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """What comes back from one run, wherever it ran."""

    run_id: str
    status: str  # "ok" | "failed"
    error: str | None
    record: Record | None = field(repr=False, default=None)
    written: bool = False  # the worker wrote the record under out itself
    host: str = ""
    pid: int = 0
    seconds: float = 0.0
    node: str = ""  # the Ray node id where the run ran (empty for local runs)


OnStart = Callable[[RunSpec], None]
OnResult = Callable[[RunResult], None]


class Backend(Protocol):
    """What :func:`nrchbench.sweep.run_sweep` needs from a backend."""

    name: str

    def run_all(self, specs: list[RunSpec], run_kwargs: RunKwargs, on_start: OnStart, on_result: OnResult) -> None: ...


def _setup_worker(plugins: tuple[str, ...], threads: int | None) -> None:
    """Import ``--plugin`` modules and set torch's thread count (idempotent)."""
    if plugins:
        from nrchbench.plugins import import_plugins

        import_plugins(tuple(plugins))
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def execute(
    spec: RunSpec, run_kwargs: RunKwargs | Mapping[str, Any], loader: Callable[..., Any] | None = None
) -> RunResult:
    """Run one spec on this process and return its result (never raises for a failed run).

    This is the function a backend runs on its workers; ``loader`` stands in for
    :func:`nrchbench.datasets.load_dataset` (the Ray backend's per-node cache).
    """
    from nrchbench.runner import one_line, run_safe

    kw = run_kwargs if isinstance(run_kwargs, RunKwargs) else RunKwargs(**dict(run_kwargs))
    t = time.perf_counter()
    host, pid = socket.gethostname(), os.getpid()
    try:
        _setup_worker(tuple(kw.plugins), kw.threads)
        record = run_safe(
            spec,
            data_root=kw.data_root,
            loader=loader,
            device=kw.device if kw.device != "auto" else None,
            save_codes=kw.save_codes,
            out=kw.out,
        )
    except Exception as exc:  # the spec could not even start (a plugin that fails to import, ...)
        return RunResult(spec.run_id, "failed", one_line(exc), None, False, host, pid, time.perf_counter() - t)
    return RunResult(
        run_id=spec.run_id,
        status=record.status,
        error=record.error,
        record=record,
        written=kw.out is not None,
        host=host,
        pid=pid,
        seconds=time.perf_counter() - t,
    )


def lost_result(spec: RunSpec, reason: str, host: str = "", pid: int = 0) -> RunResult:
    """A failed result for a run whose worker died (nothing is recorded; it reruns next time)."""
    return RunResult(spec.run_id, "failed", reason, None, False, host or socket.gethostname(), pid, 0.0)


def get_backend(name: str = "local", **options: Any) -> Backend:
    """Create a backend by name (``local``, ``ray``), importing its module lazily.

    Raises:
        ConfigError: unknown backend, or its optional dependency is missing.
    """
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise ConfigError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
    mod_name, attr = BACKENDS[key].split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if key == "ray" and (missing == mod_name or missing == "ray" or missing.startswith("ray.")):
            raise ConfigError(RAY_HINT) from None
        raise
    cls = getattr(mod, attr)
    try:
        return cls(**options)
    except NrchbenchError:
        raise
    except TypeError as exc:
        raise ConfigError(f"--backend {key}: {exc}") from None


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
