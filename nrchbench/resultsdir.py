"""The results directory's housekeeping: whether it can be written, and the files of
``<out>/runs/<dataset>/<method>/`` that are not records — never touched through a symlink.

* :func:`check_writable` — before any work, so that an unwritable ``--results`` is one line, not
  a traceback after training.
* :func:`clean_stale_tmp` — the temp files a killed record writer left (its own pattern only).
* :func:`iter_run_dir_files`, :func:`remove_stale_files` — what the claims module
  (:mod:`nrchbench.claims`) cleans up with.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path

from nrchbench.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["RUNS_DIR", "check_writable", "clean_stale_tmp", "iter_run_dir_files", "remove_stale_files"]

RUNS_DIR = "runs"
#: A temp file of :func:`nrchbench.utils.atomic_write_bytes` writing a record or codes file:
#: ``.<target>.<8 random characters of mkstemp>.tmp`` beside its target.
_WRITER_TMP = re.compile(r"^\.[0-9a-f]{16}(?:\.json|\.codes\.npz)\.[a-z0-9_]{8}\.tmp$")


def iter_run_dir_files(out: str | os.PathLike) -> list[Path]:
    """The plain files in ``<out>/runs/<dataset>/<method>/``, never through a symlink.

    A symlinked ``runs``, dataset or method directory is not entered, and symlinked files
    are not listed: what this returns is safe to delete for its owner.
    """
    files: list[Path] = []
    base = Path(out) / RUNS_DIR
    if base.is_symlink() or not base.is_dir():
        return files
    for level1 in _scan_dirs(base):
        for level2 in _scan_dirs(level1):
            try:
                with os.scandir(level2) as it:
                    files.extend(Path(e.path) for e in it if e.is_file(follow_symlinks=False))
            except OSError:
                continue
    return files


def _scan_dirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as it:
            return [Path(e.path) for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def remove_stale_files(out: str | os.PathLike, pattern: re.Pattern[str], min_age_s: float) -> int:
    """Delete the files of ``<out>/runs/<dataset>/<method>/`` (never through a symlink) whose
    name matches ``pattern`` and that were not modified for ``min_age_s``; returns how many."""
    now = time.time()
    removed = 0
    for p in iter_run_dir_files(out):
        if not pattern.match(p.name):
            continue
        try:
            if now - p.lstat().st_mtime >= min_age_s:
                p.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def clean_stale_tmp(out: str | os.PathLike, min_age_s: float = 1.0) -> int:
    """Remove the temp files a killed record writer left under ``<out>/runs``; returns how many.

    Only this writer's own files are touched: ``.<run_id>.json.XXXXXXXX.tmp`` and
    ``.<run_id>.codes.npz.XXXXXXXX.tmp`` in a ``runs/<dataset>/<method>/`` directory,
    never through a symlink (see :func:`iter_run_dir_files`). Files younger than
    ``min_age_s`` may belong to a live writer (another sweep sharing the results
    directory) and are kept: an atomic write holds its temp file for milliseconds.
    """
    removed = remove_stale_files(out, _WRITER_TMP, min_age_s)
    if removed:
        log.info("removed %d stale temp file(s) under %s", removed, Path(out) / RUNS_DIR)
    return removed


def check_writable(out: str | os.PathLike, what: str = "--results") -> None:
    """Fail fast, before any work, when records cannot be written under ``out``.

    ``out`` (or, while it does not exist yet, its nearest existing parent) must be a
    directory in which a file can be created; a probe file is created and removed at once.
    Nothing else is created.

    Raises:
        ConfigError: one line saying what is wrong with ``out``.
    """
    target = Path(out).expanduser()
    probe_dir = target
    while not probe_dir.exists() and not probe_dir.is_symlink():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if (target / RUNS_DIR).is_dir():
        probe_dir = target / RUNS_DIR
    if not probe_dir.is_dir():
        at = "it" if probe_dir == target else f"its parent {str(probe_dir)!r}"
        raise ConfigError(f"{what} {str(out)!r}: {at} is not a directory; give a directory you can write to")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nrchbench-write-probe.", dir=probe_dir)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{what} {str(out)!r} is not writable ({reason} in {str(probe_dir)!r}); give a directory you can write to"
        ) from None
    os.close(fd)
    os.unlink(tmp)
