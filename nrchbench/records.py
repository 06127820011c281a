"""Result records: one typed, versioned :class:`Record` per run, and where they live on disk.

One JSON file per run at ``<out>/runs/<dataset>/<method>/<run_id>.json``. The path derives
from the run id alone, and every file is written through a temp file and a rename, so a
record is either complete or absent, and one spec never has two records. A run's codes
(``--save-codes``) go to ``<run_id>.codes.npz`` beside the record and are written *before*
it, so a record never points to a missing file.

Schema versions: a file of an older schema is migrated when read (:func:`migrate`), so every
record ever written loads; a file of a newer schema is refused with a line saying so.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nrchbench.errors import DataError
from nrchbench.resultsdir import RUNS_DIR, check_writable, clean_stale_tmp
from nrchbench.spec import IDENTITY_FIELDS, LEGACY_NAMES, RunSpec
from nrchbench.utils import atomic_write_json

log = logging.getLogger(__name__)

__all__ = [
    "SCHEMA_VERSION",
    "Record",
    "check_writable",
    "clean_stale_tmp",
    "codes_path",
    "find_record",
    "iter_record_paths",
    "load_records",
    "locate_record",
    "migrate",
    "read_record",
    "record_path",
    "write_record",
]

SCHEMA_VERSION = 2
DIRECTIONS = ("i2t", "t2i", "avg")
TIMING_KEYS = ("load", "noise", "fit", "encode", "evaluate", "total")

_RUN_ID = re.compile(r"^[0-9a-f]{16}$")
_RENAMED = {key: {old: new for new, old in names.items()} for key, names in LEGACY_NAMES.items()}


class HistoryEntry(BaseModel):
    """One epoch of the per-epoch history: ``epoch`` plus flat JSON numbers (loss terms,
    ``time_<phase>``, values, ``selected_fraction``/``sel_precision``/``sel_recall``, ...)."""

    model_config = ConfigDict(extra="allow")
    epoch: int


class Env(BaseModel):
    """Where and with what a run ran."""

    model_config = ConfigDict(extra="allow")
    nrchbench: str
    python: str
    torch: str
    numpy: str
    cuda: str | None
    device: str
    device_name: str
    git_revision: str | None
    hostname: str
    platform: str
    torch_threads: int | None = None  # CPU training depends on it; absent in early records


class Record(BaseModel):
    """The result of one run (PROTOCOL §5; the layout is in docs/ARCHITECTURE.md).

    Built in one place (the runner), read through :func:`read_record`/:func:`load_records`.
    """

    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())

    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str = Field(pattern=_RUN_ID.pattern)
    status: Literal["ok", "failed"]
    error: str | None = None
    spec: RunSpec
    dataset: dict[str, Any] = Field(default_factory=dict)
    noise_report: dict[str, Any] | None = None
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    diagnostics: dict[str, Any] = Field(default_factory=dict)
    timing: dict[str, float] = Field(default_factory=dict)
    env: Env
    codes: str | None = None
    created: str

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        if self.spec.run_id != self.run_id:
            raise ValueError("run_id does not match the hash of the spec (record edited or corrupted)")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed record needs an error")
        if self.status == "ok":
            missing = [k for k in TIMING_KEYS if k not in self.timing]
            if missing:
                raise ValueError(f"missing timing.{missing[0]}")
            for d in DIRECTIONS:
                m = self.metrics.get(d)
                if not isinstance(m, Mapping):
                    raise ValueError(f"missing metrics.{d}")
                for key in ("map", "map_tie"):
                    v = m.get(key)
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                        raise ValueError(f"metrics.{d}.{key} is {v!r}, expected a finite number")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The record as the JSON object written to disk."""
        return self.model_dump(mode="json")

    def metric(self, direction: str, name: str) -> Any:
        """``metrics[direction][name]``, or None when not computed."""
        return self.metrics.get(direction, {}).get(name)


# ---------------------------------------------------------------------- schema versions
def migrate(data: Mapping[str, Any]) -> dict[str, Any]:
    """A record dict of any known schema as a schema-2 dict (no-op for schema 2).

    Schema 1 → 2: ``spec.selection`` ``"last-epoch"`` is now ``"last"`` (and, like the other
    spec fields added in schema 2, not part of the run id at its default); the sections
    ``evaluation`` and ``selection`` are absent (null). Any schema: the noise model ``nrch`` is
    now ``one-swap`` and the split rule ``nrch`` is ``contiguous`` (the run id hashes the old
    names, so it is unchanged).

    Raises:
        DataError: a schema newer than this nrchbench knows.
    """
    out = dict(data)
    version = out.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise DataError(
            f"schema_version {version} was written by a newer nrchbench (this one reads ≤ {SCHEMA_VERSION}); upgrade"
        )
    spec = dict(out.get("spec") or {})
    if version == 1:
        if spec.get("selection") == "last-epoch":
            spec["selection"] = "last"
        out.setdefault("evaluation", None)
        out.setdefault("selection", None)
        out["schema_version"] = 2
    for key, renamed in _RENAMED.items():  # old names of noise models and split rules
        if spec.get(key) in renamed:
            spec[key] = renamed[spec[key]]
    if spec:
        out["spec"] = spec
    return out


def parse_record(data: Any, source: str = "record") -> Record:
    """Validate (and migrate) a record dict.

    Raises:
        DataError: one line naming ``source`` and the first problem.
    """
    if not isinstance(data, Mapping):
        raise DataError(f"{source} is invalid: expected a JSON object, got {type(data).__name__}")
    try:
        return Record.model_validate(migrate(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise DataError(f"{source} is invalid: {where + ': ' if where else ''}{msg}") from None


# ---------------------------------------------------------------------- paths
def _safe(name: str) -> str:
    """A path component for a dataset/method name (a dataset given as a directory → its name)."""
    name = str(name)
    if os.sep in name or (os.altsep and os.altsep in name):
        name = Path(name).name or "dataset"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "_"


def record_path(out: str | os.PathLike, spec: RunSpec | Record) -> Path:
    """``<out>/runs/<dataset>/<method>/<run_id>.json`` of a spec or a record."""
    spec = spec.spec if isinstance(spec, Record) else spec
    return Path(out) / RUNS_DIR / _safe(spec.dataset) / _safe(spec.method) / f"{spec.run_id}.json"


def codes_path(out: str | os.PathLike, spec: RunSpec | Record) -> Path:
    """``<run_id>.codes.npz`` beside the record."""
    p = record_path(out, spec)
    return p.with_name(p.stem + ".codes.npz")


# ---------------------------------------------------------------------- writing
def write_record(out: str | os.PathLike, record: Record) -> Path:
    """Atomically write ``record`` to its path under ``out`` and return the path."""
    path = record_path(out, record)
    atomic_write_json(path, record.to_dict())
    log.info("wrote %s", path)
    return path


# ---------------------------------------------------------------------- reading
def read_record(path: str | os.PathLike) -> Record:
    """Read, migrate and validate one record file.

    Raises:
        DataError: unreadable, not JSON, or not a valid record.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"record {str(p)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"record {str(p)!r} could not be read: {exc}") from None
    return parse_record(data, f"record {str(p)!r}")


def iter_record_paths(results_dir: str | os.PathLike) -> list[Path]:
    """Every ``<run_id>.json`` under ``<results_dir>/runs`` (or under ``results_dir`` itself)."""
    root = Path(results_dir)
    base = root / RUNS_DIR if (root / RUNS_DIR).is_dir() else root
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*.json") if not p.name.startswith(".") and _RUN_ID.match(p.stem))


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (list, tuple, set, frozenset)):
        return any(_matches(value, w) for w in wanted)
    if callable(wanted):
        return bool(wanted(value))
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(value, bool):
        return abs(float(value) - float(wanted)) < 1e-12
    return value == wanted


def load_records(results_dir: str | os.PathLike, **filters: Any) -> list[Record]:
    """All valid records under ``results_dir``, optionally filtered.

    Filters compare ``status`` or ``run_id``, or else a spec field (``method``, ``dataset``,
    ``bits``, ``noise_rate``, ``preset``, ...) with a value, a list/set of accepted values or
    a predicate. Unreadable or invalid files are skipped with a warning in the log.

    Example:
        ``load_records("results", status="ok", dataset="wiki", bits=[16, 32])``
    """
    out = []
    for path in iter_record_paths(results_dir):
        try:
            rec = read_record(path)
        except DataError as exc:
            log.warning("skipping %s", exc)
            continue
        if all(
            _matches(getattr(rec, k) if k in ("status", "run_id") else getattr(rec.spec, k, None), w)
            for k, w in filters.items()
        ):
            out.append(rec)
    return out


def find_record(out: str | os.PathLike, spec: RunSpec) -> Record | None:
    """The valid record of ``spec`` under ``out``, or None (an invalid file counts as none)."""
    path = record_path(out, spec)
    if not path.is_file():
        return None
    try:
        return read_record(path)
    except DataError as exc:
        log.warning("ignoring %s", exc)
        return None


def locate_record(ref: str | os.PathLike, results_dir: str | os.PathLike = "results") -> Path:
    """A record path from a path or a run id (or a unique prefix of one) under ``results_dir``.

    Raises:
        DataError: nothing, or more than one record, matches.
    """
    p = Path(ref)
    if p.is_file():
        return p
    ref_s = str(ref).strip().lower()
    if re.fullmatch(r"[0-9a-f]{4,16}", ref_s):
        hits = [q for q in iter_record_paths(results_dir) if q.stem.startswith(ref_s)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DataError(
                f"run id prefix {ref_s!r} matches {len(hits)} records under {str(results_dir)!r}; give more digits"
            )
    raise DataError(
        f"no record {str(ref)!r}: expected a record path or a run id of a record under {str(results_dir)!r} (--results)"
    )


def identity_of(record: Record) -> dict[str, Any]:
    """The schema-1 identity fields of a record's spec (for grouping)."""
    return {k: getattr(record.spec, k) for k in IDENTITY_FIELDS}
