"""Test methods that kill their own process, or hide a NaN loss (a ``--plugin`` file).

* ``toy-sigkill`` / ``toy-exit`` / ``toy-segv``: the run's process dies in the first epoch by
  a real SIGKILL (what the out-of-memory killer sends), ``os._exit(3)``, or a segmentation
  fault; each prints a line first (the "last output" a failed record must show).
* ``toy-nanfit``: overrides ``fit`` (no base-class template), reports a NaN loss through the
  callback, and encodes to finite codes.
* ``toy-nanloss``: the template's ``train_epoch`` reports a NaN loss; finite codes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any, ClassVar

import torch

from nrchbench.methods.base import EpochLog, HashingMethod
from nrchbench.registry import METHODS


class _Projection(HashingMethod):
    """Random projections: finite codes whatever training did. They never use labels, so
    a grid has one spec of each per (dataset, bits, seed), whatever its noise rates."""

    uses_labels: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {"epochs": 1, "sleep": 0.0}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

    def setup(self, data, rng):
        g = rng.torch("projection")
        self.p1 = torch.randn(data.image.shape[1], self.bits, generator=g).to(data.device)
        self.p2 = torch.randn(data.text.shape[1], self.bits, generator=g).to(data.device)

    def train_epoch(self, epoch, data, rng):
        if self.p.sleep:
            time.sleep(self.p.sleep)
        self.die()
        return EpochLog(epoch, losses={"loss": 1.0})

    def die(self) -> None:
        """Nothing here; the dying subclasses end their process."""

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.p1

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.p2


@METHODS.register("toy-sigkill")
class ToySigkill(_Projection):
    """Test method whose process is killed by SIGKILL mid-training."""

    def die(self) -> None:
        print("toy-sigkill: about to be killed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


@METHODS.register("toy-exit")
class ToyExit(_Projection):
    """Test method that ends its process with os._exit(3) mid-training."""

    def die(self) -> None:
        print("toy-exit: calling os._exit(3)", flush=True)
        os._exit(3)


@METHODS.register("toy-segv")
class ToySegv(_Projection):
    """Test method that crashes its process with a segmentation fault mid-training."""

    def die(self) -> None:
        print("toy-segv: reading address 0", flush=True)
        ctypes.string_at(0)


@METHODS.register("toy-nanloss")
class ToyNaNLoss(_Projection):
    """Test method (on the template) whose loss is NaN while its codes are finite."""

    def train_epoch(self, epoch, data, rng):
        return EpochLog(epoch, losses={"loss": float("nan")})


@METHODS.register("toy-nanfit")
class ToyNaNFit(_Projection):
    """Test method that overrides fit(): its loss is NaN, its codes finite."""

    def fit(self, data, *, seed, callback=None):
        from nrchbench.methods.base import Rng

        self.setup(data, Rng(seed))
        for epoch in range(self.num_epochs):
            if callback is not None:
                callback(EpochLog(epoch, losses={"loss": float("nan"), "aux": 0.5}))
