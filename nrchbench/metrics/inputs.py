"""Input checks and conversions shared by the evaluation backends.

Codes come as numpy arrays or torch tensors of {−1, +1} or real values (sign with 0 → +1), or as
``uint64`` words from :func:`nrchbench.metrics.pack`; labels as label matrices (nonzero =
present) or 1-D integer class ids. Nothing here copies a whole input unless a backend needs
another form of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nrchbench.errors import ConfigError
from nrchbench.metrics.codes import pack, sign_codes, unpack

__all__ = [
    "as_numpy",
    "at_least_one_word",
    "label_masks",
    "label_words",
    "prepare_codes",
    "prepare_inputs",
    "prepare_labels",
    "resolve_device",
    "torch_codes",
    "torch_labels",
]


def prepare_inputs(
    query_codes: Any, db_codes: Any, query_labels: Any, db_labels: Any, bits: int | None
) -> tuple[Any, Any, Any, Any]:
    """Checked codes and labels of one direction (see :func:`prepare_codes`, :func:`prepare_labels`).

    Raises:
        ConfigError: bad dtypes, shapes that disagree, no query, no database item or no bit.
    """
    qb = prepare_codes(query_codes, bits, "query_codes")
    db = prepare_codes(db_codes, bits, "db_codes")
    if qb.shape[1] != db.shape[1]:
        raise ConfigError(
            f"query_codes have {qb.shape[1]} bits but db_codes have {db.shape[1]}; encode both with one model"
        )
    ql, dl = prepare_labels(query_labels, db_labels)
    if ql.shape[0] != qb.shape[0] or dl.shape[0] != db.shape[0] or ql.shape[1] != dl.shape[1]:
        raise ConfigError(
            f"shapes disagree: query codes {tuple(qb.shape)}, query labels {tuple(ql.shape)}, "
            f"db codes {tuple(db.shape)}, db labels {tuple(dl.shape)}; expected Q×L, Q×C, M×L, M×C"
        )
    nq, nbits = qb.shape
    if nq == 0 or db.shape[0] == 0:
        raise ConfigError(f"evaluate: need at least one query and one database item (got {nq} and {db.shape[0]})")
    if nbits == 0:
        raise ConfigError("query_codes and db_codes have 0 bits: expected codes of length L ≥ 1")
    return qb, db, ql, dl


def prepare_codes(x: Any, bits: int | None, name: str) -> np.ndarray | torch.Tensor:
    """Validate codes; packed words are unpacked. Returns the (unsigned-free) array or tensor as is."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or (not x.is_floating_point() and not x.is_signed()):
            raise ConfigError(f"{name}: expected {{-1,+1}} or real-valued codes, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ConfigError(f"{name}: expected a 2-D tensor (items × bits), got shape {tuple(x.shape)}")
        return x.detach()
    a = np.asarray(x)
    if a.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D array (items × bits), got shape {a.shape}")
    if a.dtype == np.uint64:
        if bits is None:
            raise ConfigError(f"{name}: packed uint64 codes need bits=<code length>")
        return unpack(a, bits)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.signedinteger) or np.issubdtype(a.dtype, np.floating)):
        raise ConfigError(
            f"{name}: expected {{-1,+1}} or real-valued codes (or uint64 words from metrics.pack), got dtype {a.dtype}"
        )
    return a


def prepare_labels(query_labels: Any, db_labels: Any) -> tuple[Any, Any]:
    """Validate labels (positive entries = labels present); 1-D integer class ids become one-hot rows."""
    out = []
    for x, name in ((query_labels, "query_labels"), (db_labels, "db_labels")):
        t = x.detach() if isinstance(x, torch.Tensor) else np.asarray(x)
        is_int = (
            not (t.is_floating_point() or t.dtype == torch.bool)
            if isinstance(t, torch.Tensor)
            else (np.issubdtype(t.dtype, np.integer))
        )
        if t.ndim == 1 and not is_int:
            raise ConfigError(f"{name}: 1-D labels must be integer class ids, got dtype {t.dtype}")
        if t.ndim not in (1, 2):
            raise ConfigError(f"{name}: expected a 2-D label matrix (items × classes), got shape {tuple(t.shape)}")
        out.append(t)
    if out[0].ndim == 1 or out[1].ndim == 1:
        if out[0].ndim != out[1].ndim:
            raise ConfigError("query_labels and db_labels: give both as class ids (1-D) or both as matrices (2-D)")
        out = [as_numpy(t) for t in out]
        k = int(max(out[0].max(initial=0), out[1].max(initial=0))) + 1
        out = [np.arange(k) == t[:, None] for t in out]
    return out[0], out[1]


def resolve_device(device: Any, *tensors: Any) -> torch.device:
    """``None``: the first non-CPU device among the code tensors, else the CPU; else as given
    (``"auto"``, ``"cpu"``, ``"cuda"``, a ``torch.device``)."""
    if device is None:
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.device.type != "cpu":
                return t.device
        return torch.device("cpu")
    from nrchbench.utils import resolve_device as resolve

    return resolve(device)


def as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """The array itself, or a tensor's values on the CPU."""
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else x


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def torch_codes(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """{−1, +1} float32 codes on ``device`` (sign with 0 → +1)."""
    t = _as_tensor(x)
    return sign_codes(t.to(device)).to(torch.float32)


def torch_labels(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """{0, 1} float32 label matrix on ``device``."""
    t = _as_tensor(x)
    return (t.to(device) > 0).to(torch.float32)


def label_masks(ql: Any, dl: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Label sets as bit masks in the smallest unsigned type (None beyond 64 classes)."""
    c = ql.shape[1]
    if c > 64:
        return None
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.dtype(t).itemsize * 8 >= c)
    return tuple(label_words(x)[:, 0].astype(dtype) for x in (ql, dl))


def label_words(x: Any) -> np.ndarray:
    """Label sets (positive entries) as packed uint64 bit masks, one row per item."""
    return pack(np.where(as_numpy(x) > 0, np.int8(1), np.int8(-1)))


def at_least_one_word(w: np.ndarray) -> np.ndarray:
    """Contiguous words with at least one column (a zero word where there are none)."""
    return np.ascontiguousarray(w if w.shape[1] else np.zeros((w.shape[0], 1), dtype=np.uint64))
