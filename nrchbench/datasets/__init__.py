"""Datasets: loaders for the published files, split rules, validation and summaries.

>>> from nrchbench.datasets import load_dataset, dataset_info
>>> ds = load_dataset("synthetic", n=600)          # the embedded default, no files
>>> ds = load_dataset("wiki", data_root="../shared/data")   # official split
>>> ds = load_dataset("flickr", split="random", split_seed=1, val_size=500)
>>> dataset_info(ds)["chance_map"]

Files are read from ``<data-root>/<dataset>/`` where the data root is the ``data_root``
argument, else ``$NRCHBENCH_DATA``, else ``./datasets``. A ``name_or_dir`` that is an
existing directory (and not a registered dataset name) loads with the ``generic`` loader.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nrchbench.datasets.base import (
    SPLIT_NAMES,
    CrossModalDataset,
    DatasetLoader,
    DatasetOptions,
    RawData,
    checksum_file,
)
from nrchbench.datasets.io import check_finite, missing_files_error, to_binary_labels
from nrchbench.datasets.splits import RULES, canonical_split, make_splits, split_checksums
from nrchbench.datasets.transforms import FEATURE_TRANSFORMS, apply_feature_transform
from nrchbench.errors import ConfigError, DataError, RegistryError
from nrchbench.jsonutil import to_jsonable
from nrchbench.registry import DATASETS
from nrchbench.utils import resolve_data_root

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "FEATURE_TRANSFORMS",
    "RULES",
    "CrossModalDataset",
    "DatasetLoader",
    "DatasetOptions",
    "RawData",
    "apply_feature_transform",
    "chance_map",
    "check_dataset_options",
    "dataset_info",
    "get_loader",
    "load_dataset",
]


def get_loader(name: str) -> DatasetLoader:
    """A fresh loader instance for a registered dataset name or alias."""
    cls = DATASETS.get(name)
    return cls() if isinstance(cls, type) else cls


def _is_directory_arg(name_or_dir: str | os.PathLike) -> bool:
    if isinstance(name_or_dir, os.PathLike):
        return True
    s = str(name_or_dir)
    if not Path(s).expanduser().is_dir():
        return False
    # A bare registered name ("wiki") means the dataset even if ./wiki exists.
    if os.sep not in s and "/" not in s:
        try:
            DATASETS.canonical(s)
        except RegistryError:
            return True
        return False
    return True


@lru_cache(maxsize=256)
def _cached_file_checksum(path: str, size: int, mtime_ns: int) -> str:
    return checksum_file(path)


def _source_checksums(files: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, path in files.items():
        st = os.stat(path)
        out[key] = _cached_file_checksum(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    return out


def _loader_and_directory(
    name_or_dir: str | os.PathLike, data_root: str | os.PathLike | None
) -> tuple[DatasetLoader, Path]:
    if _is_directory_arg(name_or_dir):
        return get_loader("generic"), Path(name_or_dir).expanduser()
    loader = get_loader(str(name_or_dir))
    return loader, resolve_data_root(data_root) / loader.name


def _stored_value(given: Any, checked: Any) -> Any:
    """What a spec stores for one option: the value as given when it already equals the
    checked one (``1`` for a float option, ``600.0`` for an int one: what records have
    always stored, so no run id changes), else the converted value (``"600"`` → 600)."""
    given = to_jsonable(given, nonfinite="raise")
    checked = to_jsonable(checked, nonfinite="raise")
    if given == checked and isinstance(given, bool) == isinstance(checked, bool):
        return given
    return checked


def _checked_options(loader: DatasetLoader, options: dict[str, Any]) -> tuple[DatasetOptions, dict[str, Any]]:
    """(the loader's checked ``Options``, the given options as a spec stores them)."""
    owner = f"dataset {loader.name!r}"
    checked = loader.Options.check(options, owner=owner)
    stored = {}
    for key, value in options.items():
        try:
            stored[key] = _stored_value(value, getattr(checked, key))
        except ValueError:
            raise ConfigError(f"{owner} option {key!r}: expected a finite number, got {value!r}") from None
    return checked, stored


def check_dataset_options(name_or_dir: str | os.PathLike, options: dict[str, Any] | None) -> dict[str, Any]:
    """Validate and convert a dataset's options, as a run spec stores them.

    The options are checked by the loader's ``Options`` model (the common ``check_dims``,
    ``query_size``, ``train_size`` and the loader's own): unknown names, wrong types,
    out-of-range values and inconsistent combinations are refused. No file is read.

    Args:
        name_or_dir: a registered dataset name or alias, or a generic-format directory.
        options: option name → value (CLI strings or JSON values).

    Returns:
        The given options only (no defaults added), in the given order, as plain JSON:
        a value that is not of its declared type is converted (``"600"`` → 600,
        ``"false"`` → False); a value equal to its converted form is kept as given (``1``
        for a float option stays ``1``), so the dict is the one records have always stored
        and no existing run id changes.

    Raises:
        ConfigError: one line naming the dataset and the option (did-you-mean for unknown
            names, with the accepted list).
        RegistryError: unknown dataset name.
    """
    loader, _ = _loader_and_directory(name_or_dir, None)
    return _checked_options(loader, dict(options or {}))[1]


def validate(raw: RawData, loader: DatasetLoader, *, check_dims: bool = True) -> RawData:
    """Check what a loader read (PROTOCOL §1) and normalise dtypes; returns ``raw``.

    Raises:
        DataError: row-count mismatch, non-binary labels, NaN/Inf, wrong dimensionality.
    """
    src = {k: raw.sources.get(k, f"{loader.name} {k}") for k in ("image", "text", "labels")}
    for key in ("image", "text", "labels"):
        arr = getattr(raw, key)
        if np.ndim(arr) != 2:
            raise DataError(f"{src[key]}: expected a 2-D matrix, got shape {np.shape(arr)}")
    rows = {k: int(getattr(raw, k).shape[0]) for k in ("image", "text", "labels")}
    if not any(rows.values()):
        raise DataError(
            f"{src['image']}: the dataset has no rows (image, text and labels are empty); "
            "nothing to split into query, train and database"
        )
    if len(set(rows.values())) != 1:
        raise DataError(
            "row count mismatch between modalities: "
            + ", ".join(f"{src[k]} has {rows[k]} rows" for k in rows)
            + "; all three must pair row by row (wrong or truncated file?)"
        )
    if raw.image.dtype != np.float32:
        raw.image = np.ascontiguousarray(raw.image, dtype=np.float32)
    if raw.text.dtype != np.float32:
        raw.text = np.ascontiguousarray(raw.text, dtype=np.float32)
    if raw.labels.dtype != np.uint8 or (raw.labels.size and raw.labels.max() > 1):
        raw.labels = to_binary_labels(raw.labels, src["labels"])
    check_finite(raw.image, src["image"])
    check_finite(raw.text, src["text"])
    if check_dims:
        for key, want in (("image", loader.image_dim), ("text", loader.text_dim), ("labels", loader.num_classes)):
            got = int(getattr(raw, key).shape[1])
            if want is not None and got != want:
                what = "classes" if key == "labels" else "dimensions"
                raise DataError(
                    f"{src[key]}: {got} {what}, but dataset {loader.name!r} has {want} "
                    "(wrong file or feature extractor?; pass check_dims=False to load it anyway)"
                )
    if raw.class_names is not None and len(raw.class_names) != raw.labels.shape[1]:
        raise DataError(f"{loader.name}: {len(raw.class_names)} class names for {raw.labels.shape[1]} label columns")
    return raw


def chance_map(query_labels: np.ndarray, db_labels: np.ndarray, block: int = 4096) -> tuple[float, int]:
    """Expected mAP of a random ranking: mean fraction of relevant database items per query.

    Relevance is "shares ≥ 1 label". Queries with no relevant item are left out of the mean,
    as they are left out of mAP; their count is returned too.

    Returns:
        (chance, number of queries without any relevant database item)
    """
    if query_labels.shape[0] == 0 or db_labels.shape[0] == 0:
        return float("nan"), int(query_labels.shape[0])
    # Database label rows repeat a lot: work on the distinct rows weighted by their counts.
    uniq, counts = np.unique(np.asarray(db_labels, dtype=np.uint8), axis=0, return_counts=True)
    u = uniq.astype(np.float32).T
    w = counts.astype(np.float64)
    fracs = np.empty(query_labels.shape[0], dtype=np.float64)
    for r0 in range(0, query_labels.shape[0], block):
        q = np.asarray(query_labels[r0 : r0 + block], dtype=np.float32)
        rel = (q @ u) > 0
        fracs[r0 : r0 + block] = rel.astype(np.float64) @ w
    fracs /= float(db_labels.shape[0])
    has = fracs > 0
    return (float(fracs[has].mean()) if has.any() else 0.0), int((~has).sum())


def load_dataset(
    name_or_dir: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    split: str | None = None,
    split_seed: int = 0,
    val_size: int | float = 0,
    **options: Any,
) -> CrossModalDataset:
    """Load, validate and split a dataset.

    Args:
        name_or_dir: a registered name or alias (``nrchbench list datasets``), or a
            directory in the ``generic`` format.
        data_root: directory holding ``<dataset>/`` folders (else ``$NRCHBENCH_DATA``, else
            ``./datasets``).
        split: ``nrch``, ``random`` or ``official``; None = the loader's ``default_split``.
        split_seed: seed of the ``random`` rule and of the ``val`` draw.
        val_size: rows (or fraction of the database) carved from the database into ``val``.
        **options: loader options (see each loader's docstring), plus ``check_dims``
            (default True: check the declared dimensionalities) and ``query_size`` /
            ``train_size`` (override the sizes used by the ``nrch`` and ``random`` rules).

    Returns:
        The dataset with ``query``/``train``/``database`` (and ``val``) index arrays and
        metadata (PROTOCOL §1, ARCHITECTURE "Datasets").

    Raises:
        RegistryError: unknown dataset name.
        DataError: missing or malformed files.
        ConfigError: unknown split rule or option.
    """
    loader, directory = _loader_and_directory(name_or_dir, data_root)
    opts, stored = _checked_options(loader, dict(options))
    if loader.needs_files and not directory.is_dir():
        raise missing_files_error(loader, directory, list(loader.files) or ["the dataset directory"])
    raw = loader.read(directory, opts)
    validate(raw, loader, check_dims=opts.check_dims)

    rule = canonical_split(split or loader.default_split)
    sizes = loader.split_sizes
    query_size, train_size = opts.query_size, opts.train_size
    if query_size is not None or train_size is not None:
        if sizes is None and (query_size is None or train_size is None):
            raise ConfigError(f"dataset {loader.name!r}: give both query_size and train_size")
        sizes = (
            int(query_size if query_size is not None else sizes[0]),  # type: ignore[index]
            int(train_size if train_size is not None else sizes[1]),  # type: ignore[index]
        )
    n = int(raw.labels.shape[0])
    splits = make_splits(
        n,
        rule,
        sizes=sizes,
        seed=int(split_seed),
        stored=raw.splits,
        val_size=val_size,
        dataset=loader.name,
        sources={k: v for k, v in raw.sources.items() if k in SPLIT_NAMES},
        query_in_database=loader.query_in_database,
    )
    total_checksum, per_split = split_checksums(splits)

    rows_without = int((raw.labels.sum(axis=1) == 0).sum())
    if rows_without:
        log.warning("%s: %d of %d rows have no label (kept; counted in meta)", loader.name, rows_without, n)
    meta: dict[str, Any] = {
        "dataset": loader.name,
        "version": raw.version,
        "split_rule": rule,
        "split_seed": int(split_seed),
        "val_size": val_size,
        "split_sizes_rule": list(sizes) if sizes is not None and rule != "official" else None,
        "sizes": {k: int(splits[k].size) for k in SPLIT_NAMES if k in splits},
        "n": n,
        "source_checksums": _source_checksums(raw.files),
        "split_checksum": total_checksum,
        "split_checksums": per_split,
        "rows_without_labels": rows_without,
        "rows_without_labels_by_split": {k: int((raw.labels[v].sum(axis=1) == 0).sum()) for k, v in splits.items()},
        "options": {k: v for k, v in sorted(stored.items()) if k not in DatasetOptions.COMMON},
        "check_dims": opts.check_dims,
    }
    if loader.image_nonnegative:
        nonneg = bool(raw.image.min(initial=0.0) >= 0)
        meta["image_nonnegative"] = nonneg
        if not nonneg:
            log.warning("%s: image features have negative entries (expected post-ReLU VGG fc7)", loader.name)
    if loader.name == "generic":
        meta["path"] = str(directory.resolve())
    meta.update(to_jsonable(raw.meta))
    return CrossModalDataset(
        name=loader.name,
        image=raw.image,
        text=raw.text,
        labels=raw.labels,
        splits=splits,
        class_names=list(raw.class_names) if raw.class_names is not None else None,
        meta=meta,
    )


def dataset_info(ds: CrossModalDataset) -> dict[str, Any]:
    """Summary of a loaded dataset (for ``nrchbench data info`` and result records).

    Keys: ``dataset``, ``version``, ``n``, ``image_dim``, ``text_dim``, ``num_classes``,
    ``multi_label``, ``label_cardinality_mean``/``_min``/``_max``, ``rows_without_labels``,
    ``split_rule``, ``split_seed``, ``sizes`` (per split), ``split_checksum``,
    ``chance_map`` (expected mAP of a random ranking, query vs database, relevance = share
    ≥ 1 label; the same for both directions since both use the same labels) and
    ``num_queries_no_relevant``. All values are JSON numbers, strings, bools or dicts.
    """
    card = ds.labels.sum(axis=1, dtype=np.int64)
    chance, no_rel = chance_map(ds.labels[ds.splits["query"]], ds.labels[ds.splits["database"]])
    return {
        "dataset": ds.name,
        "version": ds.meta.get("version"),
        "n": ds.n,
        "image_dim": ds.image_dim,
        "text_dim": ds.text_dim,
        "num_classes": ds.num_classes,
        "multi_label": ds.multi_label,
        "label_cardinality_mean": float(card.mean()) if card.size else 0.0,
        "label_cardinality_min": int(card.min()) if card.size else 0,
        "label_cardinality_max": int(card.max()) if card.size else 0,
        "rows_without_labels": int((card == 0).sum()),
        "split_rule": ds.meta.get("split_rule"),
        "split_seed": ds.meta.get("split_seed"),
        "sizes": {k: int(v.size) for k, v in ds.splits.items()},
        "split_checksum": ds.meta.get("split_checksum"),
        "chance_map": chance,
        "num_queries_no_relevant": no_rel,
    }
