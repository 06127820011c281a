"""Reading matrices from MATLAB v5, MATLAB v7.3 (HDF5) and plain HDF5 files.

The format is detected from the file itself: MATLAB v7.3 files are HDF5 files whose
512-byte user block starts with ``MATLAB 7.3``; MATLAB stores arrays column-major, so h5py
sees them transposed and they are transposed back here. Plain HDF5 files (e.g. the MS-COCO
``.h5py`` file written by Python) are read as stored.

Features are returned as C-contiguous float32. For HDF5 files they are converted by HDF5
while reading, in row blocks, so no float64 copy of a large matrix ever exists (NUS-WIDE's
image matrix is ~3 GB in float32). MATLAB v5 files are read with ``scipy.io.loadmat``
(only the variables asked for); a variable stored as double then exists once as float64
before conversion, which the format does not let us avoid.

Every problem is a one-line :class:`~nrchbench.errors.DataError` naming the file and the
variable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from nrchbench.errors import DataError

log = logging.getLogger(__name__)

_BLOCK_BYTES = 64 << 20  # size of one float32 block read from HDF5


def brief_error(exc: BaseException, limit: int = 200) -> str:
    """``"Type: message"`` of an exception on one line, cut at ``limit`` characters."""
    s = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {s[:limit]}{'…' if len(s) > limit else ''}"


def file_format(path: str | Path) -> str:
    """``"mat5"``, ``"mat73"`` (MATLAB HDF5) or ``"hdf5"`` (plain HDF5)."""
    import h5py

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(128)
    if h5py.is_hdf5(str(path)):
        return "mat73" if head.startswith(b"MATLAB 7.3") else "hdf5"
    if head[:6] == b"MATLAB" or path.suffix.lower() == ".mat":
        return "mat5"
    raise DataError(f"{path}: neither a MATLAB .mat file nor an HDF5 file (unknown format)")


def list_variables(path: str | Path) -> list[str]:
    """Names of the variables (MATLAB) or top-level datasets/groups (HDF5) in a file."""
    path = Path(path)
    fmt = file_format(path)
    if fmt == "mat5":
        import scipy.io

        return [name for name, _shape, _cls in scipy.io.whosmat(str(path))]
    import h5py

    with h5py.File(path, "r") as f:
        return [k for k in f if not k.startswith("#")]


def _missing_variable(path: Path, name: str) -> DataError:
    try:
        present = list_variables(path)
    except Exception:  # the file may be unreadable: the original message is enough
        present = []
    return DataError(
        f"{path}: variable {name!r} not found; the file has {', '.join(present) or 'no variables'} "
        "(is this the right file or version of the dataset?)"
    )


def _read_mat5(path: Path, names: list[str]) -> dict[str, Any]:
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path), variable_names=names)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as a MATLAB file ({type(exc).__name__}: {exc})") from exc
    for name in names:
        if name not in data:
            raise _missing_variable(path, name)
    return {name: data[name] for name in names}


def _h5_sparse_to_dense(group: Any, path: Path, name: str, dtype: np.dtype) -> np.ndarray:
    """A MATLAB v7.3 sparse matrix (group with data/ir/jc, MATLAB_sparse = rows)."""
    nrows = int(group.attrs["MATLAB_sparse"])
    jc = group["jc"][()].astype(np.int64)
    ncols = len(jc) - 1
    out = np.zeros((nrows, ncols), dtype=dtype)
    if "data" in group:
        ir = group["ir"][()].astype(np.int64)
        vals = group["data"][()].astype(dtype)
        cols = np.repeat(np.arange(ncols), np.diff(jc))
        out[ir, cols] = vals
    return out


def _read_h5(path: Path, name: str, dtype: np.dtype, transpose: bool) -> np.ndarray:
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        raise DataError(f"{path}: cannot open as HDF5 ({type(exc).__name__}: {exc})") from exc
    with f:
        if name not in f:
            raise _missing_variable(path, name)
        obj = f[name]
        if isinstance(obj, h5py.Group):
            if "MATLAB_sparse" in obj.attrs:
                return _h5_sparse_to_dense(obj, path, name, dtype)
            raise DataError(f"{path}: {name!r} is an HDF5 group, expected a matrix")
        if obj.dtype.kind not in "biuf":
            raise DataError(f"{path}: variable {name!r} is a {obj.dtype} array, expected a numeric matrix")
        if obj.ndim == 1:
            return np.ascontiguousarray(obj.astype(dtype)[()].reshape(-1, 1))
        if obj.ndim != 2:
            raise DataError(f"{path}: variable {name!r} has shape {obj.shape}, expected a 2-D matrix")
        if transpose:
            d, n = obj.shape
        else:
            n, d = obj.shape
        out = np.empty((n, d), dtype=dtype)
        step = max(1, _BLOCK_BYTES // max(1, d * out.itemsize))
        conv = obj.astype(dtype)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            if transpose:
                out[r0:r1] = conv[:, r0:r1].T
            else:
                out[r0:r1] = conv[r0:r1]
        return out


def read_matrix(path: str | Path, name: str, *, kind: str = "features", transpose: bool | None = None) -> np.ndarray:
    """Read one 2-D variable.

    Args:
        path: a MATLAB v5/v7.3 or HDF5 file.
        name: variable (dataset) name.
        kind: ``"features"`` → float32, ``"labels"`` → uint8 (checked to be binary).
        transpose: force (True/False) the MATLAB transposition of HDF5 data; None = detect.

    Returns:
        A C-contiguous N×d array.

    Raises:
        DataError: missing file or variable, wrong shape, non-binary labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = file_format(path)
    if kind == "features":
        dtype = np.dtype(np.float32)
    elif kind == "labels":
        dtype = np.dtype(np.float32)  # read as float first so non-binary values can be reported
    else:  # pragma: no cover - programming error
        raise ValueError(f"kind must be 'features' or 'labels', not {kind!r}")
    if fmt == "mat5":
        arr = _read_mat5(path, [name])[name]
        if hasattr(arr, "toarray"):  # scipy.sparse (bag-of-words text is often stored sparse)
            arr = arr.astype(dtype).toarray()
        arr = np.asarray(arr)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.dtype.kind not in "biuf":
            raise DataError(
                f"{path}: variable {name!r} is a {arr.dtype} array of shape {arr.shape}, expected a numeric matrix"
            )
        arr = np.ascontiguousarray(arr, dtype=dtype) if kind == "features" else arr
    else:
        tr = (fmt == "mat73") if transpose is None else transpose
        arr = _read_h5(path, name, dtype, tr)
    if kind == "features":
        return arr  # NaN/Inf are checked once, by load_dataset's validation
    return to_binary_labels(arr, f"{path}: variable {name!r}")


def check_finite(arr: np.ndarray, where: str, block: int = 1 << 16) -> None:
    """Raise DataError naming how many rows hold NaN/Inf (checked in blocks, no big temporaries)."""
    bad_rows = 0
    first = -1
    for r0 in range(0, arr.shape[0], block):
        ok = np.isfinite(arr[r0 : r0 + block]).all(axis=1)
        nbad = int((~ok).sum())
        if nbad and first < 0:
            first = r0 + int(np.flatnonzero(~ok)[0])
        bad_rows += nbad
    if bad_rows:
        raise DataError(
            f"{where}: {bad_rows} of {arr.shape[0]} rows contain NaN or Inf (first at row {first}); "
            "fix or re-extract the features"
        )


def to_binary_labels(arr: Any, where: str) -> np.ndarray:
    """Return ``arr`` as uint8 in {0,1}; raise DataError if it holds any other value."""
    if hasattr(arr, "toarray"):
        arr = arr.toarray()
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr, dtype=np.uint8)
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        vals = np.unique(arr[bad])[:5]
        raise DataError(
            f"{where}: labels must be 0/1 (multi-hot), found {int(bad.sum())} other entries "
            f"(e.g. {', '.join(repr(float(v)) for v in vals)}); convert class indices to one-hot first"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def read_h5_strings(path: str | Path, name: str) -> list[str] | None:
    """A 1-D string dataset from an HDF5 file (None when absent)."""
    import h5py

    with h5py.File(path, "r") as f:
        if name not in f:
            return None
        vals = f[name][()]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(vals)]


def missing_files_error(loader: Any, directory: Path, missing: list[str]) -> DataError:
    """The one-line error for absent dataset files: where we looked, what is expected, how to get it."""
    expected = ", ".join(loader.files) or ", ".join(missing)
    hint = f" Public copies: {loader.download_hint}." if loader.download_hint else ""
    return DataError(
        f"dataset {loader.name!r}: missing {', '.join(missing)} in {directory.resolve()} "
        f"(expected files: {expected}).{hint} Put them in <data-root>/{loader.name}/ and pass "
        "--data-root DIR or set $NRCHBENCH_DATA (default ./datasets); see datasets/README.md"
    )


def require_files(loader: Any, directory: Path, names: list[str] | tuple[str, ...] | None = None) -> dict[str, Path]:
    """Paths of ``names`` (default: all of ``loader.files``) under ``directory``; DataError if any is absent."""
    names = list(names if names is not None else loader.files)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise missing_files_error(loader, directory, missing)
    return {n: directory / n for n in names}
