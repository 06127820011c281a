"""Label-regression hashing (LRH): an example third-party nrchbench method.

The method, in three lines:

1. Target codes from the (noisy) labels: ``B = sign((Y − mean Y) R)`` with a random Gaussian
   rotation ``R`` (C × bits) drawn from the run's random streams, so items sharing labels
   share bits.
2. One ridge regression per modality from centred features to ``B`` (closed form), the
   hash functions ``f_img(x) = (x − μ_img) W_img`` and ``f_txt(t) = (t − μ_txt) W_txt``.
3. A small-loss noise separator: after each epoch, the ``keep`` fraction of training pairs
   with the smallest regression residual is kept for the next fit (noisy labels give
   targets the features cannot explain, hence large residuals).

Each epoch reports ``selected`` and ``sample_loss``, so nrchbench records the selection's
precision/recall against the clean mask and the clean/noisy loss histogram for it.
"""

from __future__ import annotations

import torch
from pydantic import Field

from nrchbench.methods import EpochLog, HashingMethod
from nrchbench.params import Params
from nrchbench.registry import METHODS

__all__ = ["LabelRegressionHashing"]
__version__ = "0.2.0"


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin_W ‖xW − y‖² + lam‖W‖² (solved in the smaller of the primal/dual forms)."""
    n, d = x.shape
    if d <= n:
        return torch.linalg.solve(x.T @ x + lam * torch.eye(d, dtype=x.dtype, device=x.device), x.T @ y)
    return x.T @ torch.linalg.solve(x @ x.T + lam * torch.eye(n, dtype=x.dtype, device=x.device), y)


class LRHParams(Params):
    epochs: int = Field(5, ge=1, description="fits; each after the first uses the samples the previous one kept")
    ridge: float = Field(10.0, gt=0, description="L2 penalty of the regressions")
    keep: float = Field(0.5, gt=0, le=1, description="fraction of training pairs kept by the small-loss separator")
    warmup: int = Field(1, ge=0, description="epochs fitted on every sample before selecting")


# The decorator makes `--plugin nrchbench_lrh` work without installing; the entry point in
# pyproject.toml makes it work after `pip install`. Both register the same class object.
@METHODS.register("lrh")
class LabelRegressionHashing(HashingMethod):
    """Label-regression hashing: ridge regression to label-derived codes with small-loss selection."""

    description = "label-regression hashing: ridge regression to label codes + small-loss selection (example plugin)"
    Params = LRHParams
    presets = {"paper": {}, "fast": {}, "tiny": {"epochs": 2}}
    selects_samples = True

    def setup(self, data, rng):
        rotation = torch.randn(data.num_classes, self.bits, generator=rng.torch("rotation")).to(data.device)
        self.targets = torch.where((data.labels - data.labels.mean(0)) @ rotation >= 0, 1.0, -1.0)
        self.mu_img, self.mu_txt = data.image.mean(0), data.text.mean(0)
        self.selected = torch.ones(data.n, dtype=torch.bool, device=data.device)

    def train_epoch(self, epoch, data, rng):
        x_img, x_txt, sel, b = data.image - self.mu_img, data.text - self.mu_txt, self.selected, self.targets
        self.w_img = _ridge(x_img[sel], b[sel], self.p.ridge)
        self.w_txt = _ridge(x_txt[sel], b[sel], self.p.ridge)
        residual = ((x_img @ self.w_img - b) ** 2).mean(1) + ((x_txt @ self.w_txt - b) ** 2).mean(1)
        log = EpochLog(epoch, losses={"loss": float(residual[sel].mean())}, selected=sel.cpu().numpy())
        log.sample_loss = (residual / residual.max().clamp_min(1e-12)).cpu().numpy()
        if epoch + 1 >= self.p.warmup:  # the next fit uses the `keep` fraction with the smallest residual
            self.selected = torch.zeros_like(sel)
            self.selected[torch.argsort(residual)[: max(1, round(self.p.keep * data.n))]] = True
        return log

    def encode_image(self, x):
        return (x - self.mu_img) @ self.w_img

    def encode_text(self, x):
        return (x - self.mu_txt) @ self.w_txt
