"""Run claims: which sweep runs which spec, so sweeps sharing a results directory split the work.

Before a sweep runs a spec it claims it: a file ``.<run_id>.claim`` beside the spec's record,
created with ``O_CREAT | O_EXCL`` (of two sweeps that try at once, exactly one succeeds,
also on NFS v3+), holding its owner — host, pid, the process's start time, a random token,
when it was claimed. While the run goes on, the owning sweep touches the file every
``heartbeat_s`` seconds: its mtime is the heartbeat. A claim is *stale*, and the next sweep
that wants the spec takes it over, when

* its heartbeat is older than ``timeout_s`` (the owner's host died, hung, was suspended or
  lost the filesystem), or
* at once, when its owner is a process of this host that no longer exists (a killed sweep;
  the start time guards against a reused pid).

A claim is removed as soon as its run's record (``ok`` or ``failed``) is written, and every
claim a sweep holds is removed when the sweep ends, however it ends short of SIGKILL. The
claims a killed sweep left are removed by the next sweep on the directory, whether or not it
wants their specs (:meth:`Claims.clean_stale`, at its start and its end).

Taking over: the taker renames the stale file to a private name, checks that what it moved
is the very file it judged stale (same inode, same mtime: no heartbeat since), deletes it
and claims with ``O_EXCL`` as usual. When two sweeps judge one claim stale at the same
moment, the slower one moves the other's fresh claim, sees a different file and puts it back
(``link``, which never replaces a file). What is left: three or more sweeps racing for one
stale claim within the same microseconds may run that spec twice — its record is still one
complete file (one path per run id, atomic writes).

Clocks: staleness compares the file's mtime with this host's clock, so hosts sharing a
filesystem should keep their clocks within a fraction of ``timeout_s`` (NTP does).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nrchbench.errors import ConfigError
from nrchbench.records import record_path
from nrchbench.resultsdir import iter_run_dir_files, remove_stale_files
from nrchbench.spec import RunSpec

log = logging.getLogger(__name__)

__all__ = ["HEARTBEAT_S", "TIMEOUT_S", "Claim", "Claims", "claim_path", "iter_claim_files"]

CLAIM_SUFFIX = ".claim"
#: Seconds between two heartbeats of a held claim.
HEARTBEAT_S = 15.0
#: A claim without a heartbeat for this long is stale (well above NFS attribute caching, 60 s).
TIMEOUT_S = 120.0

_CLAIM_FILE = re.compile(r"^\.[0-9a-f]{16}\.claim$")
_GRAVE_FILE = re.compile(r"^\.[0-9a-f]{16}\.claim\.[0-9a-f]{16}\.stale$")


def claim_path(out: str | os.PathLike, spec: RunSpec) -> Path:
    """``<out>/runs/<dataset>/<method>/.<run_id>.claim``: beside the spec's record."""
    return record_path(out, spec).with_name(f".{spec.run_id}{CLAIM_SUFFIX}")


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot; Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # fields from the 3rd (state) on
    try:
        return int(fields[19])  # the 22nd field, starttime
    except (IndexError, ValueError):
        return None


def _alive(pid: int, start: Any) -> bool:
    """Whether process ``pid`` of this host exists and is the one that started at ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if isinstance(start, int):
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


@dataclass(frozen=True)
class Claim:
    """A claim file as read: where, which file (inode), its heartbeat and its owner.

    ``owner`` is None when the file holds no valid owner yet (being written, or its writer
    was killed in between); such a claim goes stale by its heartbeat only.
    """

    path: Path
    inode: int
    mtime_ns: int
    owner: dict[str, Any] | None

    @property
    def age_s(self) -> float:
        return time.time() - self.mtime_ns / 1e9

    def describe(self) -> str:
        o = self.owner or {}
        return f"{o.get('host', '?')}:{o.get('pid', '?')}"


def read_claim(path: Path) -> Claim | None:
    """The claim at ``path``, or None if there is none (a symlink is never followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        st = os.fstat(fd)
        with os.fdopen(fd, "rb", closefd=False) as f:
            text = f.read(65536)
    finally:
        os.close(fd)
    try:
        owner = json.loads(text)
    except ValueError:
        owner = None
    return Claim(path, st.st_ino, st.st_mtime_ns, owner if isinstance(owner, dict) else None)


class Claims:
    """The claims one sweep holds under ``out``; a context manager that heartbeats them.

    Args:
        out: results directory.
        timeout_s: heartbeat age after which someone else's claim is stale.
        heartbeat_s: seconds between heartbeats of the claims held here.

    Example:
        >>> with Claims("results") as claims:  # doctest: +SKIP
        ...     if claims.acquire(spec):
        ...         ...  # run it, write its record
        ...         claims.release(spec)
    """

    def __init__(
        self, out: str | os.PathLike, *, timeout_s: float = TIMEOUT_S, heartbeat_s: float = HEARTBEAT_S
    ) -> None:
        if not 0 < heartbeat_s < timeout_s:
            raise ConfigError(
                f"claim heartbeat {heartbeat_s}s: expected a positive number below the timeout ({timeout_s}s)"
            )
        self.out = Path(out)
        self.timeout_s, self.heartbeat_s = float(timeout_s), float(heartbeat_s)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.token = secrets.token_hex(8)
        self.owner = {"host": self.host, "pid": self.pid, "start": process_start(self.pid), "token": self.token}
        self.held: dict[str, Path] = {}
        self.lost: set[str] = set()  # run ids whose claim someone else took over
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ state of one spec
    def stale_reason(self, claim: Claim) -> str | None:
        """Why ``claim`` is stale (no heartbeat, owner gone), or None while it is live."""
        if claim.owner is not None and claim.owner.get("token") == self.token:
            return None
        age = claim.age_s
        if age > self.timeout_s:
            return f"no heartbeat for {age:.0f}s"
        o = claim.owner or {}
        pid = o.get("pid")
        if o.get("host") == self.host and isinstance(pid, int) and not _alive(pid, o.get("start")):
            return f"its owner (pid {pid} on this host) is gone"
        return None

    def holder(self, spec: RunSpec) -> Claim | None:
        """The live claim on ``spec`` (this sweep's own included), or None when free or stale."""
        claim = read_claim(claim_path(self.out, spec))
        if claim is None or self.stale_reason(claim) is not None:
            return None
        return claim

    # ------------------------------------------------------------------ acquire / release
    def acquire(self, spec: RunSpec) -> bool:
        """Claim ``spec``: True if this sweep now holds it, False if a live claim of another has it."""
        path = claim_path(self.out, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                claim = read_claim(path)
                if claim is None:
                    continue  # released in between: try again
                if claim.owner is not None and claim.owner.get("token") == self.token:
                    return True
                reason = self.stale_reason(claim)
                if reason is None:
                    return False
                if not self._take_over(claim, reason):
                    return False
                continue
            owner = {**self.owner, "run_id": spec.run_id, "claimed": _now()}
            with os.fdopen(fd, "w") as f:
                json.dump(owner, f)
                f.flush()
                os.fsync(f.fileno())
            with self._lock:
                self.held[spec.run_id] = path
                self.lost.discard(spec.run_id)
            return True
        return False

    def _take_over(self, claim: Claim, reason: str) -> bool:
        """Remove ``claim`` if it is still the file judged stale; False if it came back to life."""
        grave = claim.path.with_name(f"{claim.path.name}.{self.token}.stale")
        try:
            os.rename(claim.path, grave)
        except FileNotFoundError:
            return True  # someone else removed it: claim again
        try:
            st = os.lstat(grave)
            if (st.st_ino, st.st_mtime_ns) != (claim.inode, claim.mtime_ns):
                # Another sweep took it over (or the owner beat) just now: put it back, never over a file.
                try:
                    os.link(grave, claim.path)
                except FileExistsError:
                    log.warning("claim %s: lost a takeover race with another sweep", claim.path)
                return False
        finally:
            grave.unlink(missing_ok=True)
        log.info("took over the claim %s of %s: %s", claim.path.name, claim.describe(), reason)
        return True

    def clean_stale(self) -> int:
        """Remove every stale claim under ``out`` (a killed sweep's claims on specs that nobody
        will claim again: done since, or not in any later sweep); returns how many."""
        removed = 0
        for path in iter_claim_files(self.out):
            claim = read_claim(path)
            reason = self.stale_reason(claim) if claim is not None else None
            if reason is not None and self._take_over(claim, reason):  # type: ignore[arg-type]
                removed += 1
        return removed

    def release(self, spec: RunSpec | str) -> None:
        """Remove this sweep's claim on ``spec`` (a claim taken over by another is left alone)."""
        run_id = spec if isinstance(spec, str) else spec.run_id
        with self._lock:
            path = self.held.pop(run_id, None)
            self.lost.discard(run_id)
        if path is None:
            return
        claim = read_claim(path)
        if claim is not None and claim.owner is not None and claim.owner.get("token") == self.token:
            path.unlink(missing_ok=True)

    def release_all(self) -> None:
        for run_id in list(self.held):
            self.release(run_id)

    # ------------------------------------------------------------------ heartbeat
    def beat(self) -> None:
        """Touch every claim held here (and notice the ones another sweep took over)."""
        with self._lock:
            held = list(self.held.items())
        for run_id, path in held:
            claim = read_claim(path)
            if claim is not None and claim.owner is not None and claim.owner.get("token") == self.token:
                try:
                    os.utime(path)
                    continue
                except FileNotFoundError:
                    pass
            if run_id not in self.lost:
                self.lost.add(run_id)
                log.warning(
                    "the claim on run %s was taken over by %s (this sweep had no heartbeat for %gs?)",
                    run_id,
                    claim.describe() if claim is not None else "nobody",
                    self.timeout_s,
                )

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except OSError as exc:  # a flaky filesystem must not kill the sweep
                log.warning("claim heartbeat failed: %s", exc)

    def __enter__(self) -> Claims:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat_loop, name="nrchbench-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.release_all()


def iter_claim_files(out: str | os.PathLike, *, leftovers: bool = False) -> list[Path]:
    """Claim files under ``<out>/runs/<dataset>/<method>/`` (``leftovers``: also the private
    names of takeovers a killed sweep left half-done). Symlinks are never followed."""
    pattern = (_CLAIM_FILE, _GRAVE_FILE) if leftovers else (_CLAIM_FILE,)
    return [p for p in iter_run_dir_files(out) if any(rx.match(p.name) for rx in pattern)]


def clean_claim_leftovers(out: str | os.PathLike, min_age_s: float = TIMEOUT_S) -> int:
    """Delete takeover leftovers (``.<run_id>.claim.<token>.stale``) older than ``min_age_s``."""
    return remove_stale_files(out, _GRAVE_FILE, min_age_s)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
