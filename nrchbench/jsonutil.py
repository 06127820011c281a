"""The one converter from numpy/torch/path values to plain JSON values, and canonical JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["canonical_json", "to_jsonable"]


def to_jsonable(value: Any, *, nonfinite: str = "null") -> Any:
    """A plain-JSON copy of ``value``.

    numpy/torch arrays → (nested) lists, numpy scalars → Python numbers, tuples → lists,
    mappings → dicts with string keys, paths → strings. Non-finite floats become ``None``
    (``nonfinite="null"``, for measured values) or raise ``ValueError``
    (``nonfinite="raise"``, for values that are part of an identity).
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if nonfinite == "raise":
            raise ValueError(f"{value!r} is not a finite number")
        return None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v, nonfinite=nonfinite) for v in items]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "detach") and callable(value.detach):  # torch.Tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return to_jsonable(value.tolist(), nonfinite=nonfinite)
    if hasattr(value, "model_dump"):  # pydantic models
        return to_jsonable(value.model_dump(), nonfinite=nonfinite)
    return value


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the input of every hash in nrchbench."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
