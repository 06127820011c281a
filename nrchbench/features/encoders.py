"""Encoders: image and text towers that turn pixels and tokens into float32 features.

A CLIP-family model (``get_image_features`` and ``get_text_features``) gives both towers
(its projected embeddings); otherwise the image tower pools a vision model's output and
the text tower a text model's (see ``IMAGE_POOLINGS``/``TEXT_POOLINGS``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nrchbench.datasets.io import brief_error
from nrchbench.errors import ConfigError, DataError, NrchbenchError
from nrchbench.features.models import ModelRef, is_dual, load_model
from nrchbench.jsonutil import to_jsonable

IMAGE_POOLINGS = ("auto", "pooler", "cls", "mean")
TEXT_POOLINGS = ("auto", "mean", "cls", "pooler")
DTYPES = ("float32", "float16", "bfloat16")


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


class _Tower:
    """What both towers share: the model, where it runs, its pooling and its manifest entry."""

    modality = ""
    poolings: tuple[str, ...] = ()

    def __init__(self, ref: ModelRef, model: Any, device: Any, dtype: Any, pooling: str) -> None:
        self.ref, self.model, self.device, self.dtype = ref, model, device, dtype
        self.dual = is_dual(model)
        if self.dual:
            self.pooling = f"projection (get_{self.modality}_features)"
        elif pooling not in self.poolings:
            raise ConfigError(f"--{self.modality}-pooling {pooling!r}: expected one of {', '.join(self.poolings)}")
        else:
            self.pooling = pooling

    def _describe(self, preprocessing: dict[str, Any]) -> dict[str, Any]:
        """The manifest entry: the model, where it came from, its pooling and preprocessing."""
        return {
            "model": self.ref.name,
            "path": self.ref.location if self.ref.local else None,
            "revision": self.ref.revision,
            "model_type": getattr(self.ref.config, "model_type", None),
            "architecture": type(self.model).__name__,
            "pooling": self.pooling,
            "preprocessing": preprocessing,
        }


class ImageTower(_Tower):
    """Images → float32 features (one model call per batch)."""

    modality = "image"
    poolings = IMAGE_POOLINGS

    def __init__(self, ref: ModelRef, model: Any, processor: Any, device: Any, dtype: Any, pooling: str) -> None:
        super().__init__(ref, model, device, dtype, pooling)
        self.processor = processor

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
        # to_jsonable, then str() for what JSON cannot hold (e.g. an enum of the processor)
        summary = json.loads(json.dumps(to_jsonable({k: d[k] for k in _PROC_KEYS if k in d}), default=str))
        summary.setdefault("image_processor_type", type(self.processor).__name__)
        return self._describe(summary)


class TextTower(_Tower):
    """Texts → float32 features; several captions per row are averaged."""

    modality = "text"
    poolings = TEXT_POOLINGS

    def __init__(self, ref: ModelRef, model: Any, tokenizer: Any, device: Any, dtype: Any, pooling: str) -> None:
        super().__init__(ref, model, device, dtype, pooling)
        if self.pooling == "auto":
            self.pooling = "mean"
        self.tokenizer = tokenizer
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
        return self._describe(preprocessing)


def torch_dtype(dtype: str | None, device: Any) -> Any:
    import torch

    if dtype is None:
        dtype = "float16" if device.type == "cuda" else "float32"
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def _pretrained(auto: Any, ref: ModelRef, failure: str) -> Any:
    """``auto.from_pretrained`` for a model's processor or tokenizer (offline unless allowed)."""
    try:
        return auto.from_pretrained(ref.location, local_files_only=ref.local_files_only)
    except Exception as exc:
        raise NrchbenchError(f"{ref.option} {ref.name}: {failure} ({brief_error(exc)})") from exc


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

    model = load_model(image_ref).to(device=device, dtype=dtype)
    processor = _pretrained(AutoImageProcessor, image_ref, "no image processor config (preprocessor_config.json)")
    if text_ref is None:
        if not is_dual(model):
            raise NrchbenchError(
                f"--model {image_ref.name}: {type(model).__name__} has no text tower; "
                "pass --text-model (e.g. a BERT) or use a CLIP-family model"
            )
        text_ref, text_model = image_ref, model
    else:
        text_model = load_model(text_ref).to(device=device, dtype=dtype)
    tokenizer = _pretrained(AutoTokenizer, text_ref, "cannot load its tokenizer")
    return (
        ImageTower(image_ref, model, processor, device, dtype, image_pooling),
        TextTower(text_ref, text_model, tokenizer, device, dtype, text_pooling),
    )


def load_image(path: Path) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:
        raise DataError(f"{path}: cannot read this image ({brief_error(exc, 120)}); remove it from --images") from exc
