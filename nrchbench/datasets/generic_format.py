"""The generic dataset format: its one reader and the one owner of ``manifest.json``.

Both the ``generic`` loader (:mod:`nrchbench.datasets.generic`) and ``nrchbench features
extract`` (:mod:`nrchbench.features`) go through this module, so what extraction writes is
by construction what the loader reads.

Format
------
A directory holding either ``data.npz`` or ``data.h5`` with the arrays

* ``image``: N×d1 image features (any float/int dtype; stored as float32),
* ``text``: N×d2 text features,
* ``labels``: N×C multi-hot 0/1 labels (one-hot for single-label data),
* ``class_names`` (optional): C strings,
* ``query``, ``train``, ``database``, ``val`` (optional): 0-based row-index arrays.

Split indices may instead be given as text files ``query.txt``, ``train.txt``,
``database.txt``, ``val.txt`` (one 0-based index per line) next to the data file; files
win over arrays. An optional ``manifest.json`` (:class:`Manifest`) may hold ``name``,
``version``, ``description``, ``class_names``, ``query_size`` and ``train_size`` (sizes
for the ``nrch``/``random`` rules), and ``n``/``image_dim``/``text_dim``/``num_classes``,
which must then match the data; any other key (e.g. extraction provenance) is kept as is.

HDF5 arrays are read as stored (no MATLAB transposition). Every problem is a one-line
:class:`~nrchbench.errors.DataError` naming the file and the variable.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nrchbench.datasets.base import SPLIT_NAMES
from nrchbench.datasets.io import brief_error, read_h5_strings, read_matrix
from nrchbench.errors import DataError
from nrchbench.utils import atomic_write_json

__all__ = [
    "DATA_H5",
    "DATA_NPZ",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "GenericData",
    "Manifest",
    "data_file",
    "read_generic",
    "read_manifest",
    "write_manifest",
]

DATA_NPZ = "data.npz"
DATA_H5 = "data.h5"
MANIFEST_FILE = "manifest.json"
FORMAT_NAME = "nrchbench-generic"
FORMAT_VERSION = 1
ARRAYS = ("image", "text", "labels")


class Manifest(BaseModel):
    """``manifest.json``: the keys the loader reads are typed and checked; other keys are kept."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, protected_namespaces=())

    format: str | None = None
    format_version: int | None = None
    name: str | None = None
    version: str | None = "1"
    description: str | None = None
    class_names: list[str] | None = None
    query_size: int | None = Field(None, ge=1)
    train_size: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=0)
    num_classes: int | None = Field(None, ge=1)
    image_dim: int | None = Field(None, ge=1)
    text_dim: int | None = Field(None, ge=1)

    def to_dict(self) -> dict[str, Any]:
        """The keys the file holds (defaults of absent keys left out)."""
        return self.model_dump(exclude_unset=True)


def _manifest(values: Any, where: Path) -> Manifest:
    if not isinstance(values, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(values).__name__}")
    try:
        return Manifest.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err.get("loc", ())) or "?"
        msg = str(err.get("msg", "invalid value"))
        raise DataError(f"{where}: field {key!r}: {msg[:1].lower() + msg[1:]}, got {err.get('input')!r}") from None


def read_manifest(directory: str | Path) -> Manifest | None:
    """The checked ``manifest.json`` of a dataset directory, or None when there is none."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None
    return _manifest(values, path)


def write_manifest(directory: str | Path, values: dict[str, Any]) -> Path:
    """Check ``values`` as a :class:`Manifest` and write them atomically (format name and
    version first). What this writes, :func:`read_manifest` reads."""
    path = Path(directory) / MANIFEST_FILE
    doc = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **values}
    _manifest(doc, path)
    atomic_write_json(path, doc)
    return path


@dataclass
class GenericData:
    """What a generic-format directory holds (before validation and splitting).

    ``files`` maps file names to paths (checksummed into a run's record); ``sources`` maps
    ``image``/``text``/``labels`` and each stored split to ``file:variable`` (for messages).
    """

    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    class_names: list[str] | None
    splits: dict[str, np.ndarray]
    manifest: Manifest
    files: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def data_file(directory: str | Path) -> Path | None:
    """``data.npz`` (preferred) or ``data.h5`` of a directory, or None when neither exists."""
    for name in (DATA_NPZ, DATA_H5):
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


def _numeric(arr: Any, where: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        example = f" (e.g. {arr.flat[0]!r})" if arr.size else ""
        raise DataError(
            f"{where}: a {arr.dtype} array{example}, expected numbers; store features, labels and "
            "split indices as numeric arrays (e.g. np.asarray(x, dtype=np.float32))"
        )
    return arr


def index_array(arr: Any, where: str) -> np.ndarray:
    """A 0-based row-index vector as int64 (a column or row vector is flattened).

    Raises:
        DataError: not a vector, a boolean mask, or non-integer values.
    """
    arr = _numeric(arr, where)
    if arr.ndim > 1 and arr.size != max(arr.shape):
        raise DataError(f"{where}: shape {arr.shape}, expected a vector of 0-based row indices")
    arr = arr.ravel()
    if arr.dtype.kind == "b":
        raise DataError(f"{where}: a boolean mask, expected 0-based row indices (convert with np.flatnonzero(mask))")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise DataError(f"{where}: non-integer values, expected 0-based integer row indices")
    return arr.astype(np.int64)


def _read_index_file(path: Path) -> np.ndarray:
    try:
        values = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise DataError(f"{path}: expected one 0-based integer row index per line ({exc})") from None
    return index_array(values, str(path))


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], list[str] | None, dict[str, np.ndarray]]:
    how = "write it with numpy.savez(path, image=..., text=..., labels=...)"
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path}: not a zip archive, so not an .npz file (an .npz is a zip of .npy arrays; "
            f"is it truncated, or another format renamed?); {how}"
        )
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({brief_error(exc, 160)}); {how}") from None

    def member(key: str) -> np.ndarray:
        try:
            return z[key]
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise DataError(
                    f"{path}:{key}: holds Python objects (dtype object), expected a numeric array; "
                    "save it as numbers (e.g. np.asarray(x, dtype=np.float32))"
                ) from None
            raise DataError(f"{path}:{key}: unreadable ({brief_error(exc, 160)})") from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(f"{path}:{key}: unreadable, the archive is damaged ({brief_error(exc, 160)})") from None

    with z:
        for key in ARRAYS:
            if key not in z.files:
                raise DataError(f"{path}: array {key!r} not found; the file has {', '.join(z.files)}")
        arrays = {key: _numeric(member(key), f"{path}:{key}") for key in ARRAYS}
        class_names = [str(c) for c in member("class_names")] if "class_names" in z.files else None
        splits = {k: index_array(member(k), f"{path}:{k}") for k in SPLIT_NAMES if k in z.files}
    return arrays, class_names, splits


def _read_h5(path: Path) -> tuple[dict[str, np.ndarray], list[str] | None, dict[str, np.ndarray]]:
    import h5py

    arrays = {key: read_matrix(path, key, transpose=False) for key in ("image", "text")}
    arrays["labels"] = read_matrix(path, "labels", kind="labels", transpose=False)
    class_names = read_h5_strings(path, "class_names")
    splits = {}
    with h5py.File(path, "r") as f:
        for k in SPLIT_NAMES:
            if k in f:
                if not isinstance(f[k], h5py.Dataset):
                    raise DataError(f"{path}:{k}: an HDF5 group, expected a vector of 0-based row indices")
                splits[k] = index_array(f[k][()], f"{path}:{k}")
    return arrays, class_names, splits


def read_generic(directory: str | Path) -> GenericData:
    """Read a generic-format directory (see the module docstring).

    Raises:
        DataError: no data file, an unreadable or malformed file, a stored split without
            ``query`` and ``train``, or a manifest that does not describe the data.
    """
    directory = Path(directory)
    path = data_file(directory)
    if path is None:
        raise DataError(f"{directory}: neither {DATA_NPZ} nor {DATA_H5} found")
    manifest = read_manifest(directory)
    files: dict[str, str] = {}
    if manifest is not None:
        files[MANIFEST_FILE] = str(directory / MANIFEST_FILE)
    files[path.name] = str(path)
    arrays, class_names, splits = _read_npz(path) if path.name == DATA_NPZ else _read_h5(path)
    sources = {key: f"{path}:{key}" for key in (*ARRAYS, *splits)}
    for k in SPLIT_NAMES:
        p = directory / f"{k}.txt"
        if p.is_file():
            splits[k] = _read_index_file(p)
            files[p.name] = sources[k] = str(p)
    if splits and ("query" not in splits or "train" not in splits):
        raise DataError(f"{directory}: a stored split needs at least 'query' and 'train' (found {', '.join(splits)})")
    manifest = manifest or Manifest()
    if manifest.class_names is not None:
        class_names = manifest.class_names
    _check_manifest(manifest, arrays, directory / MANIFEST_FILE, sources)
    return GenericData(
        **arrays, class_names=class_names, splits=splits, manifest=manifest, files=files, sources=sources
    )


def _check_manifest(manifest: Manifest, arrays: dict[str, np.ndarray], where: Path, sources: dict[str, str]) -> None:
    """The sizes a manifest states must be those of the data (a data file replaced alone)."""
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    actual = {
        "n": ("labels", 0),
        "image_dim": ("image", 1),
        "text_dim": ("text", 1),
        "num_classes": ("labels", 1),
    }
    for key, (array, axis) in actual.items():
        want = getattr(manifest, key)
        if want is None or len(shapes[array]) <= axis:
            continue
        got = int(shapes[array][axis])
        if got != want:
            raise DataError(
                f"{where}: {key} is {want} but {sources[array]} has {got} {'rows' if axis == 0 else 'columns'}; "
                "the manifest does not describe this data file (regenerate one of them)"
            )
