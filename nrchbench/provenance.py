"""Which code made a record: the *code version* (PROTOCOL §5), and records that span several.

A record's code version is ``<nrchbench version>@<git commit, 12 hex>``, with ``+dirty`` when
the package's source (``nrchbench/`` in its checkout) had uncommitted changes; just the
package version where no git checkout was found (an installed wheel). The commit is the last
one at or before the record's ``git_revision`` that changed the code records are made by —
``nrchbench/`` except the report and the CLI (:data:`RECORD_SOURCE`) — so commits of docs,
tests, results, tables or plots do not make records stale; where that commit cannot be looked
up (a record from another clone) the record's own revision stands. It is read from the
record's ``env`` (``nrchbench``, ``git_revision``, ``git_dirty``); records written before
``git_dirty`` existed count as clean. Two records of one spec from different code versions
may differ (the code changed); tables say when their records span versions, sweeps say how
many records they skip that another version made (``--rerun-stale`` reruns them).

Imports neither torch nor numpy: ``table`` uses it.
"""

from __future__ import annotations

import functools
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RECORD_SOURCE",
    "code_version",
    "current_code_version",
    "git_dirty",
    "git_revision",
    "short",
    "source_commit",
    "versions_note",
]

_PKG_ROOT = Path(__file__).resolve().parent.parent
#: git pathspecs of the code that makes records (what a run executes); tables, plots and the
#: command line only read records.
RECORD_SOURCE = ("nrchbench", ":(exclude)nrchbench/report", ":(exclude)nrchbench/cli")


def _git(*args: str) -> str | None:
    if not (_PKG_ROOT / ".git").exists():
        return None
    try:
        res = subprocess.run(
            ["git", "-C", str(_PKG_ROOT), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding the package, or None."""
    rev = (_git("rev-parse", "HEAD") or "").strip()
    return rev or None


@functools.lru_cache(maxsize=1)
def git_dirty() -> bool | None:
    """Whether the package's tracked record-making source differs from HEAD; None without git.

    Results, docs and untracked files do not count: writing records into a results folder of
    the checkout does not make the code dirty.
    """
    out = _git("status", "--porcelain", "--untracked-files=no", "--", *RECORD_SOURCE)
    return None if out is None else bool(out.strip())


def code_version(env: Any) -> str:
    """The code version of a record's ``env`` (an :class:`~nrchbench.records.Env` or a dict)."""
    data: Mapping[str, Any] = env if isinstance(env, Mapping) else env.model_dump()
    version = str(data.get("nrchbench") or "unknown")
    rev = data.get("git_revision")
    if not rev:
        return version
    return f"{version}@{source_commit(str(rev))[:12]}" + ("+dirty" if data.get("git_dirty") else "")


@functools.lru_cache(maxsize=256)
def source_commit(rev: str) -> str:
    """The last commit at or before ``rev`` that changed :data:`RECORD_SOURCE` (``rev`` itself
    where git cannot tell: no checkout, or a commit this clone does not have)."""
    out = (_git("rev-list", "-1", rev, "--", *RECORD_SOURCE) or "").strip()
    return out or rev


def current_code_version() -> str:
    """The code version a run started now would record."""
    from nrchbench import __version__

    return code_version({"nrchbench": __version__, "git_revision": git_revision(), "git_dirty": git_dirty()})


def short(version: str) -> str:
    """A code version for a one-line message (commit to 8 hex)."""
    head, _, rev = version.partition("@")
    if not rev:
        return version
    commit, _, dirty = rev.partition("+")
    return f"{head}@{commit[:8]}" + (f"+{dirty}" if dirty else "")


def versions_note(versions: Iterable[tuple[str, str]]) -> str | None:
    """One line when records come from more than one code version (None otherwise).

    Args:
        versions: ``(code version, created)`` of each record.

    Returns:
        The versions (the one of the newest record first) with how many records each.
    """
    counts: Counter[str] = Counter()
    newest: dict[str, str] = {}
    for version, created in versions:
        counts[version] += 1
        newest[version] = max(newest.get(version, ""), str(created))
    if len(counts) < 2:
        return None
    order = sorted(counts, key=lambda v: newest[v], reverse=True)
    parts = ", ".join(f"{short(v)} ({counts[v]})" for v in order)
    return (
        f"the records of this table span {len(counts)} code versions: {parts} record(s); "
        "rerun the older ones (sweep --rerun-stale) to compare like with like"
    )
