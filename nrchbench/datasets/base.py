"""The data model shared by every dataset loader (PROTOCOL.md §1).

A loader reads published files and returns :class:`RawData` (arrays plus the splits the
format itself defines, if any); :func:`nrchbench.datasets.load_dataset` validates it,
applies a split rule and returns a :class:`CrossModalDataset`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

SPLIT_NAMES = ("query", "train", "database", "val")


def checksum_array(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (short hex, 16 chars)."""
    h = hashlib.sha256()
    a = np.ascontiguousarray(a)
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def checksum_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (full hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class RawData:
    """What a loader reads from disk, before validation and splitting.

    Attributes:
        image: N×d1 image features (float32).
        text: N×d2 text features (float32).
        labels: N×C clean labels in {0,1} (uint8).
        class_names: C names, or None when the format does not carry them.
        splits: splits defined by the format itself (e.g. Wikipedia's official split), as
            index arrays over the N rows; empty when the format defines none.
        files: source files read, name → path (checksummed into the metadata).
        version: a short string naming the variant of the published files.
        sources: where each of ``image``, ``text``, ``labels`` came from (e.g.
            ``"mirflickr25k-lall.mat:LAll"``), for error messages.
        meta: loader-specific metadata merged into :attr:`CrossModalDataset.meta`
            (JSON-serialisable).
    """

    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    class_names: list[str] | None = None
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    version: str = "1"
    sources: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CrossModalDataset:
    """Paired image/text features with clean labels and split index arrays.

    Attributes:
        name: canonical registry name.
        image: N×d1 float32.
        text: N×d2 float32.
        labels: N×C uint8 in {0,1} (clean).
        class_names: C names or None.
        splits: ``query``, ``train``, ``database`` and optionally ``val`` (int64 indices).
        meta: dataset name and version, split rule and seed, ``source_checksums``
            (file → sha256), ``split_checksum`` and per-split checksums, counts of rows
            without labels, etc. JSON-serialisable.
    """

    name: str
    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    splits: dict[str, np.ndarray]
    class_names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.labels.shape[1])

    @property
    def image_dim(self) -> int:
        return int(self.image.shape[1])

    @property
    def text_dim(self) -> int:
        return int(self.text.shape[1])

    @property
    def multi_label(self) -> bool:
        return bool((self.labels.sum(1) > 1).any())

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, text, labels) rows of one split."""
        idx = self.splits[split]
        return self.image[idx], self.text[idx], self.labels[idx]


class DatasetLoader:
    """Base class of dataset plugins.

    Subclasses set the class attributes and implement :meth:`read`. Register with
    ``@DATASETS.register("name")`` and declare the class in the ``nrchbench.datasets``
    entry-point group.

    Attributes:
        name: registry key, also the sub-directory of the data root.
        description: one line for ``nrchbench list datasets``.
        files: file names expected under ``<data-root>/<name>/`` (for error messages).
        download_hint: where public copies are distributed (for error messages).
        split_sizes: (query, train) sizes for the ``nrch`` and ``random`` split rules.
        default_split: split rule used when the user gives none.
        image_dim / text_dim / num_classes: declared dimensionalities (None = any).
        needs_files: False for generated datasets (``synthetic``).
        image_nonnegative: True when the image features should be ≥ 0 (post-ReLU VGG fc7);
            a violation is logged and recorded in the metadata, not an error.

    :meth:`read` receives the loader's options as keyword arguments (declare each one in its
    signature: unknown options are rejected with the list of accepted ones) and may set
    instance attributes that depend on them (e.g. ``split_sizes`` of ``synthetic``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    download_hint: ClassVar[str] = ""
    split_sizes: ClassVar[tuple[int, int] | None] = None
    default_split: ClassVar[str] = "nrch"
    image_dim: ClassVar[int | None] = None
    text_dim: ClassVar[int | None] = None
    num_classes: ClassVar[int | None] = None
    needs_files: ClassVar[bool] = True
    image_nonnegative: ClassVar[bool] = False

    def read(self, directory: Path, **options: Any) -> RawData:  # pragma: no cover - abstract
        raise NotImplementedError
