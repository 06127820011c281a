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
* **Resumable.** Rows are processed in chunks of ``chunk_size``; each finished chunk is
  written to ``data.h5.partial`` (file closed after each chunk, so it is consistent on
  disk) and then recorded in ``extract_state.json`` (written atomically). A rerun with
  the same inputs and model continues after the last recorded chunk; a finished chunk
  is never recomputed. Changed inputs or model → refusal, unless ``overwrite``. When all
  chunks are done the file is renamed to ``data.h5`` and ``manifest.json`` is written.
* **Offline.** Models load with ``local_files_only=True`` unless ``allow_download``.

``transformers`` and Pillow are the optional extra ``nrchbench[features]`` and are
imported lazily.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nrchbench.datasets.base import checksum_file
from nrchbench.errors import ConfigError, DataError, NrchbenchError
from nrchbench.features.labels import id_index, lookup_id, read_labels
from nrchbench.utils import atomic_write_json

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
DATA_FILE = "data.h5"
PARTIAL_FILE = "data.h5.partial"
STATE_FILE = "extract_state.json"
MANIFEST_FILE = "manifest.json"
STATE_VERSION = 1
INSTALL_HINT = "pip install 'nrchbench[features]'"
IMAGE_POOLINGS = ("auto", "pooler", "cls", "mean")
TEXT_POOLINGS = ("auto", "mean", "cls", "pooler")
DTYPES = ("float32", "float16", "bfloat16")

#: ``progress(done_rows, total_rows, stage)``; stage is ``"start"``, ``"batch"`` or ``"chunk"``.
ProgressFn = Callable[[int, int, str], None]


# --------------------------------------------------------------------------- inputs


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
    if unknown and ignore_unknown_ids:
        log.info("%s: skipped %d row(s) of ids that are not among the images", path, len(unknown))
    elif unknown:
        raise DataError(
            f"--texts {path}: {len(unknown)} row(s) name ids that are not among the images, e.g. {unknown[0]!r}; "
            "ids must be image file stems (remove those rows or pass --ignore-unknown-ids)"
        )
    missing = [ids[i] for i, t in enumerate(texts) if not t]
    if missing:
        raise DataError(
            f"--texts {path}: {len(missing)} image(s) have no text row, e.g. {missing[0]!r}; add a row per image"
        )
    return texts, "tsv"


def make_splits(n: int, query: int, train: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random split: query = Q rows, train = T of the rest, database = all non-query rows.

    Index arrays are sorted (int64). Train ⊂ database, as in the ``nrch`` and ``random`` rules.
    """
    if query <= 0 or train <= 0 or query + train > n:
        raise ConfigError(f"--query {query} --train {train}: need positive sizes with query + train <= {n} images")
    perm = np.random.default_rng(seed).permutation(n)
    return {
        "query": np.sort(perm[:query]).astype(np.int64),
        "train": np.sort(perm[query : query + train]).astype(np.int64),
        "database": np.sort(perm[query:]).astype(np.int64),
    }


# --------------------------------------------------------------------------- models


def require_extra() -> None:
    """Raise a one-line error saying how to install the optional extra when it is missing."""
    missing = []
    for mod in ("transformers", "PIL"):
        try:
            __import__(mod)
        except ImportError:
            missing.append("pillow" if mod == "PIL" else mod)
    if missing:
        raise NrchbenchError(
            f"feature extraction needs {' and '.join(missing)}: install the optional extra with {INSTALL_HINT}"
        )


def _one_line(exc: BaseException, limit: int = 200) -> str:
    s = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {s[:limit]}{'…' if len(s) > limit else ''}"


@dataclass
class ModelRef:
    """A model reference resolved without loading weights."""

    option: str  # "--model" or "--text-model"
    name: str  # as given
    location: str  # what from_pretrained gets (absolute local dir or hub id)
    local: bool
    revision: str | None
    config: Any
    local_files_only: bool


def _revision(config: Any, local_dir: Path | None) -> str | None:
    rev = getattr(config, "_commit_hash", None)
    if rev:
        return str(rev)
    if local_dir is not None:
        # `huggingface-cli download --local-dir` leaves the commit hash in these metadata files.
        meta = local_dir / ".cache" / "huggingface" / "download"
        for cand in [meta / "config.json.metadata", *sorted(meta.glob("*.metadata"))]:
            try:
                first = cand.read_text().splitlines()[0].strip()
            except (OSError, IndexError):
                continue
            if re.fullmatch(r"[0-9a-f]{40}", first):
                return first
    return None


def resolve_model(name: str, option: str = "--model", allow_download: bool = False) -> ModelRef:
    """Find a model (local directory, or hub id in the local cache) and read its config.

    Raises:
        NrchbenchError: the model cannot be found offline (with how to download it).
    """
    from transformers import AutoConfig

    p = Path(name).expanduser()
    local = p.is_dir()
    location = str(p.resolve()) if local else name
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep == "\\" and "\\" in name)
    if not local and looks_like_path:
        raise NrchbenchError(f"{option} {name}: no such model directory")
    try:
        config = AutoConfig.from_pretrained(location, local_files_only=not allow_download)
    except Exception as exc:
        if local:
            raise NrchbenchError(
                f"{option} {name}: cannot read the model config in this directory ({_one_line(exc)})"
            ) from exc
        how = f"download it with `huggingface-cli download {name} --local-dir DIR` and pass {option} DIR" + (
            "" if allow_download else ", or add --allow-download"
        )
        why = "not in the local Hugging Face cache" if isinstance(exc, OSError) else _one_line(exc, 120)
        raise NrchbenchError(f"{option} {name}: cannot load this model offline ({why}); {how}") from exc
    return ModelRef(
        option=option,
        name=name,
        location=location,
        local=local,
        revision=_revision(config, p if local else None),
        config=config,
        local_files_only=not allow_download,
    )


def _load_model(ref: ModelRef) -> Any:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(ref.location, local_files_only=ref.local_files_only)
    except Exception as exc:
        raise NrchbenchError(f"{ref.option} {ref.name}: cannot load the model weights ({_one_line(exc)})") from exc
    model.eval()
    return model


def _is_dual(model: Any) -> bool:
    return callable(getattr(model, "get_image_features", None)) and callable(getattr(model, "get_text_features", None))


def _features(out: Any) -> Any:
    """transformers 4.x returns a tensor from ``get_*_features``; 5.x a ModelOutput whose
    ``pooler_output`` holds the projected embedding."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise NrchbenchError(f"unexpected output type {type(out).__name__} from the model's feature function")


def _accepted(fn: Callable[..., Any], inputs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return inputs
    return {k: v for k, v in inputs.items() if k in params}


_PROC_KEYS = (
    "image_processor_type",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_convert_rgb",
)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _describe_tower(ref: ModelRef, model: Any, pooling: str, preprocessing: dict[str, Any]) -> dict[str, Any]:
    """A tower's manifest entry: the model, where it came from, its pooling and preprocessing."""
    return {
        "model": ref.name,
        "path": ref.location if ref.local else None,
        "revision": ref.revision,
        "model_type": getattr(ref.config, "model_type", None),
        "architecture": type(model).__name__,
        "pooling": pooling,
        "preprocessing": preprocessing,
    }


class ImageTower:
    """Images → float32 features (one model call per batch)."""

    def __init__(self, ref: ModelRef, model: Any, processor: Any, device: Any, dtype: Any, pooling: str) -> None:
        self.ref, self.model, self.processor, self.device, self.dtype = ref, model, processor, device, dtype
        self.dual = _is_dual(model)
        if self.dual:
            self.pooling = "projection (get_image_features)"
        else:
            if pooling not in IMAGE_POOLINGS:
                raise ConfigError(f"--image-pooling {pooling!r}: expected one of {', '.join(IMAGE_POOLINGS)}")
            self.pooling = pooling

    def preprocess(self, images: list[Any]) -> Any:
        return self.processor(images=images, return_tensors="pt")["pixel_values"]

    def encode(self, pixel_values: Any) -> np.ndarray:
        import torch

        px = pixel_values.to(self.device, self.dtype)
        with torch.inference_mode():
            if self.dual:
                feats = _features(self.model.get_image_features(pixel_values=px))
            else:
                out = self.model(pixel_values=px)
                feats = self._pool(out)
        return feats.reshape(feats.shape[0], -1).float().cpu().numpy()

    def _pool(self, out: Any) -> Any:
        pooled = getattr(out, "pooler_output", None)
        hidden = getattr(out, "last_hidden_state", None)
        mode = self.pooling
        if mode == "auto":
            mode = "pooler" if pooled is not None else "cls"
            self.pooling = mode  # resolved once, recorded in the manifest
        if mode == "pooler":
            if pooled is None:
                raise NrchbenchError(
                    f"--image-pooling pooler: {self.ref.name} returns no pooler_output; use cls or mean"
                )
            return pooled
        if hidden is None:
            raise NrchbenchError(f"--image-pooling {mode}: {self.ref.name} returns no last_hidden_state")
        if hidden.dim() == 4:  # convolutional feature map B×C×H×W
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0] if mode == "cls" else hidden.mean(dim=1)

    def describe(self) -> dict[str, Any]:
        d = self.processor.to_dict() if hasattr(self.processor, "to_dict") else {}
        summary = {k: _jsonable(d[k]) for k in _PROC_KEYS if k in d}
        summary.setdefault("image_processor_type", type(self.processor).__name__)
        return _describe_tower(self.ref, self.model, self.pooling, summary)


class TextTower:
    """Texts → float32 features; several captions per row are averaged."""

    def __init__(self, ref: ModelRef, model: Any, tokenizer: Any, device: Any, dtype: Any, pooling: str) -> None:
        self.ref, self.model, self.tokenizer, self.device, self.dtype = ref, model, tokenizer, device, dtype
        self.dual = _is_dual(model)
        if self.dual:
            self.pooling = "projection (get_text_features)"
        else:
            if pooling not in TEXT_POOLINGS:
                raise ConfigError(f"--text-pooling {pooling!r}: expected one of {', '.join(TEXT_POOLINGS)}")
            self.pooling = "mean" if pooling == "auto" else pooling
        self.max_length = self._max_length()
        # SigLIP was trained on texts padded to max_length; its embeddings depend on it.
        self.padding: bool | str = (
            "max_length" if (getattr(ref.config, "model_type", None) or "").startswith("siglip") else True
        )

    def _max_length(self) -> int:
        cfg = self.ref.config
        cfg = getattr(cfg, "text_config", None) or cfg
        limits = [getattr(cfg, "max_position_embeddings", None) or 512]
        tml = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tml, int) and 0 < tml < 100_000:
            limits.append(tml)
        return int(min(limits))

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        return dict(
            self.tokenizer(
                texts, padding=self.padding, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
        )

    def encode(self, tokens: dict[str, Any]) -> np.ndarray:
        import torch

        fn = self.model.get_text_features if self.dual else self.model.forward
        inputs = {k: v.to(self.device) for k, v in _accepted(fn, tokens).items()}
        with torch.inference_mode():
            if self.dual:
                feats = _features(fn(**inputs))
            else:
                out = fn(**inputs)
                feats = self._pool(out, inputs.get("attention_mask"))
        return feats.float().cpu().numpy()

    def _pool(self, out: Any, mask: Any) -> Any:
        if self.pooling == "pooler":
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise NrchbenchError(
                    f"--text-pooling pooler: {self.ref.name} returns no pooler_output; use mean or cls"
                )
            return pooled
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        if mask is None:
            return hidden.mean(dim=1)
        m = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)

    def describe(self) -> dict[str, Any]:
        preprocessing = {
            "tokenizer": type(self.tokenizer).__name__,
            "max_length": self.max_length,
            "truncation": True,
            "padding": "max_length" if self.padding == "max_length" else "longest in batch",
        }
        return _describe_tower(self.ref, self.model, self.pooling, preprocessing)


def _torch_dtype(dtype: str | None, device: Any) -> Any:
    import torch

    if dtype is None:
        dtype = "float16" if device.type == "cuda" else "float32"
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def load_towers(
    image_ref: ModelRef,
    text_ref: ModelRef | None,
    device: Any,
    dtype: Any,
    image_pooling: str = "auto",
    text_pooling: str = "auto",
) -> tuple[ImageTower, TextTower]:
    """Load models, image processor and tokenizer (offline unless the refs allow downloads)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    model = _load_model(image_ref).to(device=device, dtype=dtype)
    try:
        processor = AutoImageProcessor.from_pretrained(image_ref.location, local_files_only=image_ref.local_files_only)
    except Exception as exc:
        raise NrchbenchError(
            f"{image_ref.option} {image_ref.name}: no image processor config (preprocessor_config.json) ({_one_line(exc)})"
        ) from exc
    if text_ref is None:
        if not _is_dual(model):
            raise NrchbenchError(
                f"--model {image_ref.name}: {type(model).__name__} has no text tower; "
                "pass --text-model (e.g. a BERT) or use a CLIP-family model"
            )
        text_ref, text_model = image_ref, model
    else:
        text_model = _load_model(text_ref).to(device=device, dtype=dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(text_ref.location, local_files_only=text_ref.local_files_only)
    except Exception as exc:
        raise NrchbenchError(
            f"{text_ref.option} {text_ref.name}: cannot load its tokenizer ({_one_line(exc)})"
        ) from exc
    return (
        ImageTower(image_ref, model, processor, device, dtype, image_pooling),
        TextTower(text_ref, text_model, tokenizer, device, dtype, text_pooling),
    )


# --------------------------------------------------------------------------- extraction


def _load_image(path: Path) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:
        raise DataError(f"{path}: cannot read this image ({_one_line(exc, 120)}); remove it from --images") from exc


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


def _write_json_state(out: Path, state: dict[str, Any]) -> None:
    atomic_write_json(out / STATE_FILE, state)


def _read_state(out: Path) -> dict[str, Any] | None:
    p = out / STATE_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise NrchbenchError(f"{p}: unreadable progress file ({_one_line(exc)}); rerun with --overwrite") from exc


def _clear(out: Path) -> None:
    for name in (DATA_FILE, PARTIAL_FILE, PARTIAL_FILE + ".tmp", STATE_FILE, MANIFEST_FILE):
        (out / name).unlink(missing_ok=True)


def _string_data(values: Sequence[str]) -> Any:
    import h5py

    return np.array(list(values), dtype=object), h5py.string_dtype()


def _init_partial(
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


def _write_rows(path: Path, start: int, image: np.ndarray, text: np.ndarray, n: int, chunk: int) -> None:
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
    tdtype = _torch_dtype(dtype, dev)
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

    state, rows_done = _resume_point(out, fingerprint, n, overwrite)
    if state is not None and state.get("complete"):
        log.info("%s: extraction already complete; nothing to do", out)
        manifest = json.loads((out / MANIFEST_FILE).read_text())
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
        _init_partial(out / PARTIAL_FILE, label_matrix, class_names, imgs.ids, splits)
        state = {"version": STATE_VERSION, "fingerprint": fingerprint, "n": n, "rows_done": 0, "chunks": []}
        _write_json_state(out, state)

    t_compute = time.perf_counter()
    _encode_chunks(out, state, imgs.paths, captions, image_tower, text_tower, batch_size, chunk_size, workers, progress)
    seconds = time.perf_counter() - t_compute

    import h5py

    with h5py.File(out / PARTIAL_FILE, "r") as f:
        image_dim, text_dim = int(f["image"].shape[1]), int(f["text"].shape[1])
    os.replace(out / PARTIAL_FILE, out / DATA_FILE)
    image_info = image_tower.describe() | {"dim": image_dim}
    text_info = text_tower.describe() | {"dim": text_dim}
    if text_mode == "tsv":
        text_info["captions"] = "mean of the embeddings of all rows for an image"
    manifest = {
        "format": "nrchbench-generic",
        "format_version": 1,
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
    atomic_write_json(out / MANIFEST_FILE, manifest)
    state["complete"] = True
    _write_json_state(out, state)
    log.info(
        "wrote %s (%d rows, %.1f images/s, %.1f s in all)",
        out / DATA_FILE,
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


def _resume_point(out: Path, fingerprint: dict[str, Any], n: int, overwrite: bool) -> tuple[dict | None, int]:
    """``(state, rows_done)`` of a previous extraction in ``out`` (``(None, 0)`` for a fresh start).

    Raises:
        NrchbenchError: ``out`` holds an extraction of other inputs/model, or a damaged one.
    """
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        _clear(out)
    state = _read_state(out)
    partial = out / PARTIAL_FILE
    if state is None:
        if (out / DATA_FILE).exists() or partial.exists():
            raise NrchbenchError(f"--out {out} already holds {DATA_FILE}; rerun with --overwrite to replace it")
        return None, 0
    if state.get("fingerprint") != fingerprint:
        old = state.get("fingerprint") or {}
        changed = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
        raise NrchbenchError(
            f"--out {out} holds an extraction with other inputs or model (changed: {', '.join(changed)}); "
            "rerun with --overwrite to start over"
        )
    if state.get("complete") and (out / DATA_FILE).is_file() and (out / MANIFEST_FILE).is_file():
        return state, n
    rows_done = int(state.get("rows_done", 0))
    try:  # an interruption in the middle of a write can leave the HDF5 file unreadable
        with h5py.File(partial, "r") as f:
            ok = f["labels"].shape[0] == n and (rows_done == 0 or f["image"].shape[0] == f["text"].shape[0] == n)
    except (OSError, KeyError) as exc:
        raise NrchbenchError(
            f"--out {out}: cannot resume, {PARTIAL_FILE} is missing or damaged ({_one_line(exc, 80)}); "
            "rerun with --overwrite"
        ) from exc
    if not ok:
        raise NrchbenchError(f"--out {out}: {PARTIAL_FILE} does not match {STATE_FILE}; rerun with --overwrite")
    log.info("resuming %s at row %d of %d", out, rows_done, n)
    return state, rows_done


def _encode_chunks(
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
        pixels = torch.cat(list(pool.map(lambda p: image_tower.preprocess([_load_image(p)]), paths[lo:hi])))
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
            _write_rows(partial, chunk_lo, image_block, text_block, n, chunk_size)
            state["rows_done"] = hi
            state["chunks"].append([chunk_lo, hi])
            state["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            _write_json_state(out, state)  # after the rows are on disk: a recorded chunk is complete
            log.debug("chunk rows %d-%d written", chunk_lo, hi - 1)
            chunk_img, chunk_txt, chunk_lo = [], [], hi
            if progress:
                progress(hi, n, "chunk")


def _short_name(name: str) -> str:
    return Path(name.rstrip("/\\")).name or name


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
