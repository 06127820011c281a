"""Shared fixtures and helpers: where the real data lives, the toy method plugins, tiny synthetic sets."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:  # torch and nrchbench are imported where used: collecting stays light
    import torch

REPO = Path(__file__).resolve().parents[1]

# The toy method plugins of tests/plugins/ (``from conftest import TOY, FAILING, SMALL``).
PLUGINS = Path(__file__).resolve().parent / "plugins"
TOY, FAILING = str(PLUGINS / "toy_methods.py"), str(PLUGINS / "failing_methods.py")
TOY_NAMES = ("toy-linear", "toy-unsup", "toy-raise", "toy-nan")
SMALL = {"n": 600, "image_dim": 64, "text_dim": 200}  # tiny synthetic set: query 50, train 250, database 550


def _shared_data_dir() -> Path | None:
    env = os.environ.get("NRCHBENCH_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO / ".." / "shared" / "data"]
    for c in candidates:
        if (c / "wiki" / "raw_features.mat").is_file():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data directory (``$NRCHBENCH_DATA`` or ``../shared/data``); skips if absent."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set NRCHBENCH_DATA or place it at ../shared/data")
    return d


def forget_toy_plugins() -> None:
    """Unregister the toy methods and drop their plugin modules, so that later modules never see them."""
    from nrchbench.registry import METHODS

    for name in TOY_NAMES:
        METHODS.unregister(name)
    for mod in ("nrchbench_plugin_toy_methods", "nrchbench_plugin_failing_methods"):
        sys.modules.pop(mod, None)


@pytest.fixture(scope="module")
def toy_plugins():
    """Register the test plugins for the using module only (other modules never see them).

    Use it module-wide with ``pytestmark = pytest.mark.usefixtures("toy_plugins")``.
    """
    from nrchbench.cli.common import import_plugins

    import_plugins([TOY, FAILING])
    yield
    forget_toy_plugins()


@pytest.fixture(scope="module")
def mock():
    """The bundled mock dataset (:func:`nrchbench.testing.mock_data`), once per module."""
    from nrchbench.testing import mock_data

    return mock_data()


# ----------------------------------------------------------------- helpers of the method tests
# Plain functions (``from conftest import ...``), shared by the method tests.
def rand64(*shape: int, seed: int = 0) -> torch.Tensor:
    """Standard-normal float64 tensor from its own seeded generator."""
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norms (written out, as the naive references want it)."""
    return x / x.norm(dim=1, keepdim=True)


def unit_outputs(
    n: int, L: int, seed: int = 0, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two n×L float64 blocks of unit-norm tanh outputs, as the hash heads produce them: drawn
    from ``generator`` (which then continues) or from a fresh one seeded with ``seed``."""
    import torch

    g = torch.Generator().manual_seed(seed) if generator is None else generator
    h = unit_rows(torch.randn(n, L, generator=g, dtype=torch.float64).tanh())
    return h, unit_rows(torch.randn(n, L, generator=g, dtype=torch.float64).tanh())


def tiny_run(method: str, **spec: Any):
    """One runner-level ``tiny`` run of ``method`` at 16 bits on the :data:`SMALL` synthetic set
    (CPU); ``spec`` adds :func:`~nrchbench.spec.resolve_spec` arguments (``noise_rate``, ...)."""
    from nrchbench.runner import run
    from nrchbench.spec import resolve_spec

    return run(resolve_spec(method, bits=16, preset="tiny", dataset_options=SMALL, device="cpu", **spec))


def dot(a, b) -> float:
    """Σ_k a_k·b_k as a plain Python loop over floats (the naive references' inner product)."""
    return sum(float(x) * float(z) for x, z in zip(a, b))


def synthetic_multilabel(n: int, seed: int, c: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small two-modality multi-label set whose features carry the labels."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, c), np.float32)
    for i in range(n):
        labels[i, rng.choice(c, rng.integers(1, 3), replace=False)] = 1
    img = np.maximum(labels @ rng.normal(size=(c, 48)) * 3 + rng.normal(size=(n, 48)), 0)
    txt = (rng.random((n, 40)) < np.clip(labels @ rng.random((c, 40)) / 3, 0, 0.9)).astype(np.float32)
    return img.astype(np.float32), txt, labels


def map_at_all(qb: np.ndarray, rb: np.ndarray, ql: np.ndarray, rl: np.ndarray) -> float:
    """mAP over the whole retrieval set (stable Hamming ranking; queries without relevant items dropped)."""
    ham = 0.5 * (qb.shape[1] - qb @ rb.T)
    rel = ql @ rl.T > 0
    aps = []
    for i in range(len(qb)):
        r = rel[i, np.argsort(ham[i], kind="stable")]
        pos = np.flatnonzero(r) + 1
        if len(pos):
            aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
    return float(np.mean(aps))


def sign_codes(x: torch.Tensor) -> np.ndarray:
    """±1 codes of real outputs (0 → +1)."""
    import torch

    return torch.where(x >= 0, 1.0, -1.0).numpy()


def flat_log(log) -> dict:
    """An :class:`~nrchbench.methods.EpochLog` as one flat dict (losses, ``time_<phase>``,
    values, and ``selected``/``sample_loss``/``gmm`` when present), for compact assertions."""
    out = {**log.losses, **{f"time_{k}": v for k, v in log.times.items()}, **log.values}
    if log.selected is not None:
        out["selected"] = log.selected
    if log.sample_loss is not None:
        out["sample_loss"] = log.sample_loss
    if log.mixture is not None:
        out["gmm"] = vars(log.mixture)
    return out
