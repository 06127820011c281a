"""Result records on disk: paths, atomic writes, loading and validation.

One JSON file per run at ``<out>/runs/<dataset>/<method>/<run_id>.json`` (schema in
``docs/ARCHITECTURE.md``). The path derives from the run id alone, and every file is written
through a temp file and a rename, so a record is either complete or absent, and one spec
never has two records. A run's codes (``--save-codes``) go to ``<run_id>.codes.npz`` beside
the record and are written *before* it, so a record never points to a missing file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nrchbench.errors import DataError
from nrchbench.spec import IDENTITY_FIELDS, ResolvedSpec, RunSpec, compute_run_id, ensure_resolved
from nrchbench.utils import atomic_write_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RUNS_DIR = "runs"
TMP_SUFFIX = ".tmp"

_RUN_ID = re.compile(r"^[0-9a-f]{16}$")
_NUM = (int, float)

#: Required top-level keys → accepted types (None allowed where listed).
TOP_LEVEL: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "run_id": (str,),
    "status": (str,),
    "error": (str, type(None)),
    "spec": (dict,),
    "dataset": (dict,),
    "noise_report": (dict, type(None)),
    "metrics": (dict,),
    "history": (list,),
    "diagnostics": (dict,),
    "timing": (dict,),
    "env": (dict,),
    "codes": (str, type(None)),
    "created": (str,),
}
SPEC_KEYS: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "dataset": (str,),
    "bits": (int,),
    "noise_model": (str, type(None)),
    "noise_rate": (*_NUM, type(None)),
    "noise_params": (dict,),
    "seed": (int,),
    "preset": (str,),
    "params": (dict,),
    "split": (str, type(None)),
    "split_seed": (int,),
    "val_size": (int,),
    "dataset_options": (dict,),
    "resolved_params": (dict,),
    "preset_requested": (str,),
    "device": (str,),
    "noise_invariant": (bool,),
    "selection": (str,),
}
TIMING_KEYS = ("load", "noise", "fit", "encode", "evaluate", "total")
ENV_KEYS = (
    "nrchbench",
    "python",
    "torch",
    "numpy",
    "cuda",
    "device",
    "device_name",
    "git_revision",
    "hostname",
    "platform",
)
DIRECTIONS = ("i2t", "t2i", "avg")


# ---------------------------------------------------------------------- paths
def _safe(name: str) -> str:
    """A path component for a dataset/method name (a dataset given as a directory → its name)."""
    name = str(name)
    if os.sep in name or (os.altsep and os.altsep in name):
        name = Path(name).name or "dataset"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "_"


def record_path(out: str | os.PathLike, record_or_spec: Any) -> Path:
    """``<out>/runs/<dataset>/<method>/<run_id>.json`` for a record, spec or resolved spec.

    A :class:`RunSpec` is resolved on the default device (``auto``) to get its id.
    """
    if isinstance(record_or_spec, Mapping) and "run_id" in record_or_spec and "spec" in record_or_spec:
        spec = record_or_spec["spec"]
        run_id = record_or_spec["run_id"]
        dataset, method = spec["dataset"], spec["method"]
    else:
        rs = ensure_resolved(record_or_spec)
        run_id, dataset, method = rs.run_id, rs.dataset, rs.method
    return Path(out) / RUNS_DIR / _safe(dataset) / _safe(method) / f"{run_id}.json"


def codes_path(out: str | os.PathLike, record_or_spec: Any) -> Path:
    """``<run_id>.codes.npz`` beside the record."""
    p = record_path(out, record_or_spec)
    return p.with_name(p.stem + ".codes.npz")


# ---------------------------------------------------------------------- writing
def write_record(out: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Atomically write ``record`` to its path under ``out`` and return the path.

    Raises:
        DataError: the record does not satisfy the schema (see :func:`validate_record`).
    """
    validate_record(record)
    path = record_path(out, record)
    atomic_write_json(path, record)
    log.info("wrote %s", path)
    return path


# ---------------------------------------------------------------------- validation
def record_problems(record: Any) -> list[str]:
    """Everything wrong with ``record`` against schema version 1 (empty when valid)."""
    if not isinstance(record, Mapping):
        return [f"expected a JSON object, got {type(record).__name__}"]
    problems: list[str] = []

    def check(obj: Mapping[str, Any], key: str, types: tuple[type, ...], where: str) -> bool:
        if key not in obj:
            problems.append(f"missing {where}{key}")
            return False
        v = obj[key]
        # bool is an int in Python but never a number in a record (and vice versa).
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            problems.append(f"{where}{key} has type {type(v).__name__}, expected {'/'.join(t.__name__ for t in types)}")
            return False
        return True

    for key, types in TOP_LEVEL.items():
        check(record, key, types, "")
    if problems:
        return problems
    if record["schema_version"] != SCHEMA_VERSION:
        problems.append(f"schema_version is {record['schema_version']}, expected {SCHEMA_VERSION}")
    if not _RUN_ID.match(record["run_id"]):
        problems.append(f"run_id {record['run_id']!r} is not 16 hex digits")
    status = record["status"]
    if status not in ("ok", "failed"):
        problems.append(f"status {status!r} is not 'ok' or 'failed'")
    if status == "failed" and not record["error"]:
        problems.append("a failed record needs an error")
    spec = record["spec"]
    for key, types in SPEC_KEYS.items():
        check(spec, key, types, "spec.")
    if not any(p.startswith("spec.") or p.startswith("missing spec.") for p in problems):
        if compute_run_id(spec) != record["run_id"]:
            problems.append("run_id does not match the hash of the spec (record edited or corrupted)")
    for key in TIMING_KEYS if status == "ok" else ():
        check(record["timing"], key, _NUM, "timing.")
    for key in ENV_KEYS:
        if key not in record["env"]:
            problems.append(f"missing env.{key}")
    for i, h in enumerate(record["history"]):
        if not isinstance(h, Mapping) or not isinstance(h.get("epoch"), int):
            problems.append(f"history[{i}] needs an integer epoch")
            break
    if status == "ok":
        for d in DIRECTIONS:
            m = record["metrics"].get(d)
            if not isinstance(m, Mapping):
                problems.append(f"missing metrics.{d}")
                continue
            for key in ("map", "map_tie"):
                check(m, key, _NUM, f"metrics.{d}.")
    return problems


def validate_record(record: Any) -> None:
    """Raise :class:`DataError` listing every schema problem of ``record``."""
    problems = record_problems(record)
    if problems:
        rid = record.get("run_id", "?") if isinstance(record, Mapping) else "?"
        raise DataError(f"invalid record {rid}: " + "; ".join(problems[:8]))


# ---------------------------------------------------------------------- reading
def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one record file.

    Raises:
        DataError: unreadable, not JSON, or not a valid record.
    """
    p = Path(path)
    try:
        record = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"record {str(p)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"record {str(p)!r} could not be read: {exc}") from None
    problems = record_problems(record)
    if problems:
        raise DataError(f"record {str(p)!r} is invalid: " + "; ".join(problems[:8]))
    return record


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
    if isinstance(value, _NUM) and isinstance(wanted, _NUM) and not isinstance(value, bool):
        return abs(float(value) - float(wanted)) < 1e-12
    return value == wanted


def load_records(results_dir: str | os.PathLike, **filters: Any) -> list[dict[str, Any]]:
    """All valid records under ``results_dir``, optionally filtered.

    Filters compare a top-level key (``status``, ``run_id``) or else a ``spec`` key
    (``method``, ``dataset``, ``bits``, ``noise_rate``, ``preset``, ...) with a value, a
    list/set of accepted values, or a predicate. Unreadable, partial or invalid files are
    skipped with a warning in the log.

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
        keep = True
        for key, wanted in filters.items():
            if key in TOP_LEVEL:
                value = rec.get(key)
            else:
                value = rec["spec"].get(key)
            if not _matches(value, wanted):
                keep = False
                break
        if keep:
            out.append(rec)
    return out


def find_record(out: str | os.PathLike, spec: RunSpec | ResolvedSpec | Mapping[str, Any]) -> dict[str, Any] | None:
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


def clean_stale_tmp(out: str | os.PathLike, min_age_s: float = 1.0) -> int:
    """Remove temp files left under ``<out>/runs`` by a killed writer; returns how many.

    Files younger than ``min_age_s`` may belong to a live writer (another sweep sharing the
    results directory) and are kept: an atomic write holds its temp file for milliseconds.
    """
    base = Path(out) / RUNS_DIR
    if not base.is_dir():
        return 0
    now = time.time()
    removed = 0
    for p in base.rglob(f"*{TMP_SUFFIX}"):
        try:
            if now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("removed %d stale temp file(s) under %s", removed, base)
    return removed


def spec_of(record: Mapping[str, Any]) -> ResolvedSpec:
    """The :class:`ResolvedSpec` of a record."""
    return ResolvedSpec.from_dict(record["spec"])


def identity_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields of a record's spec."""
    return {k: record["spec"].get(k) for k in IDENTITY_FIELDS}
