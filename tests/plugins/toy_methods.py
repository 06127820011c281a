"""Small, fast test methods registered as a ``--plugin`` file (not part of the package).

* ``toy-linear``: ridge regression from features to label-derived codes, a few epochs,
  logging ``selected``/``sample_loss``/``gmm`` so the runner's diagnostics are exercised;
  ``sleep`` seconds per epoch make it slow enough to kill a sweep mid-run.
* ``toy-unsup``: ``uses_labels = False`` (noise-invariant); asserts it never sees labels.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch

from nrchbench.methods.base import EpochLog, HashingMethod, Mixture
from nrchbench.registry import METHODS


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    n, d = x.shape
    if d <= n:
        return torch.linalg.solve(x.T @ x + lam * torch.eye(d, dtype=x.dtype, device=x.device), x.T @ y)
    return x.T @ torch.linalg.solve(x @ x.T + lam * torch.eye(n, dtype=x.dtype, device=x.device), y)


@METHODS.register("toy-linear")
class ToyLinear(HashingMethod):
    """Test method: ridge regression to label-derived codes."""

    uses_labels: ClassVar[bool] = True
    selects_samples: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"epochs": 3, "ridge": 10.0, "keep": 0.7, "sleep": 0.0}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {"epochs": 2}}

    def setup(self, data, rng):
        rot = torch.randn(data.num_classes, self.bits, generator=rng.torch("rotation")).to(data.device)
        self.b = torch.where((data.labels - data.labels.mean(0)) @ rot >= 0, 1.0, -1.0)
        self.mu1, self.mu2 = data.image.mean(0), data.text.mean(0)
        self.sel = torch.ones(data.n, dtype=torch.bool, device=data.device)

    def train_epoch(self, epoch, data, rng):
        x1, x2, b, sel = data.image - self.mu1, data.text - self.mu2, self.b, self.sel
        self.w1 = _ridge(x1[sel], b[sel], self.p.ridge)
        self.w2 = _ridge(x2[sel], b[sel], self.p.ridge)
        loss = ((x1 @ self.w1 - b) ** 2).mean(1) + ((x2 @ self.w2 - b) ** 2).mean(1)
        scaled = loss / loss.max().clamp_min(1e-12)
        log = EpochLog(
            epoch,
            losses={"loss": float(loss.mean())},
            times={"fit": 0.0},
            selected=sel.cpu().numpy(),
            sample_loss=scaled.cpu().numpy(),
            mixture=Mixture(means=[0.2, 0.7], variances=[0.01, 0.02], weights=[0.6, 0.4]),
        )
        self.sel = scaled <= torch.quantile(scaled, self.p.keep)
        if self.p.sleep:
            time.sleep(self.p.sleep)
        return log

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu1) @ self.w1

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu2) @ self.w2


@METHODS.register("toy-unsup")
class ToyUnsupervised(HashingMethod):
    """Test method that never uses labels (noise-invariant): random projections."""

    uses_labels: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {"epochs": 1}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

    def setup(self, data, rng):
        assert float(data.labels.abs().sum()) == 0.0, "a label-free method must never see labels"
        g = rng.torch("projection")
        self.p1 = torch.randn(data.image.shape[1], self.bits, generator=g).to(data.device)
        self.p2 = torch.randn(data.text.shape[1], self.bits, generator=g).to(data.device)
        self.mu1, self.mu2 = data.image.mean(0), data.text.mean(0)

    def train_epoch(self, epoch, data, rng):
        return EpochLog(epoch, losses={"loss": 0.0})

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu1) @ self.p1

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu2) @ self.p2
