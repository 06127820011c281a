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

from nrchbench.methods.base import HashingMethod, TrainView
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

    def fit(self, view: TrainView, *, seed: int, callback: Any = None) -> None:
        g = torch.Generator().manual_seed(seed)
        rot = torch.randn(view.num_classes, self.bits, generator=g).to(view.device)
        y = view.labels - view.labels.mean(0)
        b = torch.where(y @ rot >= 0, 1.0, -1.0)
        self.mu1, self.mu2 = view.image.mean(0), view.text.mean(0)
        x1, x2 = view.image - self.mu1, view.text - self.mu2
        sel = torch.ones(view.n, dtype=torch.bool, device=view.device)
        for epoch in range(self.params["epochs"]):
            self.w1 = _ridge(x1[sel], b[sel], self.params["ridge"])
            self.w2 = _ridge(x2[sel], b[sel], self.params["ridge"])
            loss = ((x1 @ self.w1 - b) ** 2).mean(1) + ((x2 @ self.w2 - b) ** 2).mean(1)
            scaled = loss / loss.max().clamp_min(1e-12)
            if callback is not None:
                callback(
                    epoch,
                    {
                        "loss": float(loss.mean()),
                        "time_fit": 0.0,
                        "selected": sel.cpu().numpy(),
                        "sample_loss": scaled.cpu().numpy(),
                        "gmm": {"means": [0.2, 0.7], "variances": [0.01, 0.02], "weights": [0.6, 0.4]},
                    },
                )
            sel = scaled <= torch.quantile(scaled, self.params["keep"])
            if self.params["sleep"]:
                time.sleep(self.params["sleep"])

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

    def fit(self, view: TrainView, *, seed: int, callback: Any = None) -> None:
        assert float(view.labels.abs().sum()) == 0.0, "a label-free method must never see labels"
        g = torch.Generator().manual_seed(seed)
        self.p1 = torch.randn(view.image.shape[1], self.bits, generator=g).to(view.device)
        self.p2 = torch.randn(view.text.shape[1], self.bits, generator=g).to(view.device)
        self.mu1, self.mu2 = view.image.mean(0), view.text.mean(0)
        if callback is not None:
            callback(0, {"loss": 0.0})

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu1) @ self.p1

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu2) @ self.p2
