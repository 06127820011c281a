"""The method contract kit: what every method must satisfy, importable by plugin authors.

    from nrchbench.testing import check_method
    check_method(MyMethod)          # raises MethodContractError with what is wrong

It runs the checks the repository's own parametrised tests run on every registered method:
declared presets and parameters, a constructor that only stores parameters, a ``tiny`` fit
on a bundled mock dataset (a small ``synthetic`` set with noisy labels), per-epoch logs,
output shape and range, determinism for one seed, no use of global random state, and — for
methods with ``uses_labels = False`` — outputs that do not depend on the labels.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nrchbench.methods.base import PRESETS, EpochLog, HashingMethod, TrainData

__all__ = ["MethodContractError", "check_method", "mock_data"]


class MethodContractError(AssertionError):
    """A method breaks the contract; the message says which check and what was seen."""


@dataclass
class MockData:
    """A tiny training view plus query features, from the embedded ``synthetic`` generator."""

    train: TrainData
    query_image: torch.Tensor
    query_text: torch.Tensor


def mock_data(n: int = 600, seed: int = 0, noise_rate: float = 0.5) -> MockData:
    """A small synthetic set (query 50, train 250 rows at ``n=600``) with ``nrch`` label noise."""
    from nrchbench.datasets import load_dataset
    from nrchbench.noise import apply

    ds = load_dataset("synthetic", n=n, seed=seed, image_dim=64, text_dim=200)
    x, t, y = ds.part("train")
    qx, qt, _ = ds.part("query")
    noisy = apply("one-swap", y, noise_rate, seed).labels
    cpu = torch.device("cpu")
    train = TrainData(
        torch.from_numpy(np.ascontiguousarray(x, np.float32)),
        torch.from_numpy(np.ascontiguousarray(t, np.float32)),
        torch.from_numpy(noisy.astype(np.float32)),
        cpu,
    )
    return MockData(train, torch.from_numpy(qx.astype(np.float32)), torch.from_numpy(qt.astype(np.float32)))


def _fail(cls: type, what: str) -> MethodContractError:
    return MethodContractError(f"{cls.__name__} ({cls.name or 'unregistered'}): {what}")


def _global_state() -> tuple[Any, ...]:
    return torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002


def _same_state(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def _fit(cls: type[HashingMethod], data: MockData, bits: int, seed: int, labels: torch.Tensor | None = None):
    """One tiny fit; returns (method, logs, image outputs, text outputs, global state changed?)."""
    _, params = cls.resolve_params("tiny")
    train = data.train
    if not cls.uses_labels or labels is not None:
        lab = torch.zeros_like(train.labels) if labels is None else labels
        train = TrainData(train.image, train.text, lab, train.device)
    if cls.needs_clean_mask:
        train = TrainData(train.image, train.text, train.labels, train.device, torch.ones(train.n, dtype=torch.bool))
    before = _global_state()
    method = cls(bits=bits, **params)
    if not _same_state(before, _global_state()):
        raise _fail(cls, "the constructor draws random numbers; it must only store parameters")
    logs: list[EpochLog] = []
    method.fit(train, seed=seed, callback=logs.append)
    changed = not _same_state(before, _global_state())
    with torch.no_grad():
        out_i = method.encode("image", data.query_image)
        out_t = method.encode("text", data.query_text)
    return method, logs, out_i, out_t, changed


def check_method(
    cls: type[HashingMethod], *, bits: int = 16, seed: int = 0, data: MockData | None = None
) -> dict[str, Any]:
    """Run the method contract on ``cls``.

    Returns:
        A short report (epochs, seconds are not measured) when every check passes.

    Raises:
        MethodContractError: the first check that fails, in one line.
    """
    if not (isinstance(cls, type) and issubclass(cls, HashingMethod)):
        raise MethodContractError(f"{cls!r} is not a subclass of nrchbench.methods.HashingMethod")
    missing = [p for p in PRESETS if p not in cls.presets]
    if missing:
        raise _fail(cls, f"missing preset(s) {', '.join(missing)}; every method declares {', '.join(PRESETS)}")
    if not cls.defaults:
        raise _fail(cls, "declares no hyper-parameters (Params or defaults)")
    for preset in PRESETS:
        cls.resolve_params(preset)
    for attr in ("uses_labels", "selects_samples", "needs_clean_mask"):
        if not isinstance(getattr(cls, attr), bool):
            raise _fail(cls, f"{attr} must be a bool")

    data = data or mock_data()
    n = data.train.n
    method, logs, out_i, out_t, changed = _fit(cls, data, bits, seed)
    if changed:
        raise _fail(cls, "fit() uses the global random state (torch, numpy or random); draw from the Rng it is given")
    if len(logs) != method.num_epochs:
        raise _fail(cls, f"{len(logs)} epoch logs for {method.num_epochs} epochs; return one EpochLog per epoch")
    for log in logs:
        if not isinstance(log, EpochLog):
            raise _fail(cls, f"train_epoch returned {type(log).__name__}, expected an EpochLog")
        for group in (log.losses, log.times, log.values):
            for key, value in group.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise _fail(cls, f"epoch {log.epoch} logs {key}={value!r}; expected a finite number")
        if cls.selects_samples:
            sel = None if log.selected is None else np.asarray(log.selected)
            if sel is None or sel.dtype != bool or sel.shape != (n,):
                raise _fail(
                    cls, f"selects_samples is True but epoch {log.epoch} has no bool `selected` of shape ({n},)"
                )
    for modality, out, x in (("image", out_i, data.query_image), ("text", out_t, data.query_text)):
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0], bits):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise _fail(cls, f"{modality} outputs have shape {shape}, expected ({x.shape[0]}, {bits})")
        if not bool(torch.isfinite(out).all()):
            raise _fail(cls, f"{modality} outputs contain NaN or Inf")

    # Determinism: the same seed gives the same outputs, whatever the global random state is.
    torch.manual_seed(12345)
    np.random.seed(12345)  # noqa: NPY002 - deliberately disturbing the global state
    random.seed(12345)
    _, _, again_i, again_t, _ = _fit(cls, data, bits, seed)
    if not (torch.equal(out_i, again_i) and torch.equal(out_t, again_t)):
        raise _fail(cls, "two fits with the same seed give different outputs (unseeded or global randomness)")

    if not cls.uses_labels:
        flipped = 1.0 - data.train.labels
        _, _, lab_i, lab_t, _ = _fit(cls, data, bits, seed, labels=flipped)
        if not (torch.equal(out_i, lab_i) and torch.equal(out_t, lab_t)):
            raise _fail(cls, "uses_labels is False but its outputs change with the labels")
    return {"method": cls.name, "epochs": len(logs), "bits": bits}
