"""Figures from result records (PNG and PDF), with matplotlib's object API and the Agg canvas.

No pyplot and no global backend switch: every figure is a :class:`matplotlib.figure.Figure`
saved and dropped, so plotting is safe in any process. Each function returns the paths it wrote.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nrchbench.report.tables import _split_of, leaderboard

logger = logging.getLogger(__name__)

FORMATS = ("png", "pdf")
_SEL_KEYS = (
    ("sel_precision", "selection precision"),
    ("sel_recall", "selection recall"),
    ("selected_fraction", "selected fraction"),
)


def _slug(*parts: Any) -> str:
    text = "_".join(str(p) for p in parts if p is not None and p != "")
    return re.sub(r"[^A-Za-z0-9@.=_-]+", "-", text).strip("-_")


def _save(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    FigureCanvasAgg(fig)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, format=fmt, bbox_inches="tight", dpi=150)
        paths.append(path)
    return paths


def _ok(records: Iterable[Mapping[str, Any]], **filters: Any) -> list[Mapping[str, Any]]:
    out = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        spec = rec.get("spec") or {}
        values = {
            "dataset": spec.get("dataset"),
            "preset": spec.get("preset"),
            "split": _split_of(rec),
            "noise_model": spec.get("noise_model"),
        }
        inv = bool(spec.get("noise_invariant")) or spec.get("noise_rate") is None
        keep = True
        for k, v in filters.items():
            if v is None or (k == "noise_model" and inv):
                continue
            if str(values[k]) != str(v):
                keep = False
        if keep:
            out.append(rec)
    return out


def _mean_std(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(r) for r in rows)
    arr = np.array([r[:n] for r in rows], dtype=float)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(arr, axis=0)
        std = np.nanstd(arr, axis=0, ddof=1) if len(rows) > 1 else np.zeros(n)
    return mean, np.nan_to_num(std)


def _arr(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


# --------------------------------------------------------------------------- mAP vs noise


def plot_map_vs_noise(
    records: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    direction: str = "avg",
    metric: str = "map",
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Metric versus noise rate: a panel per code length, a line per method, error bars = std over seeds.

    Noise-invariant methods are dashed horizontal lines, the chance level a dotted grey line.
    One figure per leaderboard (dataset, direction, preset, split, noise model).
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    boards = leaderboard(
        records,
        dataset=dataset,
        direction=direction,
        metric=metric,
        preset=preset,
        split=split,
        noise_model=noise_model,
    )
    for b in boards:
        bits_list = sorted({bits for bits, _ in b.mean.columns})
        fig = Figure(figsize=(3.6 * len(bits_list), 3.2), layout="constrained")
        axes = fig.subplots(1, len(bits_list), squeeze=False, sharey=True)[0]
        for ax, bits in zip(axes, bits_list):
            cols = [c for c in b.mean.columns if c[0] == bits]
            rates = np.array([c[1] for c in cols], dtype=float)
            finite_rates = rates[np.isfinite(rates)]
            lo, hi = (finite_rates.min(), finite_rates.max()) if len(finite_rates) else (0.0, 1.0)
            for i, method in enumerate(b.mean.index):
                color = f"C{i % 10}"
                m = b.mean.loc[method, cols].to_numpy(dtype=float)
                s = np.nan_to_num(b.std.loc[method, cols].to_numpy(dtype=float))
                if not np.isfinite(m).any():
                    continue
                if method in b.noise_invariant:
                    ax.axhline(m[np.isfinite(m)][0], ls="--", color=color, label=f"{method} (noise-invariant)")
                    continue
                ok = np.isfinite(m) & np.isfinite(rates)
                ax.errorbar(rates[ok], m[ok], yerr=s[ok], marker="o", capsize=3, color=color, label=method)
            if b.chance is not None:
                ch = b.chance[[c for c in cols]].to_numpy(dtype=float)
                if np.isfinite(ch).any():
                    ax.axhline(float(np.nanmean(ch)), ls=":", color="grey", label="chance")
            ax.set_title(f"{bits} bits")
            ax.set_xlabel(f"noise rate ({b.noise_model})" if b.noise_model else "noise rate")
            ax.set_xlim(lo - 0.05, hi + 0.05)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(f"{b.metric} ({b.direction})")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize="small")
        fig.suptitle(f"{b.dataset}: preset {b.preset}, split {b.split}, mean ± std over seeds", fontsize="medium")
        stem = _slug(f"{metric}_vs_noise", b.dataset, b.direction, b.preset, b.split, b.noise_model)
        paths += _save(fig, out_dir, stem, formats)
    return paths


# --------------------------------------------------------------------------- selection


def plot_selection(
    records: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """The noise separator's selection precision, recall and selected fraction over epochs.

    One figure per (dataset, method, bits, preset, split, noise model), a line per noise rate,
    shaded band = std over seeds. Records without these history keys are skipped.
    """
    out_dir = Path(out_dir)
    groups: dict[tuple, dict[float, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for rec in _ok(records, dataset=dataset, preset=preset, split=split, noise_model=noise_model):
        hist = rec.get("history") or []
        if not any(any(k in h for k, _ in _SEL_KEYS) for h in hist):
            continue
        s = rec["spec"]
        key = (s.get("dataset"), s.get("method"), s.get("bits"), s.get("preset"), _split_of(rec), s.get("noise_model"))
        groups[key][float(s.get("noise_rate") or 0.0)].append(rec)
    paths: list[Path] = []
    for key in sorted(groups, key=lambda k: tuple(str(v) for v in k)):
        ds, method, bits, pr, sp, nm = key
        fig = Figure(figsize=(11, 3.2), layout="constrained")
        axes = fig.subplots(1, len(_SEL_KEYS))
        for j, rate in enumerate(sorted(groups[key])):
            recs = groups[key][rate]
            for ax, (k, label) in zip(axes, _SEL_KEYS):
                rows = []
                for rec in recs:
                    hist = [h for h in rec.get("history") or [] if k in h]
                    if hist:
                        rows.append(np.array([[h.get("epoch", i), h[k]] for i, h in enumerate(hist)], dtype=float))
                if not rows:
                    continue
                epochs = rows[0][: min(len(r) for r in rows), 0]
                mean, std = _mean_std([r[:, 1] for r in rows])
                ax.plot(epochs, mean, marker=".", color=f"C{j}", label=f"η={rate:g} (n={len(rows)})")
                ax.fill_between(epochs, mean - std, mean + std, color=f"C{j}", alpha=0.2)
                ax.set_title(label)
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_ylim(-0.02, 1.02)
                ax.grid(alpha=0.3)
        axes[0].legend(fontsize="small")
        fig.suptitle(f"{ds} · {method} · {bits} bits: preset {pr}, split {sp}, noise {nm}", fontsize="medium")
        paths += _save(fig, out_dir, _slug("selection", ds, method, f"{bits}bits", pr, sp, nm), formats)
    return paths


# --------------------------------------------------------------------------- loss histogram


def _normal_pdf(x: np.ndarray, mean: float, var: float) -> np.ndarray:
    var = max(float(var), 1e-12)
    return np.exp(-((x - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)


def plot_loss_histogram(
    records: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    seed: int | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Per-sample-loss histogram of clean versus noisy training samples with the fitted 2-component GMM.

    From ``diagnostics.sample_loss_hist``: clean and noisy counts as stacked densities over all
    samples (the stack integrates to 1, like the mixture), overlaid with each weighted GMM
    component and their sum. One figure per (dataset, method, bits, noise rate, preset, split); ``seed``
    picks the run (default: the lowest seed).
    """
    out_dir = Path(out_dir)
    chosen: dict[tuple, Mapping[str, Any]] = {}
    for rec in _ok(records, dataset=dataset, preset=preset, split=split, noise_model=noise_model):
        hist = (rec.get("diagnostics") or {}).get("sample_loss_hist")
        s = rec["spec"]
        if not hist or (seed is not None and s.get("seed") != seed):
            continue
        key = (s.get("dataset"), s.get("method"), s.get("bits"), s.get("noise_rate"), s.get("preset"), _split_of(rec))
        if key not in chosen or (s.get("seed") or 0) < (chosen[key]["spec"].get("seed") or 0):
            chosen[key] = rec
    paths: list[Path] = []
    for key in sorted(chosen, key=lambda k: tuple(str(v) for v in k)):
        rec = chosen[key]
        h = rec["diagnostics"]["sample_loss_hist"]
        ds, method, bits, rate, pr, sp = key
        edges = _arr(h["edges"])
        clean, noisy = _arr(h.get("clean") or []), _arr(h.get("noisy") or [])
        widths = np.diff(edges)
        total = float(np.nansum(clean) + np.nansum(noisy)) or 1.0
        fig = Figure(figsize=(5, 3.4), layout="constrained")
        ax = fig.subplots()
        # stacked, so the bar tops are the density of all samples, which the mixture models
        c = clean / (total * widths) if len(clean) else np.zeros(len(widths))
        ax.bar(edges[:-1], c, width=widths, align="edge", alpha=0.6, color="C0", label="clean")
        if len(noisy):
            nz = noisy / (total * widths)
            ax.bar(edges[:-1], nz, bottom=c, width=widths, align="edge", alpha=0.6, color="C3", label="noisy")
        gmm = h.get("gmm") or {}
        means, variances, weights = (list(gmm.get(k) or []) for k in ("means", "variances", "weights"))
        if means and len(means) == len(variances) == len(weights):
            x = np.linspace(edges[0], edges[-1], 400)
            comps = [w * _normal_pdf(x, m, v) for m, v, w in zip(means, variances, weights)]
            order = np.argsort(means)
            names = ["GMM clean component", "GMM noisy component"] if len(means) == 2 else None
            ax.plot(x, np.sum(comps, axis=0), color="black", lw=1, alpha=0.7, label="GMM mixture")
            for i, idx in enumerate(order):
                color = "navy" if i == 0 else "darkred"
                label = names[i] if names else f"GMM component {i}"
                ax.plot(x, comps[idx], ls="--", lw=1.8, color=color, label=label, zorder=3)
        ax.set_xlabel("per-sample loss")
        ax.set_ylabel("density")
        ax.legend(fontsize="small")
        epoch = h.get("epoch")
        ax.set_title(
            f"{ds} · {method} · {bits} bits · η={rate} · seed {rec['spec'].get('seed')}"
            + (f" · epoch {epoch}" if epoch is not None else ""),
            fontsize="small",
        )
        stem = _slug("loss_hist", ds, method, f"{bits}bits", f"noise{rate}", pr, sp, f"seed{rec['spec'].get('seed')}")
        paths += _save(fig, out_dir, stem, formats)
    return paths


# --------------------------------------------------------------------------- PR curves


def plot_pr_curves(
    records: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Precision–recall over Hamming radius (``metrics.<dir>.pr_curve``), i2t and t2i panels.

    One figure per (dataset, bits, noise rate, preset, split, noise model), a line per method
    (pointwise mean over seeds); noise-invariant methods appear in every noise rate's figure.
    """
    out_dir = Path(out_dir)
    recs = _ok(records, dataset=dataset, preset=preset, split=split, noise_model=noise_model)
    aware_rates: dict[tuple, set] = defaultdict(set)
    for rec in recs:
        s = rec["spec"]
        if s.get("noise_rate") is not None and not s.get("noise_invariant"):
            aware_rates[(s.get("dataset"), s.get("preset"), _split_of(rec))].add(
                (s.get("noise_model"), float(s["noise_rate"]))
            )
    curves: dict[tuple, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rec in recs:
        s = rec["spec"]
        base = (s.get("dataset"), s.get("preset"), _split_of(rec))
        inv = bool(s.get("noise_invariant")) or s.get("noise_rate") is None
        targets = sorted(aware_rates[base]) if inv else [(s.get("noise_model"), float(s["noise_rate"]))]
        if inv and not targets:
            targets = [(None, None)]
        label = s.get("method", "?") + ("†" if inv else "")
        for d in ("i2t", "t2i"):
            pr = ((rec.get("metrics") or {}).get(d) or {}).get("pr_curve")
            if not pr or not pr.get("precision"):
                continue
            for nm, rate in targets:
                curves[(*base, s.get("bits"), nm, rate)][label][d].append((_arr(pr["recall"]), _arr(pr["precision"])))
    paths: list[Path] = []
    for key in sorted(curves, key=lambda k: tuple(str(v) for v in k)):
        ds, pr_, sp, bits, nm, rate = key
        fig = Figure(figsize=(8.5, 3.4), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        for i, method in enumerate(sorted(curves[key])):
            for ax, d in zip(axes, ("i2t", "t2i")):
                pairs = curves[key][method].get(d)
                if not pairs:
                    continue
                rec_m, _ = _mean_std([p[0] for p in pairs])
                prec_m, _ = _mean_std([p[1] for p in pairs])
                ax.plot(rec_m, prec_m, marker=".", ms=3, color=f"C{i % 10}", label=f"{method} (n={len(pairs)})")
        for ax, d in zip(axes, ("i2t", "t2i")):
            ax.set_title(d)
            ax.set_xlabel("recall")
            ax.set_xlim(0, 1.02)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("precision")
        axes[0].legend(fontsize="small")
        fig.suptitle(
            f"{ds} · {bits} bits · noise {nm} η={rate}: PR over Hamming radius (preset {pr_}, split {sp})",
            fontsize="medium",
        )
        paths += _save(fig, out_dir, _slug("pr", ds, f"{bits}bits", nm, f"noise{rate}", pr_, sp), formats)
    return paths


def plot_all(records: Iterable[Mapping[str, Any]], out_dir: str | Path, **filters: Any) -> dict[str, list[Path]]:
    """Every kind of plot; returns ``{kind: paths}`` (``noise``, ``selection``, ``loss-hist``, ``pr``)."""
    records = list(records)
    common = {k: filters.get(k) for k in ("dataset", "preset", "split", "noise_model")}
    return {
        "noise": plot_map_vs_noise(
            records, out_dir, direction=filters.get("direction", "avg"), metric=filters.get("metric", "map"), **common
        ),
        "selection": plot_selection(records, out_dir, **common),
        "loss-hist": plot_loss_histogram(records, out_dir, **common),
        "pr": plot_pr_curves(records, out_dir, **common),
    }
