"""Bring-your-own-features formats: ``generic`` and the NRCH-prepared HDF5 file (``nrch-h5``).

The generic format (``data.npz`` or ``data.h5``, optional ``manifest.json`` and split
files) is defined and read by :mod:`nrchbench.datasets.generic_format`, which feature
extraction writes through as well. Default split of ``generic``: ``official`` (the stored
one) when ``query`` and ``train`` are present, else ``random`` with query = 10% of the rows
(at least 1) and train = every other row (train = database) unless the manifest sets the
sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from nrchbench.datasets.base import DatasetLoader, DatasetOptions, RawData
from nrchbench.datasets.generic_format import DATA_H5, DATA_NPZ, MANIFEST_FILE, data_file, read_generic
from nrchbench.datasets.io import missing_files_error, read_matrix, require_files
from nrchbench.errors import ConfigError, DataError
from nrchbench.registry import DATASETS


@DATASETS.register("generic")
class Generic(DatasetLoader):
    """Your own features: a directory with data.npz or data.h5 (image, text, labels, optional splits).

    See :mod:`nrchbench.datasets.generic_format` for the format. Pass the directory itself
    as the dataset (``--dataset path/to/dir``), or place it at ``<data-root>/generic/``.
    """

    name = "generic"
    description = "your own features: a directory with data.npz or data.h5 (image, text, labels, optional splits)"
    files = (
        f"{DATA_NPZ} or {DATA_H5}",
        f"optional: {MANIFEST_FILE}, query.txt, train.txt, database.txt, val.txt",
    )
    download_hint = ""
    default_split = "random"

    def read(self, directory: Path, options: DatasetOptions) -> RawData:
        if data_file(directory) is None:
            raise missing_files_error(self, directory, [f"{DATA_NPZ} (or {DATA_H5})"])
        data = read_generic(directory)
        n = int(np.shape(data.labels)[0])
        if data.splits:
            self.default_split = "official"
        q = data.manifest.query_size
        t = data.manifest.train_size
        if q is None:
            q = max(1, round(0.1 * n))
        if t is None:
            t = n - int(q)
        self.split_sizes = (int(q), int(t))
        return RawData(
            image=data.image,
            text=data.text,
            labels=data.labels,
            class_names=data.class_names,
            splits=data.splits,
            files=data.files,
            version=str(data.manifest.version),
            sources=data.sources,
            meta={"name": data.manifest.name} if data.manifest.name is not None else {},
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

    class Options(DatasetOptions):
        """Options of ``nrch-h5``."""

        variant: Literal["mirflickr", "nuswide", "coco", "iapr"] | None = Field(
            None, description="which prepared file (and its declared dimensions)"
        )
        file: str | None = Field(None, description="the .h5 file name or path to read")

    def read(self, directory: Path, options: DatasetOptions) -> RawData:
        assert isinstance(options, self.Options)
        variant, file = options.variant, options.file
        if variant is not None and file is None:
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
