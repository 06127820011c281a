"""The data model shared by every dataset loader (PROTOCOL.md §1).

A loader reads published files and returns :class:`RawData` (arrays plus the splits the
format itself defines, if any); :func:`nrchbench.datasets.load_dataset` validates it,
applies a split rule and returns a :class:`CrossModalDataset`.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from nrchbench.errors import ConfigError
from nrchbench.params import Params

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


class DatasetOptions(Params):
    """Options of a dataset loader (DESIGN §1): the common ones below, which
    :func:`~nrchbench.datasets.load_dataset` handles itself, plus each loader's own.

    A loader declares its options by subclassing this model as its ``Options`` class
    attribute; :meth:`check` validates and converts them (CLI strings → declared types) with
    one-line errors, and :meth:`check_together` holds constraints between options.
    """

    kind: ClassVar[str] = "dataset"
    #: Options of every loader, consumed by load_dataset (never passed to ``read``).
    COMMON: ClassVar[tuple[str, ...]] = ("check_dims", "query_size", "train_size")

    check_dims: bool = Field(True, description="check the declared dimensionalities (False: load any)")
    query_size: int | None = Field(
        None, ge=1, description="query rows of the nrch/random rules (default: the loader's)"
    )
    train_size: int | None = Field(
        None, ge=1, description="train rows of the nrch/random rules (default: the loader's)"
    )

    @classmethod
    def check(cls, values: Mapping[str, Any] | None = None, *, owner: str = "") -> DatasetOptions:
        """Validate and convert; unknown names get the closest accepted ones and the full list.

        Raises:
            ConfigError: one line naming the option, what was expected and what was given.
        """
        values = dict(values or {})
        owner = owner or "dataset"
        accepted = list(cls.model_fields)
        for key in values:
            if key not in cls.model_fields:
                close = difflib.get_close_matches(str(key), accepted, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"{owner} does not accept option {key!r}{hint}; accepted: {', '.join(accepted)}")
        options = super().check(values, owner=owner)
        assert isinstance(options, DatasetOptions)
        options.check_together(owner)
        return options

    def check_together(self, owner: str) -> None:
        """Constraints between options (override; raise :class:`ConfigError`)."""


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
        query_in_database: True only for a format whose query rows may also be database
            rows (no built-in one: every built-in split keeps them apart); overlapping
            query and database splits are refused otherwise, as query ∩ train always is.
        Options: the loader's options, a :class:`DatasetOptions` subclass (checked when a
            run spec is resolved, so bad values never reach a run).

    :meth:`read` receives the checked options and may set instance attributes that depend
    on them or on the files (e.g. ``split_sizes`` of ``synthetic``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    download_hint: ClassVar[str] = ""
    split_sizes: ClassVar[tuple[int, int] | None] = None
    default_split: ClassVar[str] = "contiguous"
    image_dim: ClassVar[int | None] = None
    text_dim: ClassVar[int | None] = None
    num_classes: ClassVar[int | None] = None
    needs_files: ClassVar[bool] = True
    image_nonnegative: ClassVar[bool] = False
    query_in_database: ClassVar[bool] = False
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions

    def read(self, directory: Path, options: DatasetOptions) -> RawData:  # pragma: no cover - abstract
        """Read the files under ``directory`` (``options`` is an instance of :attr:`Options`)."""
        raise NotImplementedError
