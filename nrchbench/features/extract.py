"""Raw images and texts → image/text features with ``transformers`` models, written in the
generic dataset format (``data.h5`` + ``manifest.json``) that ``--dataset DIR`` loads.

Design:

* **Towers.** A CLIP-family model (anything with ``get_image_features`` and
  ``get_text_features``, e.g. CLIP, SigLIP) gives both towers (its projected embeddings).
  With ``text_model``, the image tower comes from ``model`` (e.g. a ViT: ``pooler_output``
  when the model has one, else the CLS token) and the text tower from ``text_model``
  (e.g. BERT: mean over the attention mask). The manifest records each tower's pooling.
* **Bounded memory.** Only image *paths* are held; images are decoded per batch (in
  threads, one batch ahead of the model), and features are written per chunk.
* **Resumable.** Rows are processed in chunks of ``chunk_size``, each written and
  recorded before the next (:mod:`nrchbench.features.writer`); a rerun with the same
  inputs and model continues after the last recorded chunk. When all chunks are done the
  file is renamed to ``data.h5`` and ``manifest.json`` is written through the generic
  format's one owner (:mod:`nrchbench.datasets.generic_format`).
* **Offline.** Models load with ``local_files_only=True`` unless ``allow_download``.

``transformers`` and Pillow are the optional extra ``nrchbench[features]`` and are
imported lazily.

Modules: :mod:`~nrchbench.features.inputs` (images, texts, split),
:mod:`~nrchbench.features.labels`, :mod:`~nrchbench.features.models` (model resolution),
:mod:`~nrchbench.features.encoders` (towers), :mod:`~nrchbench.features.writer`
(resumable writer), and this module, which runs them in order.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nrchbench.datasets.base import checksum_file
from nrchbench.datasets.generic_format import DATA_H5, read_manifest, write_manifest
from nrchbench.errors import ConfigError
from nrchbench.features.encoders import load_towers, torch_dtype
from nrchbench.features.inputs import list_images, make_splits, read_texts
from nrchbench.features.labels import read_labels
from nrchbench.features.models import require_extra, resolve_model
from nrchbench.features.writer import (
    PARTIAL_FILE,
    STATE_VERSION,
    ProgressFn,
    encode_chunks,
    init_partial,
    resume_point,
    write_state,
)

log = logging.getLogger(__name__)


@dataclass
class ExtractResult:
    """What :func:`extract_features` produced."""

    out: Path
    n: int
    image_dim: int
    text_dim: int
    num_classes: int
    rows_computed: int
    resumed_from: int
    seconds: float
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.rows_computed / self.seconds if self.seconds > 0 else float("nan")


def extract_features(
    images: str | os.PathLike,
    texts: str | os.PathLike,
    labels: str | os.PathLike,
    model: str,
    out: str | os.PathLike,
    *,
    text_model: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    dtype: str | None = None,
    chunk_size: int = 4096,
    split_seed: int | None = None,
    query: int | None = None,
    train: int | None = None,
    image_pooling: str = "auto",
    text_pooling: str = "auto",
    ignore_unknown_ids: bool = False,
    allow_download: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> ExtractResult:
    """Encode paired images and texts and write a generic-format dataset directory.

    Args:
        images: a directory of images (recursive, natural sort) or a list file (one path
            per line, relative to the list file's directory).
        texts: one line per image in image order, or TSV ``image_id<TAB>text`` rows
            (several rows per id are averaged).
        labels: label file, see :func:`nrchbench.features.labels.read_labels`.
        model: local directory or Hugging Face id (cached) of the image model; a CLIP-family
            model also gives the text tower.
        out: output directory (``data.h5``, ``manifest.json``, ``extract_state.json``).
        text_model: separate text model (e.g. BERT); its features are mean-pooled by default.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda[:i]``.
        batch_size: images per model call.
        dtype: compute dtype ``float16``/``bfloat16``/``float32``; default float16 on CUDA,
            float32 on CPU. Features are stored as float32.
        chunk_size: rows per resumable chunk.
        split_seed / query / train: when ``query`` and ``train`` are given, store seeded
            random ``query``/``train``/``database`` index arrays (seed default 0).
        image_pooling / text_pooling: pooling of non-CLIP towers (``auto``: image →
            ``pooler_output`` if present else CLS; text → mean over the attention mask).
        ignore_unknown_ids: skip text/label rows of ids that are not among the images
            (e.g. files covering a larger collection) instead of raising.
        allow_download: let transformers download missing models (default: offline only).
        overwrite: discard a previous (partial or complete) extraction in ``out``.
        workers: threads decoding and preprocessing images (default: min(8, CPU count)).
        progress: called with ``(done_rows, total_rows, stage)``.

    Returns:
        An :class:`ExtractResult`.

    Raises:
        NrchbenchError: bad inputs, a model that cannot be loaded offline, or a previous
            extraction in ``out`` made from other inputs (use ``overwrite``).
    """
    require_extra()
    import torch

    from nrchbench import __version__
    from nrchbench.utils import resolve_device

    t_start = time.perf_counter()
    out = Path(out).expanduser()
    if batch_size <= 0 or chunk_size <= 0:
        raise ConfigError("--batch-size and --chunk-size must be positive")
    if (query is None) != (train is None):
        raise ConfigError("--query and --train go together: give both (or neither to use the loader's default split)")

    # Inputs first: their errors come before any model is loaded.
    imgs = list_images(images)
    n = len(imgs.paths)
    captions, text_mode = read_texts(texts, imgs.ids, ignore_unknown_ids=ignore_unknown_ids)
    label_matrix, class_names = read_labels(labels, imgs.ids, ignore_unknown_ids=ignore_unknown_ids)
    splits = make_splits(n, query, train, split_seed or 0) if query is not None and train is not None else None
    texts_path, labels_path = Path(texts).expanduser(), Path(labels).expanduser()
    inputs = {
        "images": {
            "path": imgs.source,
            "count": n,
            "sha256": imgs.checksum(),
            "checksum": "sha256 of sorted name+size",
        },
        "texts": {"path": str(texts_path), "format": text_mode, "sha256": checksum_file(texts_path)},
        "labels": {"path": str(labels_path), "sha256": checksum_file(labels_path)},
    }

    dev = resolve_device(device)
    tdtype = torch_dtype(dtype, dev)
    dtype_name = str(tdtype).replace("torch.", "")
    image_ref = resolve_model(model, "--model", allow_download)
    text_ref = resolve_model(text_model, "--text-model", allow_download) if text_model else None

    fingerprint = {
        "images": inputs["images"]["sha256"],
        "texts": inputs["texts"]["sha256"],
        "labels": inputs["labels"]["sha256"],
        "model": image_ref.location,
        "model_revision": image_ref.revision,
        "text_model": text_ref.location if text_ref else None,
        "text_model_revision": text_ref.revision if text_ref else None,
        "image_pooling": image_pooling,
        "text_pooling": text_pooling,
        "dtype": dtype_name,
        "splits": None if splits is None else {"query": query, "train": train, "seed": split_seed or 0},
    }

    state, rows_done = resume_point(out, fingerprint, n, overwrite)
    if state is not None and state.get("complete"):
        log.info("%s: extraction already complete; nothing to do", out)
        manifest = read_manifest(out).to_dict()  # type: ignore[union-attr]  # complete ⇒ present
        dims = manifest["image"]["dim"], manifest["text"]["dim"]
        return ExtractResult(out, n, *dims, label_matrix.shape[1], 0, n, 0.0, manifest)

    image_tower, text_tower = load_towers(image_ref, text_ref, dev, tdtype, image_pooling, text_pooling)
    log.info(
        "extracting rows %d-%d of %d on %s (%s): image %s [%s], text %s [%s]",
        rows_done,
        n - 1,
        n,
        dev,
        dtype_name,
        image_ref.name,
        image_tower.pooling,
        text_tower.ref.name,
        text_tower.pooling,
    )
    if state is None:
        init_partial(out / PARTIAL_FILE, label_matrix, class_names, imgs.ids, splits)
        state = {"version": STATE_VERSION, "fingerprint": fingerprint, "n": n, "rows_done": 0, "chunks": []}
        write_state(out, state)

    t_compute = time.perf_counter()
    encode_chunks(out, state, imgs.paths, captions, image_tower, text_tower, batch_size, chunk_size, workers, progress)
    seconds = time.perf_counter() - t_compute

    import h5py

    with h5py.File(out / PARTIAL_FILE, "r") as f:
        image_dim, text_dim = int(f["image"].shape[1]), int(f["text"].shape[1])
    os.replace(out / PARTIAL_FILE, out / DATA_H5)
    image_info = image_tower.describe() | {"dim": image_dim}
    text_info = text_tower.describe() | {"dim": text_dim}
    if text_mode == "tsv":
        text_info["captions"] = "mean of the embeddings of all rows for an image"
    manifest = {
        "name": out.name,
        "version": _short_name(image_ref.name) + (f"+{_short_name(text_ref.name)}" if text_ref else ""),
        "description": f"features of {n} image-text pairs extracted by nrchbench features extract",
        "n": n,
        "num_classes": int(label_matrix.shape[1]),
        **({"query_size": query, "train_size": train} if splits is not None else {}),
        "image_dim": image_dim,
        "text_dim": text_dim,
        "image": image_info,
        "text": text_info,
        "dtype": dtype_name,
        "stored_dtype": "float32",
        "normalized": False,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "batch_size": batch_size,
        "inputs": inputs,
        "splits": None
        if splits is None
        else {"rule": "random", "seed": split_seed or 0, "sizes": {k: len(v) for k, v in splits.items()}},
        "nrchbench": __version__,
        "transformers": _version("transformers"),
        "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_manifest(out, manifest)
    manifest = read_manifest(out).to_dict()  # type: ignore[union-attr]  # what the loader will read
    state["complete"] = True
    write_state(out, state)
    log.info(
        "wrote %s (%d rows, %.1f images/s, %.1f s in all)",
        out / DATA_H5,
        n,
        (n - rows_done) / max(seconds, 1e-9),
        time.perf_counter() - t_start,
    )
    return ExtractResult(
        out=out,
        n=n,
        image_dim=image_dim,
        text_dim=text_dim,
        num_classes=int(label_matrix.shape[1]),
        rows_computed=n - rows_done,
        resumed_from=rows_done,
        seconds=seconds,
        manifest=manifest,
    )


def _short_name(name: str) -> str:
    return Path(name.rstrip("/\\")).name or name


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
