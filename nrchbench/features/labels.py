"""Label files → a multi-hot matrix aligned with the image order.

Accepted formats (detected from the content, not only the extension):

* ``.npy``: an N×C array of 0/1 in image order.
* a 0/1 matrix as text (``.txt``/``.csv``/``.tsv``; fields split by commas, tabs or
  spaces), one row per image in image order, with an optional header row of class names.
  A header whose first field is ``image_id`` (or ``id``/``image``) marks a first column of
  image ids; rows are then matched by id instead of by position.
* id → label rows, CSV or TSV: ``image_id,label1;label2`` (several labels split by ``;``
  or given as further fields), or one row per (id, label) pair, e.g.
  ``im1<TAB>sky``; an optional header row whose first field is ``image_id``/``id``/
  ``image`` is skipped. Class names are the sorted unique label names. An id given with
  an empty label field gets an all-zero row.

An image id is the file stem of the image (``im1`` for ``images/im1.jpg``); ids in the
label file may also be written with their extension.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from nrchbench.errors import DataError

log = logging.getLogger(__name__)

ID_HEADERS = ("image_id", "id", "image", "image_name", "filename", "file")
_BINARY = frozenset({"0", "1", "0.0", "1.0"})
_MAX_SHOWN = 5


def _shown(items: list[str]) -> str:
    more = f" (and {len(items) - _MAX_SHOWN} more)" if len(items) > _MAX_SHOWN else ""
    return ", ".join(repr(x) for x in items[:_MAX_SHOWN]) + more


def _split_fields(line: str) -> list[str]:
    if "\t" in line:
        return [f.strip() for f in line.split("\t")]
    if "," in line:
        return [f.strip() for f in next(csv.reader([line]))]
    return line.split()


def _is_binary_row(fields: list[str]) -> bool:
    return bool(fields) and all(f in _BINARY for f in fields)


def id_index(ids: list[str]) -> dict[str, int]:
    """Map image ids to row indices; duplicated ids are an error (alignment would be ambiguous)."""
    index: dict[str, int] = {}
    dups: list[str] = []
    for i, k in enumerate(ids):
        if k in index:
            dups.append(k)
        index[k] = i
    if dups:
        raise DataError(
            f"image ids (file stems) are not unique: {_shown(sorted(set(dups)))}; "
            "rename the files or give labels/texts in image order instead of by id"
        )
    return index


def lookup_id(raw: str, index: dict[str, int]) -> int | None:
    """Row of an id as written in a label or text file (stem, or name with extension)."""
    i = index.get(raw)
    if i is None and raw:
        i = index.get(Path(raw).stem)
    return i


def _check_binary(m: np.ndarray, path: Path) -> np.ndarray:
    if m.ndim != 2:
        raise DataError(f"{path}: expected a 2-D 0/1 label matrix, got shape {m.shape}")
    if m.size and not np.isin(m, (0, 1)).all():
        raise DataError(f"{path}: label matrix must contain only 0 and 1")
    return m.astype(np.uint8)


def read_labels(
    path: str | Path, ids: list[str], *, ignore_unknown_ids: bool = False
) -> tuple[np.ndarray, list[str] | None]:
    """Read a label file and align it with the images.

    Args:
        path: the label file (see the module docstring for the formats).
        ids: image ids (file stems) in image order.
        ignore_unknown_ids: skip rows whose id is not among the images (e.g. a label file
            covering more images than extracted) instead of raising.

    Returns:
        ``(labels, class_names)``: an N×C uint8 matrix in {0,1} in image order, and the C
        class names (None for a matrix file without a header).

    Raises:
        DataError: the file is missing or malformed, an image has no labels, or the file
            names an id that is not among the images.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--labels {path}: no such file")
    n = len(ids)
    if path.suffix.lower() == ".npy":
        m = _check_binary(np.load(path, allow_pickle=False), path)
        if m.shape[0] != n:
            raise DataError(f"--labels {path}: {m.shape[0]} rows but {n} images; the matrix must be in image order")
        return m, None

    with open(path, encoding="utf-8-sig") as f:
        lines = [ln.rstrip("\r\n") for ln in f]
    rows = [(lineno, _split_fields(ln)) for lineno, ln in enumerate(lines, 1) if ln.strip()]
    if not rows:
        raise DataError(f"--labels {path}: the file is empty")

    header: list[str] | None = None
    body = rows
    first = rows[0][1]
    id_col = _has_id_col(first)
    if not _is_binary_row(first) and len(rows) > 1 and all(_is_binary_row(r[1:] if id_col else r) for _, r in rows[1:]):
        header, body = first, rows[1:]
    elif all(_is_binary_row(r) for _, r in rows) and len({len(r) for _, r in rows}) == 1 and len(first) > 1:
        body = rows  # a headerless 0/1 matrix
    else:
        return _read_pairs(path, rows, ids, ignore_unknown_ids)

    if header is not None and _has_id_col(header):
        return _read_matrix_with_ids(path, header, body, ids, ignore_unknown_ids)
    width = len(header) if header is not None else len(body[0][1])
    for lineno, r in body:
        if len(r) != width:
            raise DataError(f"--labels {path}:{lineno}: {len(r)} fields, expected {width} (one per class)")
    if len(body) != n:
        raise DataError(
            f"--labels {path}: {len(body)} label rows but {n} images; a 0/1 matrix must have one row per image "
            "in image order (or a first column headed image_id)"
        )
    m = np.array([[int(float(x)) for x in r] for _, r in body], dtype=np.uint8)
    return m, header


def _has_id_col(header: list[str]) -> bool:
    return bool(header) and header[0].strip().lower() in ID_HEADERS


def _read_matrix_with_ids(
    path: Path, header: list[str], body: list[tuple[int, list[str]]], ids: list[str], ignore_unknown: bool
) -> tuple[np.ndarray, list[str]]:
    index = id_index(ids)
    names = header[1:]
    m = np.zeros((len(ids), len(names)), dtype=np.uint8)
    seen = np.zeros(len(ids), dtype=bool)
    unknown: list[str] = []
    for lineno, r in body:
        if len(r) != len(header):
            raise DataError(f"--labels {path}:{lineno}: {len(r)} fields, expected {len(header)} (id + one per class)")
        i = lookup_id(r[0], index)
        if i is None:
            unknown.append(r[0])
            continue
        m[i] = [int(float(x)) for x in r[1:]]
        seen[i] = True
    check_coverage("--labels", path, ids, seen, unknown, ignore_unknown)
    return m, names


def _read_pairs(
    path: Path, rows: list[tuple[int, list[str]]], ids: list[str], ignore_unknown: bool
) -> tuple[np.ndarray, list[str]]:
    index = id_index(ids)
    if rows and _has_id_col(rows[0][1]):
        rows = rows[1:]
    per_row: list[tuple[int, list[str]]] = []
    unknown: list[str] = []
    seen = np.zeros(len(ids), dtype=bool)
    for lineno, r in rows:
        if not r[0]:
            raise DataError(f"--labels {path}:{lineno}: empty image id; expected 'image_id,label1;label2' rows")
        i = lookup_id(r[0], index)
        if i is None:
            unknown.append(r[0])
            continue
        names = [x.strip() for field in r[1:] for x in field.split(";") if x.strip()]
        per_row.append((i, names))
        seen[i] = True
    check_coverage("--labels", path, ids, seen, unknown, ignore_unknown)
    classes = sorted({c for _, names in per_row for c in names})
    if not classes:
        raise DataError(f"--labels {path}: no label names found; expected rows 'image_id,label1;label2'")
    col = {c: j for j, c in enumerate(classes)}
    m = np.zeros((len(ids), len(classes)), dtype=np.uint8)
    for i, names in per_row:
        for c in names:
            m[i, col[c]] = 1
    return m, classes


def check_coverage(
    option: str,
    path: Path,
    ids: list[str],
    seen: np.ndarray,
    unknown: list[str],
    ignore_unknown: bool,
    what: str = "label",
    empty_hint: str = " (an empty label field gives an all-zero row)",
) -> None:
    """Rows of unknown ids (refused unless ``ignore_unknown``) and images without a row (refused).

    Shared by the label and text readers; ``option`` and ``what`` name the file in messages.
    """
    if unknown and ignore_unknown:
        log.info("%s: skipped %d row(s) of ids that are not among the images", path, len(unknown))
    elif unknown:
        raise DataError(
            f"{option} {path}: {len(unknown)} row(s) name ids that are not among the images: {_shown(unknown)}; "
            "ids must be image file stems (e.g. im1 for im1.jpg); remove those rows, add the images "
            "or pass --ignore-unknown-ids"
        )
    missing = [ids[i] for i in np.flatnonzero(~seen)]
    if missing:
        raise DataError(
            f"{option} {path}: {len(missing)} image(s) have no {what} row: {_shown(missing)}; "
            f"add a row per image{empty_hint} or remove those images"
        )
