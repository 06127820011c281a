"""Local backend: every run in a worker process on this machine, ``jobs`` at a time.

Even with ``jobs=1`` (the default) runs do not share the driver's process: a run that dies
(killed by the out-of-memory killer, ``os._exit``, a segfault) is recorded ``failed`` with
the signal or exit code and its last output line, and the sweep goes on with a fresh worker
(:mod:`nrchbench.backends.workers`). Workers are started once per sweep (``spawn``: about
as long as ``import nrchbench, torch``) and reused, so a run costs only the two pipe
messages more than in-process.

Torch threads per run: with ``jobs=1`` the driver's own count (what an in-process run used,
so records are the same bit for bit); with ``jobs=N`` ``max(1, cores // N)``.

The registered objects a spec uses (method, dataset, noise model, strategy) must be
importable in a fresh process: plugins (``--plugin``, a sweep file's ``plugins``, or any
plugin file or module imported in the driver) are imported by every worker. A method
defined only in an interactive session (a notebook's ``__main__``) cannot be: its specs run
in the driver's process, unprotected, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from nrchbench.backends import OnProgress, OnResult, OnStart, RunKwargs, child_imports, cores, execute
from nrchbench.backends.workers import WorkerPool
from nrchbench.errors import ConfigError
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)


class LocalBackend:
    """Run specs on this machine, each in a worker process.

    Args:
        jobs: runs at once (worker processes).
        **options: ignored options of other backends (``address``, ``gpus_per_run``, ...)
            are refused with an error when set.

    After :meth:`run_all`, ``workers_started`` says how many worker processes it took (one
    more for every run that died).
    """

    name = "local"

    def __init__(self, jobs: int = 1, **options: object) -> None:
        if int(jobs) < 1:
            raise ConfigError(f"--jobs {jobs!r}: expected a positive integer")
        used = {k: v for k, v in options.items() if v not in (None, False, 0, "")}
        if used:
            raise ConfigError(f"--backend local does not take {', '.join(sorted(used))}; those are for --backend ray")
        self.jobs = int(jobs)
        self.workers_started = 0

    def run_all(
        self,
        specs: list[RunSpec],
        run_kwargs: RunKwargs,
        on_start: OnStart,
        on_result: OnResult,
        on_progress: OnProgress | None = None,
    ) -> None:
        """Run ``specs``; ``on_progress(run_id, epochs_done, epochs)`` after every epoch of a run."""
        imports, interactive = child_imports(specs)
        here = [s for s in specs if s.run_id in interactive]
        if here:
            log.warning(
                "%d run(s) use objects defined only in this interactive session; they run in this process, "
                "not isolated (a crash ends the sweep): define them in a module or a --plugin file",
                len(here),
            )
            for spec in here:
                if on_start(spec):
                    progress = _progress_of(spec.run_id, on_progress)
                    on_result(execute(spec, run_kwargs, progress=progress))
        rest = [s for s in specs if s.run_id not in interactive]
        if not rest:
            return
        threads = run_kwargs.threads or (_torch_threads() if self.jobs == 1 else max(1, cores() // self.jobs))
        plugins = tuple(dict.fromkeys((*run_kwargs.plugins, *imports)))
        kw = replace(run_kwargs, threads=threads, plugins=plugins)
        pool = WorkerPool(min(self.jobs, len(rest)), plugins, threads)
        try:
            pool.run_all(rest, kw, on_start, on_result, on_progress)
        finally:
            self.workers_started += pool.started


def _progress_of(run_id: str, on_progress: OnProgress | None) -> Callable[[int, int, Any], None] | None:
    """The runner's ``progress`` callback reporting to ``on_progress`` (None without it)."""
    if on_progress is None:
        return None
    return lambda epoch, total, _entry: on_progress(run_id, epoch + 1, total)


def _torch_threads() -> int:
    """The driver's torch thread count: what a run in this process would use."""
    import torch

    return torch.get_num_threads()
