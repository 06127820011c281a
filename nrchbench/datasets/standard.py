"""The four standard NRCH benchmark sets, read from the files the community distributes.

Each loader reads ``<data-root>/<name>/`` (see ``datasets/README.md`` for where to get the
files). Row order is kept exactly as stored, so the ``nrch`` split rule reproduces the
official NRCH code's slicing (METHODS.md §1.2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrchbench.datasets.base import DatasetLoader, DatasetOptions, RawData
from nrchbench.datasets.io import read_matrix, require_files
from nrchbench.errors import DataError
from nrchbench.registry import DATASETS

_UCCH_HINT = (
    "the VGG-19 feature .mat files distributed with UCCH (github.com/penghu-cs/UCCH, "
    "Google Drive/Baidu links in its README) and DCMH/DJSRH data releases"
)


class _TripleMat(DatasetLoader):
    """Three MATLAB files holding ``XAll`` (image), ``YAll`` (text) and ``LAll`` (labels)."""

    image_file: str = ""
    text_file: str = ""
    label_file: str = ""
    image_var = "XAll"
    text_var = "YAll"
    label_var = "LAll"
    image_nonnegative = True

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.files = (cls.image_file, cls.label_file, cls.text_file)

    def read(self, directory: Path, options: DatasetOptions) -> RawData:
        paths = require_files(self, directory)
        labels = read_matrix(paths[self.label_file], self.label_var, kind="labels")
        text = read_matrix(paths[self.text_file], self.text_var)
        image = read_matrix(paths[self.image_file], self.image_var)
        return RawData(
            image=image,
            text=text,
            labels=labels,
            files={k: str(v) for k, v in paths.items()},
            version=f"{self.image_file}:{self.image_var}",
            sources={
                "image": f"{paths[self.image_file]}:{self.image_var}",
                "text": f"{paths[self.text_file]}:{self.text_var}",
                "labels": f"{paths[self.label_file]}:{self.label_var}",
            },
        )


@DATASETS.register("mirflickr")
class MIRFlickr(_TripleMat):
    """MIRFlickr-25K (20,015 labelled pairs): 4096-d VGG-19 fc7, 1386-d tag BoW, 24 concepts, multi-label.

    Files under ``<data-root>/mirflickr/``: ``mirflickr25k-iall-vgg.mat`` (``XAll``),
    ``mirflickr25k-yall.mat`` (``YAll``), ``mirflickr25k-lall.mat`` (``LAll``); MATLAB v5 or
    v7.3. ``nrch`` split: query 2,000, train 10,000, database 18,015.
    """

    name = "mirflickr"
    description = "MIRFlickr-25K: 20,015 pairs, 4096-d VGG-19 fc7 / 1386-d tag BoW, 24 concepts (multi-label)"
    image_file = "mirflickr25k-iall-vgg.mat"
    label_file = "mirflickr25k-lall.mat"
    text_file = "mirflickr25k-yall.mat"
    download_hint = _UCCH_HINT
    split_sizes = (2000, 10000)
    image_dim = 4096
    text_dim = 1386
    num_classes = 24


@DATASETS.register("nuswide")
class NUSWIDE(_TripleMat):
    """NUS-WIDE top-21 concepts, cleaned (190,421 pairs): 4096-d VGG-19 fc7, 1000-d tag BoW, multi-label.

    Files under ``<data-root>/nuswide/``: ``nus-wide-tc21-xall-vgg-clean.mat`` (``XAll``,
    ~3 GB as float32, usually MATLAB v7.3: read in blocks straight into float32),
    ``nus-wide-tc21-yall-clean.mat`` (``YAll``), ``nus-wide-tc21-lall-clean.mat`` (``LAll``).
    ``nrch`` split: query 2,100, train 10,500, database 188,321.
    """

    name = "nuswide"
    description = "NUS-WIDE tc21 clean: 190,421 pairs, 4096-d VGG-19 fc7 / 1000-d tag BoW, 21 concepts (multi-label)"
    image_file = "nus-wide-tc21-xall-vgg-clean.mat"
    label_file = "nus-wide-tc21-lall-clean.mat"
    text_file = "nus-wide-tc21-yall-clean.mat"
    download_hint = _UCCH_HINT
    split_sizes = (2100, 10500)
    image_dim = 4096
    text_dim = 1000
    num_classes = 21


@DATASETS.register("iapr")
class IAPR(DatasetLoader):
    """IAPR TC-12 (20,000 pairs): 4096-d VGG-19 fc7, 2912-d BoW, 255 classes, multi-label.

    File under ``<data-root>/iapr/``: ``iapr-tc12-rand.mat`` with ``VDatabase``,
    ``YDatabase``, ``databaseL`` (18,000 rows) and ``VTest``, ``YTest``, ``testL`` (2,000
    rows). Rows are stored as [database; test], as the NRCH code concatenates them, so the
    ``nrch`` query is the first 2,000 rows of the database part (METHODS.md §1.2).
    """

    name = "iapr"
    description = "IAPR TC-12: 20,000 pairs, 4096-d VGG-19 fc7 / 2912-d BoW, 255 classes (multi-label)"
    files = ("iapr-tc12-rand.mat",)
    download_hint = _UCCH_HINT
    split_sizes = (2000, 10000)
    image_dim = 4096
    text_dim = 2912
    num_classes = 255
    image_nonnegative = True

    def read(self, directory: Path, options: DatasetOptions) -> RawData:
        path = require_files(self, directory)[self.files[0]]
        parts = {
            v: read_matrix(path, v, kind="labels" if v.endswith("L") else "features")
            for v in ("VDatabase", "YDatabase", "databaseL", "VTest", "YTest", "testL")
        }
        for a, b, c in (("VDatabase", "YDatabase", "databaseL"), ("VTest", "YTest", "testL")):
            rows = {v: parts[v].shape[0] for v in (a, b, c)}
            if len(set(rows.values())) != 1:
                raise DataError(
                    f"{path}: row count mismatch between "
                    + ", ".join(f"{v} ({r} rows)" for v, r in rows.items())
                    + "; the variables must pair row by row"
                )
        n_db = int(parts["VDatabase"].shape[0])
        return RawData(
            image=np.concatenate([parts.pop("VDatabase"), parts.pop("VTest")]),
            text=np.concatenate([parts.pop("YDatabase"), parts.pop("YTest")]),
            labels=np.concatenate([parts.pop("databaseL"), parts.pop("testL")]),
            files={self.files[0]: str(path)},
            version="iapr-tc12-rand",
            sources={
                "image": f"{path}:VDatabase+VTest",
                "text": f"{path}:YDatabase+YTest",
                "labels": f"{path}:databaseL+testL",
            },
            meta={"rows_database_part": n_db},
        )


@DATASETS.register("coco")
class COCO(DatasetLoader):
    """MS-COCO (122,218 pairs): 4096-d VGG-19 fc7, 300-d Doc2Vec text (can be negative), 80 classes.

    File under ``<data-root>/coco/``: ``MSCOCO_deep_doc2vec_data.h5py`` (plain HDF5) with
    ``train_imgs_deep``, ``train_imgs_labels``, ``train_text``, ``test_imgs_deep``,
    ``test_imgs_labels``, ``test_text``; rows are [train; test] as in the NRCH code.
    ``nrch`` split: query 5,000, train 10,000, database 117,218.
    """

    name = "coco"
    description = "MS-COCO: 122,218 pairs, 4096-d VGG-19 fc7 / 300-d Doc2Vec text, 80 classes (multi-label)"
    files = ("MSCOCO_deep_doc2vec_data.h5py",)
    download_hint = _UCCH_HINT
    split_sizes = (5000, 10000)
    image_dim = 4096
    text_dim = 300
    num_classes = 80
    image_nonnegative = True

    def read(self, directory: Path, options: DatasetOptions) -> RawData:
        path = require_files(self, directory)[self.files[0]]
        out = {}
        for key, var, kind in (
            ("image", "imgs_deep", "features"),
            ("text", "text", "features"),
            ("labels", "imgs_labels", "labels"),
        ):
            tr = read_matrix(path, f"train_{var}", kind=kind)
            te = read_matrix(path, f"test_{var}", kind=kind)
            if tr.shape[1] != te.shape[1]:
                raise DataError(f"{path}: train_{var} has {tr.shape[1]} columns but test_{var} has {te.shape[1]}")
            out[key] = np.concatenate([tr, te])
            out[key + "_train_rows"] = tr.shape[0]
        rows = {k: out[k + "_train_rows"] for k in ("image", "text", "labels")}
        if len(set(rows.values())) != 1:
            raise DataError(
                f"{path}: row count mismatch between train_imgs_deep ({rows['image']} rows), "
                f"train_text ({rows['text']}) and train_imgs_labels ({rows['labels']})"
            )
        return RawData(
            image=out["image"],
            text=out["text"],
            labels=out["labels"],
            files={self.files[0]: str(path)},
            version="MSCOCO_deep_doc2vec",
            sources={
                "image": f"{path}:train_imgs_deep+test_imgs_deep",
                "text": f"{path}:train_text+test_text",
                "labels": f"{path}:train_imgs_labels+test_imgs_labels",
            },
            meta={"rows_train_part": int(rows["image"])},
        )
