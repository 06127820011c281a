"""Binary hash codes: sign, bit-packing, Hamming distance and the packed ``.npz`` codes file.

Conventions (PROTOCOL §3–4):

- A code is a vector in {−1, +1}^L. :func:`sign_codes` maps real values to codes with
  **sign(0) = +1** (PyTorch's ``sign`` would give 0).
- Packed codes are ``uint64`` words, ``ceil(L / 64)`` per row: bit ``i`` of the code is bit
  ``i % 64`` of word ``i // 64`` and is 1 iff the code entry is +1 (equivalently, iff the real
  value is ≥ 0). Unused high bits of the last word are 0. The bit length ``L`` is not stored in
  the words; pass it to :func:`unpack` (the ``.npz`` file stores it).
- Hamming distance d = (L − b_qᵀ b_r) / 2. :func:`hamming` uses popcount on packed words
  (numpy, CPU); :func:`hamming_matmul` uses a matrix product in float32 (or float16) and works
  on any torch device. Both are exact: float32 represents every integer up to 2^24 and
  float16 up to 2048, so float16 is accepted only for L ≤ 2048.

Codes file (:func:`save_codes` / :func:`load_codes`): a compressed ``.npz`` with a format tag
``__format__ = "nrchbench-codes-v1"``; every keyword whose name ends in ``labels`` is a label
matrix stored as ``uint8``; every other keyword is a code matrix stored packed under its name
with its bit length under ``<name>__bits``.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from typing import Any

import numpy as np
import torch

from nrchbench.errors import ConfigError, DataError

__all__ = [
    "CODES_FORMAT",
    "hamming",
    "hamming_matmul",
    "load_codes",
    "pack",
    "save_codes",
    "sign_codes",
    "unpack",
]

CODES_FORMAT = "nrchbench-codes-v1"
_WORD_BITS = 64


def sign_codes(x: Any) -> Any:
    """Binarise real values to {−1, +1} with sign(0) = +1.

    Args:
        x: numpy array or torch tensor of real values (any shape). NaN maps to −1; the runner
            rejects NaN outputs before codes are made.

    Returns:
        ``int8`` array/tensor of the same shape (and, for torch, on the same device).
    """
    if isinstance(x, torch.Tensor):
        return torch.where(x >= 0, 1, -1).to(torch.int8)
    x = np.asarray(x)
    return np.where(x >= 0, np.int8(1), np.int8(-1)).astype(np.int8, copy=False)


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_2d(x: np.ndarray, name: str) -> None:
    if x.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D array (items × bits), got shape {tuple(x.shape)}")


def pack(codes: Any) -> np.ndarray:
    """Pack codes (N × L, {−1,+1} or real values, sign(0) = +1) into ``uint64`` words.

    Returns:
        ``uint64`` array of shape ``(N, ceil(L / 64))``; bit ``i`` is 1 iff ``codes[:, i] ≥ 0``.
    """
    x = _as_numpy(codes)
    _check_2d(x, "codes")
    n, bits = x.shape
    words = (bits + _WORD_BITS - 1) // _WORD_BITS
    by = np.packbits(x >= 0, axis=1, bitorder="little")
    out = np.zeros((n, words * 8), dtype=np.uint8)
    out[:, : by.shape[1]] = by
    return out.view("<u8").astype(np.uint64, copy=False)


def unpack(packed: Any, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``uint64`` words (N × W) → ``int8`` {−1, +1} codes (N × ``bits``)."""
    w = _as_numpy(packed)
    _check_2d(w, "packed")
    if w.dtype != np.uint64:
        raise ConfigError(f"packed: expected uint64 words from nrchbench.metrics.pack, got dtype {w.dtype}")
    if not 0 < bits <= w.shape[1] * _WORD_BITS:
        raise ConfigError(f"bits={bits}: packed codes have {w.shape[1]} words, so 1 ≤ bits ≤ {w.shape[1] * 64}")
    by = np.ascontiguousarray(w).astype("<u8", copy=False).view(np.uint8)
    b = np.unpackbits(by, axis=1, count=bits, bitorder="little")
    return (b.astype(np.int8) * 2 - 1).astype(np.int8, copy=False)


def hamming(q_packed: Any, db_packed: Any, *, chunk_size: int = 1024) -> np.ndarray:
    """Hamming distances between packed codes by popcount (numpy, CPU).

    Args:
        q_packed: ``uint64`` words (Q × W) from :func:`pack`.
        db_packed: ``uint64`` words (M × W).
        chunk_size: queries per chunk; temporary memory is about ``chunk_size × M × 9`` bytes.

    Returns:
        ``uint16`` matrix (Q × M) of distances.
    """
    q = _as_numpy(q_packed)
    db = _as_numpy(db_packed)
    _check_2d(q, "q_packed")
    _check_2d(db, "db_packed")
    if q.shape[1] != db.shape[1] or q.dtype != np.uint64 or db.dtype != np.uint64:
        raise ConfigError(
            f"hamming: expected uint64 words with the same width, got {q.dtype} {q.shape} and {db.dtype} {db.shape}"
        )
    out = np.empty((q.shape[0], db.shape[0]), dtype=np.uint16)
    dbt = np.ascontiguousarray(db.T)
    for s in range(0, q.shape[0], chunk_size):
        qc = q[s : s + chunk_size]
        acc = out[s : s + chunk_size]
        acc[...] = 0
        for w in range(q.shape[1]):
            acc += np.bitwise_count(qc[:, w : w + 1] ^ dbt[w])
    return out


def hamming_matmul(
    q_codes: torch.Tensor, db_codes: torch.Tensor, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Hamming distances d = (L − B_q B_dbᵀ) / 2 by a matrix product, on the tensors' device.

    Args:
        q_codes: Q × L tensor of {−1, +1} (or real values; sign(0) = +1 is applied).
        db_codes: M × L tensor on the same device.
        dtype: ``torch.float32`` (exact up to L = 2^24) or ``torch.float16`` (exact for L ≤ 2048).

    Returns:
        ``int32`` tensor (Q × M) on the inputs' device.
    """
    if q_codes.ndim != 2 or db_codes.ndim != 2 or q_codes.shape[1] != db_codes.shape[1]:
        raise ConfigError(
            f"hamming_matmul: expected Q×L and M×L, got {tuple(q_codes.shape)} and {tuple(db_codes.shape)}"
        )
    bits = q_codes.shape[1]
    if dtype == torch.float16 and bits > 2048:
        raise ConfigError(f"hamming_matmul: float16 is exact only for L ≤ 2048 (got {bits}); use float32")
    q = sign_codes(q_codes).to(dtype)
    db = sign_codes(db_codes).to(dtype)
    return torch.addmm(torch.full((1, 1), bits / 2, dtype=dtype, device=q.device), q, db.T, alpha=-0.5).to(torch.int32)


def save_codes(path: str | os.PathLike, **arrays: Any) -> None:
    """Write codes and labels to a compressed ``.npz`` file (atomically).

    Keywords ending in ``labels`` are label matrices (stored as ``uint8``); every other keyword
    is a code matrix (N × L, {−1,+1} or real values with sign(0) = +1), stored packed.

    Example:
        ``save_codes(p, query_image=qi, query_text=qt, db_image=di, db_text=dt,
        query_labels=lq, db_labels=ld)``
    """
    from nrchbench.utils import atomic_write_bytes

    out: dict[str, np.ndarray] = {"__format__": np.array(CODES_FORMAT)}
    for name, value in arrays.items():
        if name.startswith("__"):
            raise ConfigError(f"save_codes: array name {name!r} is reserved; use a name without leading '__'")
        a = _as_numpy(value)
        if name.endswith("labels"):
            out[name] = a.astype(np.uint8)
        else:
            _check_2d(a, name)
            out[name] = pack(a)
            out[f"{name}__bits"] = np.array(a.shape[1], dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    atomic_write_bytes(path, buf.getvalue())


def load_codes(path: str | os.PathLike, *, packed: bool = False) -> dict[str, Any]:
    """Read a file written by :func:`save_codes`.

    Args:
        path: the ``.npz`` file.
        packed: if True, code matrices are returned as ``(uint64 words, bits)`` tuples instead
            of ``int8`` {−1, +1} matrices.

    Returns:
        dict name → ``int8`` codes (or ``(words, bits)``), and name → ``uint8`` labels.

    Raises:
        DataError: one line naming the file: missing, truncated, corrupt (a bad zip member or
            checksum), another format, or arrays that do not form codes and labels.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(
            f"{os.fspath(path)}: not a readable codes file ({_one_line(e)}); re-run with --save-codes"
        ) from None
    fmt = str(data.pop("__format__", ""))
    if fmt != CODES_FORMAT:
        raise DataError(
            f"{os.fspath(path)}: expected format {CODES_FORMAT!r}, found {fmt or 'none'}; re-save the codes"
        )
    try:
        return _parse_codes(data, packed)
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise DataError(f"{os.fspath(path)}: damaged codes file ({_one_line(e)}); re-run with --save-codes") from None


def _parse_codes(data: dict[str, np.ndarray], packed: bool) -> dict[str, Any]:
    """Codes (unpacked, or ``(words, bits)``) and labels from the arrays of a codes file."""
    result: dict[str, Any] = {}
    for name, a in data.items():
        if name.endswith("__bits"):
            continue
        if name.endswith("labels"):
            if a.ndim not in (1, 2):
                raise ValueError(f"{name} has shape {a.shape}, expected items × classes")
            result[name] = a
            continue
        if f"{name}__bits" not in data:
            raise KeyError(f"{name}__bits (the code length of {name}) is missing")
        bits = int(data[f"{name}__bits"])
        codes = unpack(a, bits)  # checks the dtype and that the words hold the bits
        result[name] = (a, bits) if packed else codes
    return result


def _one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(e).strip().strip("'").splitlines()
    return text[0] if text else type(e).__name__
