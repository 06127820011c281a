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
* ``on_start(spec) -> bool`` just before a run would start, in the driver: the driver claims
  the spec there (see :mod:`nrchbench.claims`). If it returns False the spec must not be
  run (another sweep holds it, or finished it meanwhile) and gets no ``on_result``.
* ``on_result(result)`` exactly once per started spec, in the driver process/thread that
  called ``run_all``. A run that raises inside :func:`execute` already becomes a failed
  result; a run whose process or node dies (killed, out of memory, a segfault) is reported
  with :func:`lost_result` and the reason, and the driver records it ``failed``.
* ``run_all`` returns when every started spec has been reported, and lets
  ``KeyboardInterrupt`` propagate after cancelling what it can.

The local backend runs every spec in a worker process (:mod:`nrchbench.backends.workers`),
at every ``--jobs``, so that no run can take the sweep down with it.

Backends are looked up by name in :data:`BACKENDS` (``module:Class``) and imported lazily, so
the Ray backend (``nrchbench/backends/ray_backend.py``, class ``RayBackend``) costs nothing
unless asked for; a missing ``ray`` gives the one-line hint of :data:`RAY_HINT`.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
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
    #: For a run whose process died: ``exitcode``, ``signal`` and ``output`` (its last lines).
    details: dict[str, Any] = field(default_factory=dict)


OnStart = Callable[[RunSpec], bool]
OnResult = Callable[[RunResult], None]
#: ``on_progress(run_id, epochs_done, epochs)``: optional, for backends that report epochs
#: (their ``run_all`` takes it as a keyword; the local and Ray backends do).
OnProgress = Callable[[str, int, int], None]


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
    spec: RunSpec,
    run_kwargs: RunKwargs | Mapping[str, Any],
    loader: Callable[..., Any] | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run one spec on this process and return its result (never raises for a failed run).

    This is the function a backend runs on its workers; ``loader`` stands in for
    :func:`nrchbench.datasets.load_dataset` (the Ray backend's per-node cache);
    ``progress(epoch, total_epochs, history_entry)`` is called after every epoch.
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
            progress=progress,
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


def lost_result(
    spec: RunSpec, reason: str, host: str = "", pid: int = 0, details: Mapping[str, Any] | None = None
) -> RunResult:
    """A failed result without a record, for a run whose process or node died: the driver
    records it ``failed`` with ``reason`` (unless the run wrote an ``ok`` record before)."""
    return RunResult(
        spec.run_id, "failed", reason, None, False, host or socket.gethostname(), pid, 0.0, details=dict(details or {})
    )


def child_imports(specs: list[RunSpec]) -> tuple[list[str], set[str]]:
    """What a fresh worker process must import to know what ``specs`` use, and what it cannot.

    Returns:
        (plugins to import: the ``.py`` files of plugin files and the names of other
        modules that registered a method, dataset, noise model or strategy of these specs
        — nrchbench's own modules and entry points need nothing; the run ids of specs that
        use an object defined only in an interactive session, which no process can import).
    """
    from nrchbench.errors import RegistryError
    from nrchbench.registry import DATASETS, METHODS, NOISE, STRATEGIES

    imports: dict[str, None] = {}
    interactive: set[str] = set()
    for spec in specs:
        wanted = [(METHODS, spec.method), (NOISE, spec.noise_model), (DATASETS, spec.dataset)]
        if spec.strategy != "none":
            wanted.append((STRATEGIES, spec.strategy))
        for registry, name in wanted:
            if name is None:
                continue
            try:
                obj = registry.get(name)
            except RegistryError:  # a dataset given as a directory; an unknown name fails in the run
                continue
            module_name = str(getattr(obj, "__module__", "") or "")
            if not module_name or module_name.split(".")[0] == "nrchbench":
                continue
            module_file = getattr(sys.modules.get(module_name), "__file__", None)
            if module_name in ("__main__", "__mp_main__"):
                if module_file is None:
                    interactive.add(spec.run_id)
                # else: a script; a spawned process runs its top level again (as __mp_main__)
            elif module_name.startswith("nrchbench_plugin_") and module_file:
                imports[str(module_file)] = None  # a --plugin file: import it by path
            else:
                imports[module_name] = None
    return list(imports), interactive


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
