"""Worker processes of the local backend: every run in a child process, so that a run that
dies — SIGKILL from the out-of-memory killer, ``os._exit``, a segfault — takes nothing else
with it.

A worker is a ``spawn``-ed process (no inherited CUDA or thread-pool state) that imports the
sweep's plugins once and then runs the specs it is sent, one after another, each through
:func:`~nrchbench.backends.execute` (which writes the record), sending each result back over
its pipe. The driver waits on the pipes and on the processes' sentinels at once, so it
knows at every moment which spec a dead worker was running: that run is reported failed
with the signal or exit code and its last output line, and a fresh worker takes the next
spec. Nothing is shared between runs but the already imported modules, so a record is the
same bit for bit as from an in-process run with the same torch thread count.

Output: a worker's stdout and stderr go to a file the driver reads as it goes. Log records
(captured at INFO or the driver's level, whichever is lower) are passed to the driver's
``logging`` with their level and logger name; other lines (``print``, warnings, a
segfault's traceback from :mod:`faulthandler`) are written to the driver's stderr. The last
:data:`TAIL_LINES` lines of the current run are kept for the reason of a death.

Workers ignore Ctrl-C (the driver stops them) and, on Linux, are killed when the driver
dies (``PR_SET_PDEATHSIG``), so no orphan keeps running a spec whose claim went stale.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, BinaryIO

from nrchbench.backends import OnProgress, OnResult, OnStart, RunKwargs, RunResult, execute, lost_result
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)

__all__ = ["TAIL_LINES", "WorkerPool", "death_reason"]

#: Output lines of a run kept for the reason of its death (and its failed record).
TAIL_LINES = 20
#: Seconds between checks of the workers' output while no result comes in.
POLL_S = 0.25
#: Seconds an idle worker gets to exit by itself at the end of a sweep before it is killed.
EXIT_GRACE_S = 0.5
_LOG_MARK = "\x1e"  # starts an output line that is a log record: MARK + json [level, name, message]
_HINTS = {  # by name: not every platform has every signal
    "SIGKILL": " (the out-of-memory killer sends it)",
    "SIGSEGV": " (segmentation fault)",
    "SIGBUS": " (bus error)",
    "SIGABRT": " (aborted)",
}


# ---------------------------------------------------------------------- in the worker
class _RecordLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return _LOG_MARK + json.dumps([record.levelno, record.name, msg])


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the driver died before prctl
        os._exit(1)


def _worker_main(
    conn: Connection, parent: int, log_path: str, plugins: tuple[str, ...], threads: Any, level: int
) -> None:
    """The loop of one worker process: receive (spec, run_kwargs), send its RunResult."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    faulthandler.enable(file=sys.stderr, all_threads=False)  # the faulting thread
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RecordLine())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    from nrchbench.backends import _setup_worker
    from nrchbench.runner import one_line

    try:
        _setup_worker(plugins, threads)
    except Exception as exc:  # execute() imports them again and records the failure of each run
        log.warning("worker setup failed: %s", one_line(exc))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        spec, kw = msg

        def progress(epoch: int, total: int, _entry: Any, run_id: str = spec.run_id) -> None:
            try:
                conn.send(("epoch", run_id, epoch + 1, total))
            except (OSError, ValueError):  # the driver is gone: the run is about to be killed
                pass

        try:
            result = execute(spec, kw, progress=progress)
        except BaseException as exc:  # SystemExit or KeyboardInterrupt raised by a method
            result = lost_result(spec, one_line(exc), pid=os.getpid())
        conn.send(result)


# ---------------------------------------------------------------------- in the driver
def death_reason(exitcode: int | None, tail: Iterable[str]) -> str:
    """One line: how a run's process ended (signal or exit code) and its last output line
    (for a crash that :mod:`faulthandler` reported: its error and innermost frame)."""
    if exitcode is None:
        what = "vanished"
    elif exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
            what = f"was killed by {sig.name}{_HINTS.get(sig.name, '')}"
        except ValueError:
            what = f"was killed by signal {-exitcode}"
    else:
        what = f"exited with code {exitcode}"
    lines = [t.strip() for t in tail if t.strip()]
    fatal = [i for i, t in enumerate(lines) if t.startswith("Fatal Python error")]
    if fatal:  # faulthandler: the error, then the innermost frame
        frames = [t for t in lines[fatal[-1] :] if t.startswith("File ")]
        last = lines[fatal[-1]] + (f" at {frames[0]}" if frames else "")
    else:
        last = next((t for t in reversed(lines) if not t.startswith("Extension modules:")), "")
    return (f"run process {what}; " + (f"last output: {last}" if last else "no output"))[:500]


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    output: BinaryIO
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    partial: bytes = b""
    spec: RunSpec | None = None
    crash: list[str] = field(default_factory=list)  # a faulthandler report: its first lines


class WorkerPool:
    """Up to ``size`` worker processes, each running one spec at a time (see the module docstring).

    Args:
        size: worker processes.
        plugins: modules / ``.py`` files every worker imports first.
        threads: torch threads per worker (None: torch's default).
    """

    def __init__(self, size: int, plugins: Iterable[str] = (), threads: int | None = None) -> None:
        self.size = max(1, int(size))
        self.plugins, self.threads = tuple(plugins), threads
        self.ctx = mp.get_context("spawn")
        self.workers: list[_Worker] = []
        self.started = 0  # worker processes started so far (a death costs a new one)
        self.dir: Path | None = None
        self.on_progress: OnProgress | None = None

    # ------------------------------------------------------------------ one worker
    def _start(self) -> _Worker:
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="nrchbench-workers-"))
        path = self.dir / f"worker-{self.started}.out"
        path.touch()
        self.started += 1
        level = min(logging.INFO, logging.getLogger("nrchbench").getEffectiveLevel())
        parent_conn, child_conn = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_worker_main,
            args=(child_conn, os.getpid(), str(path), self.plugins, self.threads, level),
            name=f"nrchbench-worker-{self.started}",
        )
        proc.start()
        child_conn.close()
        worker = _Worker(proc, parent_conn, open(path, "rb"))
        self.workers.append(worker)
        return worker

    def _discard(self, w: _Worker) -> None:
        self.workers.remove(w)
        w.conn.close()
        w.output.close()

    def _pump(self, w: _Worker, final: bool = False) -> None:
        """Pass on the output ``w`` wrote since the last call; keep the tail."""
        data = w.partial + w.output.read()
        lines = data.split(b"\n")
        w.partial = b"" if final else lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if line.startswith(_LOG_MARK):
                try:
                    level, name, msg = json.loads(line[1:])
                except (ValueError, TypeError):
                    level, name, msg = logging.WARNING, __name__, line[1:]
                logging.getLogger(name).log(level, "%s", msg)
                first = str(msg).splitlines()[0] if str(msg) else ""
                w.tail.append(f"{logging.getLevelName(level)} {name}: {first}")
            elif line or not final:
                w.tail.append(line)
                sys.stderr.write(line + "\n")
                if line.startswith("Fatal Python error") or 0 < len(w.crash) < 8:
                    w.crash.append(line)

    # ------------------------------------------------------------------ the loop
    def run_all(
        self,
        specs: Iterable[RunSpec],
        kw: RunKwargs,
        on_start: OnStart,
        on_result: OnResult,
        on_progress: OnProgress | None = None,
    ) -> None:
        """Run ``specs`` (``on_start``/``on_result`` as in :class:`~nrchbench.backends.Backend`;
        ``on_progress(run_id, epochs_done, epochs)`` after every epoch of a run)."""
        self.on_progress = on_progress
        queue = deque(specs)
        try:
            while True:
                self._dispatch(queue, kw, on_start)
                busy = [w for w in self.workers if w.spec is not None]
                if not busy:
                    break
                wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=POLL_S)
                for w in busy:
                    self._pump(w)
                    result = self._collect(w)
                    if result is not None:
                        on_result(result)
        finally:
            self.close()

    def _dispatch(self, queue: deque[RunSpec], kw: RunKwargs, on_start: OnStart) -> None:
        while queue and sum(w.spec is not None for w in self.workers) < self.size:
            spec = queue.popleft()
            if not on_start(spec):
                continue
            for _attempt in range(2):
                idle = [w for w in self.workers if w.spec is None]
                w = idle[0] if idle else self._start()
                self._pump(w)
                w.tail.clear()
                w.crash.clear()
                try:
                    w.conn.send((spec, kw))
                except (BrokenPipeError, ConnectionResetError, EOFError):  # it died while idle
                    w.proc.join(timeout=5)
                    self._discard(w)
                    continue
                w.spec = spec
                break
            else:
                raise RuntimeError("could not start a worker process for the local backend")

    def _collect(self, w: _Worker) -> RunResult | None:
        """``w``'s result if it has one, a failed one if it died, else None (still running)."""
        while w.conn.poll():
            try:
                result = w.conn.recv()
            except (EOFError, OSError):
                break  # it died while sending: a death
            if isinstance(result, tuple):  # ("epoch", run_id, epochs_done, epochs)
                if self.on_progress is not None:
                    self.on_progress(*result[1:])
                continue
            w.spec = None
            return result
        if w.proc.is_alive():
            return None
        w.proc.join()
        self._pump(w, final=True)
        tail = list(w.tail)
        if w.crash and w.crash[0] not in tail:  # a long crash report: keep its head too
            tail = [*w.crash, "...", *tail]
        spec, code = w.spec, w.proc.exitcode
        self._discard(w)
        assert spec is not None
        reason = death_reason(code, tail)
        log.warning("run %s (%s): %s", spec.run_id, spec.label(), reason)
        details = {"exitcode": code, "signal": signal.Signals(-code).name if code and code < 0 else None}
        return lost_result(spec, reason, pid=w.proc.pid or 0, details={**details, "output": tail})

    def close(self) -> None:
        """Stop every worker and remove their output files.

        Idle workers are asked to exit and killed after :data:`EXIT_GRACE_S` (an idle worker
        has written and reported everything; the interpreter's own teardown with torch
        loaded takes seconds); running ones (Ctrl-C, an error in the driver) are killed.
        """
        for w in self.workers:
            if w.spec is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            else:
                w.proc.kill()
        deadline = time.monotonic() + EXIT_GRACE_S
        for w in list(self.workers):
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=10)
            self._pump(w, final=True)
            self._discard(w)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
