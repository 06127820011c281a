"""Local backend: runs in this process (``jobs=1``) or in N spawned worker processes.

Workers are started with the ``spawn`` method (no inherited CUDA or thread-pool state),
import the sweep's plugins once, and use ``max(1, cores // jobs)`` torch threads each. At
most ``jobs`` runs are in flight, so a worker that dies (killed, out of memory) costs only
the runs it had: they are reported as failed (not recorded, so they rerun next time) and a
fresh pool takes the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
from collections import deque
from dataclasses import replace

from nrchbench.backends import OnResult, OnStart, RunKwargs, _setup_worker, cores, execute, lost_result
from nrchbench.errors import ConfigError
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)


class LocalBackend:
    """Run specs on this machine.

    Args:
        jobs: worker processes (1 = run in this process, one after another).
        **options: ignored options of other backends (``address``, ``gpus_per_run``, ...)
            are refused with an error when set.
    """

    name = "local"

    def __init__(self, jobs: int = 1, **options: object) -> None:
        if int(jobs) < 1:
            raise ConfigError(f"--jobs {jobs!r}: expected a positive integer")
        used = {k: v for k, v in options.items() if v not in (None, False, 0, "")}
        if used:
            raise ConfigError(f"--backend local does not take {', '.join(sorted(used))}; those are for --backend ray")
        self.jobs = int(jobs)

    def run_all(self, specs: list[RunSpec], run_kwargs: RunKwargs, on_start: OnStart, on_result: OnResult) -> None:
        if self.jobs == 1 or len(specs) <= 1:
            for spec in specs:
                on_start(spec)
                on_result(execute(spec, run_kwargs))
            return
        kw = replace(run_kwargs, threads=run_kwargs.threads or max(1, cores() // self.jobs))
        queue = deque(specs)
        while queue:
            self._run_pool(queue, kw, on_start, on_result)

    def _run_pool(self, queue: deque, kw: RunKwargs, on_start: OnStart, on_result: OnResult) -> None:
        """Drain ``queue`` through one pool; returns early (queue not empty) if the pool breaks."""
        ctx = mp.get_context("spawn")
        pool = cf.ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=ctx, initializer=_setup_worker, initargs=(tuple(kw.plugins), kw.threads)
        )
        in_flight: dict[cf.Future, RunSpec] = {}
        broken = False
        try:
            while queue or in_flight:
                while queue and len(in_flight) < self.jobs and not broken:
                    spec = queue.popleft()
                    try:
                        fut = pool.submit(execute, spec, kw)
                    except cf.process.BrokenProcessPool:
                        queue.appendleft(spec)
                        broken = True
                        break
                    in_flight[fut] = spec
                    on_start(spec)
                if not in_flight:
                    break
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    spec = in_flight.pop(fut)
                    try:
                        result = fut.result()
                    except cf.process.BrokenProcessPool:
                        broken = True
                        result = lost_result(spec, "worker process died (killed or out of memory); rerun to retry")
                    except Exception as exc:  # pickling errors and the like
                        result = lost_result(spec, f"{type(exc).__name__}: {exc}"[:500])
                    on_result(result)
                if broken and not in_flight:
                    log.warning("a worker process died; starting a fresh pool for %d remaining run(s)", len(queue))
                    break
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=not broken, cancel_futures=True)
