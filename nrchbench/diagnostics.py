"""What the runner derives from a method's per-epoch logs, using what only it knows (the clean mask)."""

from __future__ import annotations

from typing import Any

import numpy as np

from nrchbench.errors import RunFailed
from nrchbench.jsonutil import to_jsonable
from nrchbench.methods.base import EpochLog

__all__ = ["HIST_BINS", "history_entry", "loss_histogram", "selection_stats", "weight_stats"]

HIST_BINS = 30


def selection_stats(selected: np.ndarray, clean_mask: np.ndarray) -> dict[str, Any]:
    """Selected fraction, and the selection's precision/recall against the clean mask."""
    sel = np.asarray(selected, dtype=bool).reshape(-1)
    clean = np.asarray(clean_mask, dtype=bool).reshape(-1)
    if sel.shape != clean.shape:
        raise RunFailed(f"'selected' has {sel.size} entries, expected one per training row ({clean.size})")
    n_sel, n_clean = int(sel.sum()), int(clean.sum())
    hit = int((sel & clean).sum())
    return {
        "selected_fraction": n_sel / max(1, sel.size),
        "sel_precision": hit / n_sel if n_sel else None,
        "sel_recall": hit / n_clean if n_clean else None,
    }


def weight_stats(weights: np.ndarray, clean_mask: np.ndarray) -> dict[str, Any]:
    """Mean per-sample weight, over all, the clean and the noisy training samples."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    clean = np.asarray(clean_mask, dtype=bool).reshape(-1)
    if w.shape != clean.shape:
        raise RunFailed(f"'weights' has {w.size} entries, expected one per training row ({clean.size})")
    return {
        "weight_mean": float(w.mean()) if w.size else None,
        "weight_mean_clean": float(w[clean].mean()) if clean.any() else None,
        "weight_mean_noisy": float(w[~clean].mean()) if (~clean).any() else None,
    }


def loss_histogram(loss: np.ndarray, clean_mask: np.ndarray, bins: int = HIST_BINS) -> dict[str, Any]:
    """Clean/noisy histograms of per-sample losses over [0, 1] (or the loss range)."""
    x = np.asarray(loss, dtype=np.float64).reshape(-1)
    clean = np.asarray(clean_mask, dtype=bool).reshape(-1)
    ok = np.isfinite(x)
    lo, hi = (0.0, 1.0)
    if ok.any() and (x[ok].min() < 0.0 or x[ok].max() > 1.0):
        lo, hi = float(x[ok].min()), float(x[ok].max())
        if hi <= lo:
            hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    return {
        "edges": edges.tolist(),
        "clean": np.histogram(x[ok & clean], bins=edges)[0].astype(int).tolist(),
        "noisy": np.histogram(x[ok & ~clean], bins=edges)[0].astype(int).tolist(),
    }


def history_entry(log: EpochLog, clean_mask: np.ndarray) -> dict[str, Any]:
    """The record's history entry of one epoch: losses, ``time_<phase>``, values, and the
    selection's / weights' statistics against the clean mask."""
    entry: dict[str, Any] = {"epoch": int(log.epoch)}
    entry.update({f"time_{k}": v for k, v in log.times.items()})
    entry.update(log.values)
    if log.selected is not None:
        entry.update(selection_stats(log.selected, clean_mask))
    if log.mixture is not None:
        entry["gmm_means"] = list(log.mixture.means)
    if log.weights is not None:
        entry.update(weight_stats(log.weights, clean_mask))
    entry.update(log.losses)
    return to_jsonable(entry)
