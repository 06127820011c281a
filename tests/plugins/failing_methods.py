"""Test methods that fail: one raises during ``fit``, one returns NaN outputs."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from nrchbench.methods.base import HashingMethod, TrainView
from nrchbench.registry import METHODS


@METHODS.register("toy-raise")
class ToyRaise(HashingMethod):
    """Test method whose fit raises after one epoch."""

    defaults: ClassVar[dict[str, Any]] = {"epochs": 2}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

    def fit(self, view: TrainView, *, seed: int, callback: Any = None) -> None:
        if callback is not None:
            callback(0, {"loss": 1.0})
        raise RuntimeError("toy-raise exploded on purpose\nsecond line that must not reach the record")


@METHODS.register("toy-nan")
class ToyNaN(HashingMethod):
    """Test method whose image outputs are NaN."""

    defaults: ClassVar[dict[str, Any]] = {"epochs": 1}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

    def fit(self, view: TrainView, *, seed: int, callback: Any = None) -> None:
        if callback is not None:
            callback(0, {"loss": float("nan")})

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], self.bits), float("nan"), device=x.device)

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], self.bits, device=x.device)
