"""Test methods that fail: one raises during training, one returns NaN outputs."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from nrchbench.methods.base import EpochLog, HashingMethod
from nrchbench.registry import METHODS


@METHODS.register("toy-raise")
class ToyRaise(HashingMethod):
    """Test method whose training raises in its second epoch."""

    defaults: ClassVar[dict[str, Any]] = {"epochs": 2}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

    def train_epoch(self, epoch, data, rng):
        if epoch == 1:
            raise RuntimeError("toy-raise exploded on purpose\nsecond line that must not reach the record")
        return EpochLog(epoch, losses={"loss": 1.0})


@METHODS.register("toy-nan")
class ToyNaN(HashingMethod):
    """Test method whose image outputs are NaN."""

    defaults: ClassVar[dict[str, Any]] = {"epochs": 1}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

    def train_epoch(self, epoch, data, rng):
        return EpochLog(epoch, losses={"loss": 1.0})

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], self.bits), float("nan"), device=x.device)

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], self.bits, device=x.device)
