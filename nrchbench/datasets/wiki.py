"""The Wikipedia cross-modal dataset (Rasiwasia et al., ACM MM 2010), with its official split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrchbench.datasets.base import DatasetLoader, DatasetOptions, RawData
from nrchbench.datasets.io import read_matrix, require_files
from nrchbench.errors import DataError
from nrchbench.registry import DATASETS


def _read_classes(path: Path, num_classes: int) -> np.ndarray:
    """Class column (1-based) of a ``text_id<TAB>image_id<TAB>class`` list → 0-based ints."""
    classes = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            c = int(fields[-1])
        except (ValueError, IndexError):
            raise DataError(f"{path}:{lineno}: expected 'text_id<TAB>image_id<TAB>class', got {line!r}") from None
        if not 1 <= c <= num_classes:
            raise DataError(f"{path}:{lineno}: class {c} outside 1..{num_classes}")
        classes.append(c - 1)
    return np.asarray(classes, dtype=np.int64)


@DATASETS.register("wiki")
class Wiki(DatasetLoader):
    """Wikipedia (2,866 pairs): 128-d SIFT BoVW image histograms, 10-d LDA text topics, 10 classes, single-label.

    Files under ``<data-root>/wiki/``: ``raw_features.mat`` (``I_tr``, ``I_te``, ``T_tr``,
    ``T_te``), ``trainset_txt_img_cat.list`` and ``testset_txt_img_cat.list`` (line i pairs
    with row i; class 1..10 → one-hot) and ``categories.list`` (class names). Rows are stored
    as [train (2,173); test (693)]. Official split (the default): query = the 693 test pairs,
    train = database = the 2,173 training pairs. The ``nrch``/``random`` rules use the same
    sizes (query 693, train 2,173).
    """

    name = "wiki"
    description = "Wikipedia: 2,866 pairs, 128-d SIFT BoVW / 10-d LDA text, 10 classes (single-label), official split"
    files = ("raw_features.mat", "trainset_txt_img_cat.list", "testset_txt_img_cat.list", "categories.list")
    download_hint = "http://www.svcl.ucsd.edu/projects/crossmodal/ (wiki_top10cats)"
    split_sizes = (693, 2173)
    default_split = "official"
    image_dim = 128
    text_dim = 10
    num_classes = 10

    def read(self, directory: Path, options: DatasetOptions) -> RawData:
        paths = require_files(self, directory)
        mat = paths["raw_features.mat"]
        names = [ln.strip() for ln in paths["categories.list"].read_text().splitlines() if ln.strip()]
        if len(names) != self.num_classes:
            raise DataError(f"{paths['categories.list']}: {len(names)} class names, expected {self.num_classes}")
        parts = {}
        for part, lst in (("tr", "trainset_txt_img_cat.list"), ("te", "testset_txt_img_cat.list")):
            img = read_matrix(mat, f"I_{part}")
            txt = read_matrix(mat, f"T_{part}")
            cls = _read_classes(paths[lst], self.num_classes)
            if not img.shape[0] == txt.shape[0] == cls.shape[0]:
                raise DataError(
                    f"row count mismatch: {mat}:I_{part} has {img.shape[0]} rows, {mat}:T_{part} "
                    f"{txt.shape[0]}, {paths[lst]} {cls.shape[0]} lines; they must pair row by row"
                )
            lab = np.zeros((cls.size, self.num_classes), dtype=np.uint8)
            lab[np.arange(cls.size), cls] = 1
            parts[part] = (img, txt, lab)
        n_tr = parts["tr"][0].shape[0]
        n = n_tr + parts["te"][0].shape[0]
        train = np.arange(n_tr, dtype=np.int64)
        return RawData(
            image=np.concatenate([parts["tr"][0], parts["te"][0]]),
            text=np.concatenate([parts["tr"][1], parts["te"][1]]),
            labels=np.concatenate([parts["tr"][2], parts["te"][2]]),
            class_names=names,
            splits={"query": np.arange(n_tr, n, dtype=np.int64), "train": train, "database": train.copy()},
            files={k: str(v) for k, v in paths.items()},
            version="wiki_top10cats",
            sources={
                "image": f"{mat}:I_tr+I_te",
                "text": f"{mat}:T_tr+T_te",
                "labels": "trainset_txt_img_cat.list+testset_txt_img_cat.list",
            },
        )
