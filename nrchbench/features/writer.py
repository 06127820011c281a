"""The resumable writer of feature extraction.

Rows are processed in chunks; each finished chunk is written to ``data.h5.partial`` (the
file is closed after each chunk, so it is consistent on disk) and then recorded in
``extract_state.json`` (written atomically). A rerun with the same inputs and model (the
*fingerprint*) continues after the last recorded chunk; a finished chunk is never
recomputed. Changed inputs or model → refusal, unless ``overwrite``. The caller renames
the partial file to ``data.h5`` and writes the manifest when every chunk is done.

The arrays and their names are those of the generic format
(:mod:`nrchbench.datasets.generic_format`), plus ``image_ids``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nrchbench.datasets.generic_format import DATA_H5, MANIFEST_FILE
from nrchbench.datasets.io import brief_error
from nrchbench.errors import NrchbenchError
from nrchbench.features.encoders import ImageTower, TextTower, load_image
from nrchbench.utils import atomic_write_json

log = logging.getLogger(__name__)

PARTIAL_FILE = DATA_H5 + ".partial"
STATE_FILE = "extract_state.json"
STATE_VERSION = 1

#: ``progress(done_rows, total_rows, stage)``; stage is ``"start"``, ``"batch"`` or ``"chunk"``.
ProgressFn = Callable[[int, int, str], None]


def write_state(out: Path, state: dict[str, Any]) -> None:
    atomic_write_json(out / STATE_FILE, state)


def read_state(out: Path) -> dict[str, Any] | None:
    p = out / STATE_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise NrchbenchError(f"{p}: unreadable progress file ({brief_error(exc)}); rerun with --overwrite") from exc


def clear(out: Path) -> None:
    for name in (DATA_H5, PARTIAL_FILE, PARTIAL_FILE + ".tmp", STATE_FILE, MANIFEST_FILE):
        (out / name).unlink(missing_ok=True)


def _string_data(values: Sequence[str]) -> Any:
    import h5py

    return np.array(list(values), dtype=object), h5py.string_dtype()


def init_partial(
    path: Path,
    labels: np.ndarray,
    class_names: list[str] | None,
    ids: list[str],
    splits: dict[str, np.ndarray] | None,
) -> None:
    import h5py

    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("labels", data=labels, dtype="uint8")
        if class_names is not None:
            data, dt = _string_data(class_names)
            f.create_dataset("class_names", data=data, dtype=dt)
        data, dt = _string_data(ids)
        f.create_dataset("image_ids", data=data, dtype=dt)
        for name, idx in (splits or {}).items():
            f.create_dataset(name, data=idx.astype(np.int64))
    os.replace(tmp, path)


def write_rows(path: Path, start: int, image: np.ndarray, text: np.ndarray, n: int, chunk: int) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        for name, arr in (("image", image), ("text", text)):
            if name not in f:
                f.create_dataset(
                    name, shape=(n, arr.shape[1]), dtype="float32", chunks=(min(chunk, n, 1024), arr.shape[1])
                )
            ds = f[name]
            if ds.shape[1] != arr.shape[1]:
                raise NrchbenchError(
                    f"{path}: stored {name} features have dim {ds.shape[1]} but the model gives {arr.shape[1]}; "
                    "rerun with --overwrite"
                )
            ds[start : start + arr.shape[0]] = arr.astype(np.float32)
        f.flush()


def resume_point(out: Path, fingerprint: dict[str, Any], n: int, overwrite: bool) -> tuple[dict | None, int]:
    """``(state, rows_done)`` of a previous extraction in ``out`` (``(None, 0)`` for a fresh start).

    Raises:
        NrchbenchError: ``out`` holds an extraction of other inputs/model, or a damaged one.
    """
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear(out)
    state = read_state(out)
    partial = out / PARTIAL_FILE
    if state is None:
        if (out / DATA_H5).exists() or partial.exists():
            raise NrchbenchError(f"--out {out} already holds {DATA_H5}; rerun with --overwrite to replace it")
        return None, 0
    if state.get("fingerprint") != fingerprint:
        old = state.get("fingerprint") or {}
        changed = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
        raise NrchbenchError(
            f"--out {out} holds an extraction with other inputs or model (changed: {', '.join(changed)}); "
            "rerun with --overwrite to start over"
        )
    if state.get("complete") and (out / DATA_H5).is_file() and (out / MANIFEST_FILE).is_file():
        return state, n
    rows_done = int(state.get("rows_done", 0))
    try:  # an interruption in the middle of a write can leave the HDF5 file unreadable
        with h5py.File(partial, "r") as f:
            ok = f["labels"].shape[0] == n and (rows_done == 0 or f["image"].shape[0] == f["text"].shape[0] == n)
    except (OSError, KeyError) as exc:
        raise NrchbenchError(
            f"--out {out}: cannot resume, {PARTIAL_FILE} is missing or damaged ({brief_error(exc, 80)}); "
            "rerun with --overwrite"
        ) from exc
    if not ok:
        raise NrchbenchError(f"--out {out}: {PARTIAL_FILE} does not match {STATE_FILE}; rerun with --overwrite")
    log.info("resuming %s at row %d of %d", out, rows_done, n)
    return state, rows_done


def encode_chunks(
    out: Path,
    state: dict[str, Any],
    paths: list[Path],
    captions: list[list[str]],
    image_tower: ImageTower,
    text_tower: TextTower,
    batch_size: int,
    chunk_size: int,
    workers: int | None,
    progress: ProgressFn | None,
) -> None:
    """Encode rows ``state["rows_done"]:`` chunk by chunk, recording each finished chunk."""
    import torch

    n, rows_done = len(paths), int(state["rows_done"])
    partial = out / PARTIAL_FILE

    def prepare(lo: int, hi: int) -> tuple[Any, dict[str, Any], np.ndarray]:
        # Decode and preprocess per image in the worker threads: on a GPU machine this CPU
        # work, not the model, bounds the throughput.
        pixels = torch.cat(list(pool.map(lambda p: image_tower.preprocess([load_image(p)]), paths[lo:hi])))
        flat = [t for row in captions[lo:hi] for t in row]
        owner = np.repeat(np.arange(hi - lo), [len(row) for row in captions[lo:hi]])
        return pixels, text_tower.tokenize(flat), owner

    batches = [
        (lo, min(lo + batch_size, c_hi))
        for c_lo in range(rows_done, n, chunk_size)
        for c_hi in [min(c_lo + chunk_size, n)]
        for lo in range(c_lo, c_hi, batch_size)
    ]
    if progress:
        progress(rows_done, n, "start")
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as ahead:
        nxt: Future | None = ahead.submit(prepare, *batches[0]) if batches else None
        chunk_img: list[np.ndarray] = []
        chunk_txt: list[np.ndarray] = []
        chunk_lo = rows_done
        for b, (lo, hi) in enumerate(batches):
            assert nxt is not None
            pixels, tokens, owner = nxt.result()
            nxt = ahead.submit(prepare, *batches[b + 1]) if b + 1 < len(batches) else None  # one batch ahead
            chunk_img.append(image_tower.encode(pixels))
            per_caption = text_tower.encode(tokens)
            txt = np.zeros((hi - lo, per_caption.shape[1]), dtype=np.float32)
            np.add.at(txt, owner, per_caption)
            chunk_txt.append(txt / np.bincount(owner, minlength=hi - lo)[:, None])
            if progress:
                progress(hi, n, "batch")
            if hi < n and (hi - rows_done) % chunk_size:
                continue
            image_block, text_block = np.concatenate(chunk_img), np.concatenate(chunk_txt)
            if not (np.isfinite(image_block).all() and np.isfinite(text_block).all()):
                raise NrchbenchError(
                    f"non-finite features in rows {chunk_lo}-{hi - 1} (try --dtype float32 or bfloat16)"
                )
            write_rows(partial, chunk_lo, image_block, text_block, n, chunk_size)
            state["rows_done"] = hi
            state["chunks"].append([chunk_lo, hi])
            state["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            write_state(out, state)  # after the rows are on disk: a recorded chunk is complete
            log.debug("chunk rows %d-%d written", chunk_lo, hi - 1)
            chunk_img, chunk_txt, chunk_lo = [], [], hi
            if progress:
                progress(hi, n, "chunk")
