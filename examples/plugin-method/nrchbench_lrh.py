"""Label-regression hashing (LRH): an example third-party nrchbench method.

The method, in three lines:

1. Target codes from the (noisy) labels: ``B = sign((Y − mean Y) R)`` with a random Gaussian
   rotation ``R`` (C × bits) drawn from the run's seed, so items sharing labels share bits.
2. One ridge regression per modality from centred features to ``B`` (closed form), the
   hash functions ``f_img(x) = (x − μ_img) W_img`` and ``f_txt(t) = (t − μ_txt) W_txt``.
3. A small-loss noise separator: after each epoch, the ``keep`` fraction of training pairs
   with the smallest regression residual is kept for the next fit (noisy labels give
   targets the features cannot explain, hence large residuals).

It logs ``selected`` and ``sample_loss`` each epoch, so nrchbench records the selection's
precision/recall against the clean mask and the clean/noisy loss histogram for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from nrchbench.methods import HashingMethod, TrainView
from nrchbench.registry import METHODS

__all__ = ["LabelRegressionHashing"]
__version__ = "0.1.0"


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin_W ‖xW − y‖² + lam‖W‖² (solved in the smaller of the primal/dual forms)."""
    n, d = x.shape
    if d <= n:
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        return torch.linalg.solve(x.T @ x + lam * eye, x.T @ y)
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    return x.T @ torch.linalg.solve(x @ x.T + lam * eye, y)


# The decorator makes `--plugin nrchbench_lrh` work without installing; the entry point in
# pyproject.toml makes it work after `pip install`. Both register the same class object.
@METHODS.register("lrh")
class LabelRegressionHashing(HashingMethod):
    """Label-regression hashing: ridge regression to label-derived codes with small-loss selection."""

    name: ClassVar[str] = "lrh"
    description: ClassVar[str] = (
        "label-regression hashing: ridge regression to label codes + small-loss selection (example plugin)"
    )
    uses_labels: ClassVar[bool] = True
    selects_samples: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 5,  # fits; each after the first uses the samples the previous one kept
        "ridge": 10.0,  # L2 penalty of the regressions
        "keep": 0.5,  # fraction of training pairs kept by the small-loss separator
        "warmup": 1,  # epochs fitted on every sample before selecting
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "fast": {},
        "tiny": {"epochs": 2},
    }

    def fit(self, view: TrainView, *, seed: int, callback: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        p = self.params
        gen = torch.Generator().manual_seed(int(seed))
        rotation = torch.randn(view.num_classes, self.bits, generator=gen).to(view.device)
        targets = torch.where((view.labels - view.labels.mean(0)) @ rotation >= 0, 1.0, -1.0)

        self.mu_img, self.mu_txt = view.image.mean(0), view.text.mean(0)
        x_img, x_txt = view.image - self.mu_img, view.text - self.mu_txt
        selected = torch.ones(view.n, dtype=torch.bool, device=view.device)
        for epoch in range(int(p["epochs"])):
            self.w_img = _ridge(x_img[selected], targets[selected], float(p["ridge"]))
            self.w_txt = _ridge(x_txt[selected], targets[selected], float(p["ridge"]))
            residual = ((x_img @ self.w_img - targets) ** 2).mean(1) + ((x_txt @ self.w_txt - targets) ** 2).mean(1)
            if callback is not None:
                callback(
                    epoch,
                    {
                        "loss": float(residual[selected].mean()),
                        "selected": selected.cpu().numpy(),
                        "sample_loss": (residual / residual.max().clamp_min(1e-12)).cpu().numpy(),
                    },
                )
            if epoch + 1 >= int(p["warmup"]):
                k = max(1, round(float(p["keep"]) * view.n))
                selected = torch.zeros_like(selected)
                selected[torch.argsort(residual)[:k]] = True

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu_img) @ self.w_img

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu_txt) @ self.w_txt
