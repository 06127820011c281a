"""Inputs of feature extraction: the image list, the captions/tags per image, a stored split.

Labels are read by :mod:`nrchbench.features.labels`. Nothing here needs the optional extra.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nrchbench.datasets.splits import make_splits as split_rows
from nrchbench.errors import ConfigError, DataError
from nrchbench.features.labels import check_coverage, id_index, lookup_id

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def _natural_key(name: str) -> list[Any]:
    # im2.jpg before im10.jpg: the numbering of MIRFlickr/COCO file names is kept.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@dataclass
class ImageList:
    """Image files in dataset order.

    Attributes:
        paths: absolute paths, in row order.
        ids: file stems (the ids used by label/text files keyed by id).
        names: the names as listed (relative to the directory or the list file's directory).
        source: the ``--images`` argument.
    """

    paths: list[Path]
    ids: list[str]
    names: list[str]
    source: str

    def checksum(self) -> str:
        """SHA-256 over the sorted (name, size) pairs: identifies the image set cheaply."""
        h = hashlib.sha256()
        for name, p in sorted(zip(self.names, self.paths)):
            try:
                size = p.stat().st_size
            except OSError:
                raise DataError(f"--images: listed image {p} does not exist") from None
            h.update(f"{name}\t{size}\n".encode())
        return h.hexdigest()


def list_images(images: str | os.PathLike) -> ImageList:
    """Images of a directory (recursively, natural sort of relative paths) or of a list file.

    A list file holds one image path per line, relative to the list file's directory
    (absolute paths allowed); blank lines and lines starting with ``#`` are skipped.

    Raises:
        DataError: no images, or a listed file is missing.
    """
    src = Path(images).expanduser()
    if src.is_dir():
        rel = [
            p.relative_to(src).as_posix()
            for p in src.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        ]
        rel.sort(key=_natural_key)
        paths = [src / r for r in rel]
        if not paths:
            raise DataError(f"--images {src}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this directory")
    elif src.is_file():
        rel = []
        with open(src, encoding="utf-8") as f:
            for line in f:
                s = line.strip()
                if s and not s.startswith("#"):
                    rel.append(s)
        paths = [(src.parent / r) if not Path(r).is_absolute() else Path(r) for r in rel]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(
                f"--images {src}: {len(missing)} listed file(s) do not exist, e.g. {missing[0]} "
                "(paths are relative to the list file's directory)"
            )
        if not paths:
            raise DataError(f"--images {src}: the list file names no images")
    else:
        raise DataError(f"--images {src}: no such directory or list file")
    return ImageList(paths=paths, ids=[Path(r).stem for r in rel], names=rel, source=str(src))


def read_texts(
    path: str | os.PathLike, ids: list[str], *, ignore_unknown_ids: bool = False
) -> tuple[list[list[str]], str]:
    """Captions/tags per image.

    Either one line per image in image order, or TSV rows ``image_id<TAB>text`` (chosen for
    ``.tsv`` files, or when every line has a tab and the first field is an image id). In
    TSV, several rows for one id are several captions: their embeddings are averaged.

    Args:
        path: the text file.
        ids: image ids (file stems) in image order.
        ignore_unknown_ids: in TSV, skip rows whose id is not among the images.

    Returns:
        ``(texts, mode)``: a list of ≥1 strings per image, and ``"lines"`` or ``"tsv"``.

    Raises:
        DataError: wrong number of lines, images without text, or unknown ids.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"--texts {path}: no such file")
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    nonempty = [ln for ln in lines if ln.strip()]
    index = id_index(ids) if ids else {}
    is_tsv = path.suffix.lower() == ".tsv"
    if not is_tsv and nonempty and all("\t" in ln for ln in nonempty):
        first = nonempty[0].split("\t", 1)[0].strip()
        is_tsv = lookup_id(first, index) is not None or first.lower() in ("image_id", "id", "image")
    if not is_tsv:
        if len(lines) != len(ids):
            raise DataError(
                f"--texts {path}: {len(lines)} lines but {len(ids)} images; give one line per image in image "
                "order, or TSV rows 'image_id<TAB>text'"
            )
        return [[ln] for ln in lines], "lines"

    texts: list[list[str]] = [[] for _ in ids]
    unknown: list[str] = []
    for k, ln in enumerate(nonempty):
        key, _, text = ln.partition("\t")
        key = key.strip()
        if k == 0 and key.lower() in ("image_id", "id", "image") and lookup_id(key, index) is None:
            continue  # header
        i = lookup_id(key, index)
        if i is None:
            unknown.append(key)
        else:
            texts[i].append(text.strip())
    seen = np.array([bool(t) for t in texts], dtype=bool)
    check_coverage("--texts", path, ids, seen, unknown, ignore_unknown_ids, what="text", empty_hint="")
    return texts, "tsv"


def make_splits(n: int, query: int, train: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random split: query = Q rows, train = T of the rest, database = all non-query rows.

    The ``random`` rule of :func:`nrchbench.datasets.splits.make_splits` (so loading the
    stored split and asking for that rule give the same rows), with sorted index arrays
    (int64). Train ⊂ database, as in the ``nrch`` and ``random`` rules.
    """
    if query <= 0 or train <= 0 or query + train > n:
        raise ConfigError(f"--query {query} --train {train}: need positive sizes with query + train <= {n} images")
    splits = split_rows(n, "random", sizes=(query, train), seed=seed, dataset="features extract")
    return {k: np.sort(v).astype(np.int64) for k, v in splits.items()}
