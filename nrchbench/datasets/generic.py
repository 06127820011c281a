"""Bring-your-own-features formats: ``generic`` and the NRCH-prepared HDF5 file (``nrch-h5``).

Generic format
--------------
A directory holding either ``data.npz`` or ``data.h5`` with the arrays

* ``image``: N×d1 image features (any float/int dtype; stored as float32),
* ``text``: N×d2 text features,
* ``labels``: N×C multi-hot 0/1 labels (one-hot for single-label data),
* ``class_names`` (optional): C strings,
* ``query``, ``train``, ``database``, ``val`` (optional): 0-based row-index arrays.

Split indices may instead be given as text files ``query.txt``, ``train.txt``,
``database.txt``, ``val.txt`` (one 0-based index per line) next to the data file; files
win over arrays. An optional ``manifest.json`` may hold ``name``, ``version``,
``description``, ``class_names``, ``query_size`` and ``train_size`` (sizes for the
``nrch``/``random`` rules). Default split: ``official`` (the stored one) when ``query``
and ``train`` are present, else ``random`` with query = 10% of the rows (at least 1) and
train = every other row (train = database) unless the manifest sets the sizes.

HDF5 arrays are read as stored (no MATLAB transposition).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nrchbench.datasets.base import SPLIT_NAMES, DatasetLoader, RawData
from nrchbench.datasets.io import missing_files_error, read_h5_strings, read_matrix, require_files
from nrchbench.errors import ConfigError, DataError
from nrchbench.registry import DATASETS


def _read_index_file(path: Path) -> np.ndarray:
    try:
        return np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise DataError(f"{path}: expected one 0-based integer row index per line ({exc})") from None


@DATASETS.register("generic")
class Generic(DatasetLoader):
    """Your own features: a directory with data.npz or data.h5 (image, text, labels, optional splits).

    See the module docstring of :mod:`nrchbench.datasets.generic` for the format. Pass the
    directory itself as the dataset (``--dataset path/to/dir``), or place it at
    ``<data-root>/generic/``.
    """

    name = "generic"
    description = "your own features: a directory with data.npz or data.h5 (image, text, labels, optional splits)"
    files = ("data.npz or data.h5", "optional: manifest.json, query.txt, train.txt, database.txt, val.txt")
    download_hint = ""
    default_split = "random"

    def read(self, directory: Path) -> RawData:
        npz, h5 = directory / "data.npz", directory / "data.h5"
        manifest: dict = {}
        files: dict[str, str] = {}
        if (directory / "manifest.json").is_file():
            try:
                manifest = json.loads((directory / "manifest.json").read_text())
            except json.JSONDecodeError as exc:
                raise DataError(f"{directory / 'manifest.json'}: invalid JSON ({exc})") from None
            files["manifest.json"] = str(directory / "manifest.json")
        splits: dict[str, np.ndarray] = {}
        class_names = manifest.get("class_names")
        if npz.is_file():
            files["data.npz"] = str(npz)
            with np.load(npz, allow_pickle=False) as z:
                for key in ("image", "text", "labels"):
                    if key not in z.files:
                        raise DataError(f"{npz}: array {key!r} not found; the file has {', '.join(z.files)}")
                image, text, labels = z["image"], z["text"], z["labels"]
                if "class_names" in z.files and class_names is None:
                    class_names = [str(c) for c in z["class_names"]]
                for k in SPLIT_NAMES:
                    if k in z.files:
                        splits[k] = np.asarray(z[k], dtype=np.int64).ravel()
            src = str(npz)
        elif h5.is_file():
            files["data.h5"] = str(h5)
            image = read_matrix(h5, "image", transpose=False)
            text = read_matrix(h5, "text", transpose=False)
            labels = read_matrix(h5, "labels", kind="labels", transpose=False)
            if class_names is None:
                class_names = read_h5_strings(h5, "class_names")
            import h5py

            with h5py.File(h5, "r") as f:
                for k in SPLIT_NAMES:
                    if k in f:
                        splits[k] = np.asarray(f[k][()], dtype=np.int64).ravel()
            src = str(h5)
        else:
            raise missing_files_error(self, directory, ["data.npz (or data.h5)"])
        for k in SPLIT_NAMES:
            p = directory / f"{k}.txt"
            if p.is_file():
                splits[k] = _read_index_file(p)
                files[p.name] = str(p)
        n = int(np.shape(labels)[0])
        if splits and ("query" not in splits or "train" not in splits):
            raise DataError(
                f"{directory}: a stored split needs at least 'query' and 'train' (found {', '.join(splits)})"
            )
        if splits:
            self.default_split = "official"
        q = manifest.get("query_size")
        t = manifest.get("train_size")
        if q is None:
            q = max(1, round(0.1 * n))
        if t is None:
            t = n - int(q)
        self.split_sizes = (int(q), int(t))
        return RawData(
            image=image,
            text=text,
            labels=labels,
            class_names=[str(c) for c in class_names] if class_names is not None else None,
            splits=splits,
            files=files,
            version=str(manifest.get("version", "1")),
            sources={"image": f"{src}:image", "text": f"{src}:text", "labels": f"{src}:labels"},
            meta={"name": manifest["name"]} if "name" in manifest else {},
        )


# The prepared files written by the official NRCH code (utils/tools.py SaveH5File_*),
# with the dimensions of each variant.
NRCH_FILES: dict[str, tuple[str, int, int, int]] = {
    "mirflickr": ("MIRFlickr.h5", 4096, 1386, 24),
    "nuswide": ("NUS-WIDE.h5", 4096, 1000, 21),
    "coco": ("MS-COCO.h5", 4096, 300, 80),
    "iapr": ("IAPR.h5", 4096, 2912, 255),
}


@DATASETS.register("nrch-h5")
class NRCHPrepared(DatasetLoader):
    """The HDF5 file the official NRCH code prepares (MIRFlickr.h5, NUS-WIDE.h5, MS-COCO.h5, IAPR.h5).

    Datasets ``ImgTrain``/``TagTrain``/``LabTrain``, ``ImgQuery``/``TagQuery``/``LabQuery``,
    ``ImgDataBase``/``TagDataBase``/``LabDataBase``, as written by ``utils/tools.py``
    (``SaveH5File_F/N/C/I``), under ``<data-root>/nrch-h5/``.

    Options:
        variant: ``mirflickr``, ``nuswide``, ``coco`` or ``iapr`` (picks the file name and
            the declared dimensions); or
        file: the file name (or path) to read. Without either, the directory must hold
            exactly one ``.h5`` file.

    Rows are stored as [query; database]. When the training rows equal the first database
    rows (as the NRCH code writes them: train = database[:N_train]) the train split indexes
    those rows; otherwise the training rows are appended after the database and only
    belong to ``train``. The default split is ``official`` (the stored one); the ``nrch``
    rule with the stored sizes gives the same split.
    """

    name = "nrch-h5"
    description = "prepared HDF5 from the official NRCH code (ImgTrain/TagTrain/LabTrain, ...Query, ...DataBase)"
    files = tuple(v[0] for v in NRCH_FILES.values())
    download_hint = "run utils/tools.py of github.com/LonganWANG-cs/NRCH on the UCCH .mat files"
    default_split = "official"

    def read(self, directory: Path, *, variant: str | None = None, file: str | None = None) -> RawData:
        if variant is not None:
            if variant not in NRCH_FILES:
                raise ConfigError(f"nrch-h5 variant {variant!r} unknown; available: {', '.join(NRCH_FILES)}")
            if file is None:
                file = NRCH_FILES[variant][0]
        if file is None:
            found = sorted(p.name for p in directory.glob("*.h5"))
            if len(found) != 1:
                raise ConfigError(
                    f"nrch-h5: {directory} holds {len(found)} .h5 files ({', '.join(found) or 'none'}); "
                    f"pass variant= ({', '.join(NRCH_FILES)}) or file="
                )
            file = found[0]
        path = Path(file) if Path(file).is_absolute() else directory / file
        if not path.is_file():
            require_files(self, path.parent, [path.name])
        if variant is None:
            variant = next((k for k, v in NRCH_FILES.items() if v[0] == path.name), None)
        if variant is not None:
            _f, self.image_dim, self.text_dim, self.num_classes = NRCH_FILES[variant]  # type: ignore[misc]

        def part(suffix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            img = read_matrix(path, f"Img{suffix}", transpose=False)
            tag = read_matrix(path, f"Tag{suffix}", transpose=False)
            lab = read_matrix(path, f"Lab{suffix}", kind="labels", transpose=False)
            rows = {f"Img{suffix}": img.shape[0], f"Tag{suffix}": tag.shape[0], f"Lab{suffix}": lab.shape[0]}
            if len(set(rows.values())) != 1:
                raise DataError(
                    f"{path}: row count mismatch between " + ", ".join(f"{k} ({r} rows)" for k, r in rows.items())
                )
            return img, tag, lab

        qi, qt, ql = part("Query")
        di, dt, dl = part("DataBase")
        ti, tt, tl = part("Train")
        nq, nd, nt = qi.shape[0], di.shape[0], ti.shape[0]
        in_db = nt <= nd and np.array_equal(ti, di[:nt]) and np.array_equal(tt, dt[:nt]) and np.array_equal(tl, dl[:nt])
        if in_db:
            image, text, labels = np.concatenate([qi, di]), np.concatenate([qt, dt]), np.concatenate([ql, dl])
            train = np.arange(nq, nq + nt, dtype=np.int64)
        else:
            image = np.concatenate([qi, di, ti])
            text = np.concatenate([qt, dt, tt])
            labels = np.concatenate([ql, dl, tl])
            train = np.arange(nq + nd, nq + nd + nt, dtype=np.int64)
        self.split_sizes = (nq, nt) if in_db else None
        return RawData(
            image=image,
            text=text,
            labels=labels,
            splits={
                "query": np.arange(nq, dtype=np.int64),
                "train": train,
                "database": np.arange(nq, nq + nd, dtype=np.int64),
            },
            files={path.name: str(path)},
            version=path.name,
            sources={
                "image": f"{path}:ImgQuery+ImgDataBase",
                "text": f"{path}:TagQuery+TagDataBase",
                "labels": f"{path}:LabQuery+LabDataBase",
            },
            meta={"nrch_h5_variant": variant, "train_rows_in_database": bool(in_db)},
        )
