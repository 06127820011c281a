"""The Ray backend's task (what runs on the workers) and its fault handling (in the driver).

* **The task.** :func:`run_task` runs one spec on a Ray worker through
  :func:`~nrchbench.backends.execute`, with the node's dataset cache as its ``loader``. It
  writes the record itself only if it sees the driver's marker file holding the sweep's
  token (a shared filesystem); otherwise the record travels back in its result and the
  driver writes it.
* **Progress.** With a :class:`ProgressBoard` actor, the task reports every finished epoch to
  it (fire and forget: a lost report costs a progress tick, never a run); the driver drains it
  while it waits, so a Ray sweep shows per-epoch progress and an ETA like a local one.
* **Faults.** A task whose worker process or node dies is retried by Ray up to
  ``max_retries`` times (system failures only: a run that *raises* is already a failed
  result and is never retried). After the last retry, or when a run exceeds ``run_timeout``
  (it is then cancelled with ``ray.cancel(force=True)``), :func:`lost` reports it failed
  with the reason; the driver records it ``failed`` — unless the worker had written an
  ``ok`` record before it was lost, which then stands.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray

from nrchbench.backends import RunKwargs, RunResult, execute, lost_result
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)

__all__ = ["MARKER_PREFIX", "ProgressBoard", "cancel", "collect", "lost", "progress_board", "remote_task"]

MARKER_PREFIX = ".nrchbench-ray-"


# ---------------------------------------------------------------------- on the workers
def _sees_driver_fs(out: str | None, token: str) -> bool:
    """True when this worker sees the driver's ``out`` (the marker file holds the token)."""
    if out is None:
        return False
    try:
        return (Path(out) / f"{MARKER_PREFIX}{token}").read_text() == token
    except OSError:
        return False


class ProgressBoard:
    """A Ray actor holding the latest ``(epochs_done, epochs)`` of each run until the driver drains it."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[int, int]] = {}

    def report(self, run_id: str, epochs_done: int, epochs: int) -> None:
        self.latest[run_id] = (int(epochs_done), int(epochs))

    def drain(self) -> dict[str, tuple[int, int]]:
        out, self.latest = self.latest, {}
        return out


def progress_board() -> Any:
    """A new :class:`ProgressBoard` actor (no CPU of its own: it only holds a dict)."""
    return ray.remote(num_cpus=0)(ProgressBoard).remote()


def run_task(
    spec: RunSpec, kw: dict[str, Any], token: str, caches: dict[str, Any], gpu: bool, board: Any = None
) -> RunResult:
    """One run on a Ray worker (see :func:`remote_task`); ``board``: a :class:`ProgressBoard` or None."""
    from nrchbench.backends.ray_cache import CachedLoader
    from nrchbench.datasets import load_dataset

    node_id = ray.get_runtime_context().get_node_id()
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
    loader = CachedLoader(actor, load_dataset) if actor is not None else None
    progress = None
    if board is not None:

        def progress(epoch: int, total: int, _entry: Any, run_id: str = spec.run_id) -> None:
            board.report.remote(run_id, epoch + 1, total)

    result = execute(spec, run_kwargs, loader=loader, progress=progress)
    result.node = node_id
    return result


_REMOTE: Any = None


def remote_task() -> Any:
    """:func:`run_task` as a Ray remote function (made once)."""
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(run_task)
    return _REMOTE


# ---------------------------------------------------------------------- in the driver
def lost(spec: RunSpec, reason: str) -> RunResult:
    """A run that never returned: failed, no record (the driver writes the failed record)."""
    return lost_result(spec, reason)


def collect(ref: Any, spec: RunSpec, max_retries: int) -> RunResult:
    """The result of a finished task, or a failed one when it was lost."""
    from nrchbench.runner import one_line

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # our task code raised (not the run: execute never raises)
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return lost(spec, f"ray task error: {one_line(cause)}")
    except ray.exceptions.RayError as exc:  # worker/node died after the retries, object lost, ...
        return lost(spec, f"lost after {max_retries} retr{'y' if max_retries == 1 else 'ies'}: {one_line(exc)}")


def cancel(ref: Any) -> None:
    """Cancel a task, whatever state it is in."""
    try:
        ray.cancel(ref, force=True)
    except Exception as exc:  # already finished, or the node is gone
        log.debug("ray.cancel: %s", exc)
