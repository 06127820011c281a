"""Figures of what happens inside a run: the noise separator's selection over epochs and the
per-sample-loss histogram with the fitted mixture. Same conventions as :mod:`.plots`."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nrchbench.records import Record
from nrchbench.report.figures import FORMATS, Palette, figure, legend_below, save, stem
from nrchbench.report.frame import record_identity, record_label, record_slug, select_records
from nrchbench.report.identity import TableIdentity
from nrchbench.report.labels import dataset_name, parse_labels

__all__ = [
    "loss_histogram_figures",
    "plot_loss_histogram",
    "plot_selection",
    "selection_figures",
    "separator_figures",
]

_SEL_KEYS = (
    ("sel_precision", "selection precision"),
    ("sel_recall", "selection recall"),
    ("selected_fraction", "selected fraction"),
)


def _ok(records: Iterable[Record], filters: Mapping[str, Any]) -> list[Record]:
    return [r for r in select_records(records, **filters) if r.status == "ok" and not r.spec.noise_invariant]


def _series(rec: Record, key: str) -> np.ndarray:
    """(epoch, value) rows of one history key."""
    rows = [(h.epoch, d[key]) for h in rec.history if (d := h.model_dump()).get(key) is not None]
    return np.array(rows, dtype=float).reshape(-1, 2)


def plot_selection(
    records: Iterable[Record], out_dir: str | Path, *, formats: Sequence[str] = FORMATS, **options: Any
) -> list[Path]:
    """:func:`selection_figures` saved as ``<out_dir>/<dataset>/selection_<method>[+<strategy>]_<bits>bits_….{png,pdf}``
    and :func:`separator_figures` as ``selection-compare_<bits>bits_…_<noise model>-<rate>.{png,pdf}``."""
    records = list(records)
    figs = itertools.chain(selection_figures(records, **options), separator_figures(records, **options))
    return [p for i, name, fig in figs for p in save(fig, out_dir, i, name, formats)]


def _selecting(records: Iterable[Record], filters: Mapping[str, Any]) -> Iterator[Record]:
    """The records that logged a selection (any of the selection history keys)."""
    return (r for r in _ok(records, filters) if any(len(_series(r, k)) for k, _ in _SEL_KEYS))


def _selection_panels(fig: Figure, lines: Mapping[str, list[Record]], color: Any) -> Any:
    """Selection precision, recall and selected fraction over epochs (three stacked panels): a
    line per entry of ``lines`` (mean over its records) with a ± std band; ``color(i, name)``.
    Returns the axes."""
    axes = fig.subplots(len(_SEL_KEYS), 1, sharex=True)
    for j, (name, recs) in enumerate(lines.items()):
        for ax, (k, what) in zip(axes, _SEL_KEYS, strict=True):
            rows = [s for s in (_series(r, k) for r in recs) if len(s)]
            if not rows:
                continue
            n = min(len(r) for r in rows)
            values = np.array([r[:n, 1] for r in rows])
            mean = values.mean(axis=0)
            std = values.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(n)
            ax.plot(rows[0][:n, 0], mean, color=color(j, name), label=f"{name} (n={len(rows)})")
            ax.fill_between(rows[0][:n, 0], mean - std, mean + std, color=color(j, name), alpha=0.2, lw=0)
            ax.set_ylabel(what.replace("selection ", "sel. "))
    for ax in axes:
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    return axes


def selection_figures(
    records: Iterable[Record], *, labels: Mapping[str, str] | Sequence[str] | None = None, **filters: Any
) -> Iterator[tuple[TableIdentity, str, Figure]]:
    """Selection precision, recall and selected fraction over epochs (three stacked panels),
    a line per noise rate with a ± std band over seeds. One figure per data and protocol
    identity, method configuration (strategy included) and code length; records without these
    history keys are skipped."""
    labels = parse_labels(labels)
    groups: dict[tuple, dict[float, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for rec in _selecting(records, filters):
        key = (record_identity(rec), record_label(rec, labels), record_slug(rec), rec.spec.bits)
        groups[key][float(rec.spec.noise_rate or 0.0)].append(rec)
    for key in sorted(groups, key=lambda k: (k[0].slug_parts(), k[1], k[3])):
        ident, label, slug, bits = key
        with figure(height=3.5) as fig:
            lines = {f"η={rate:g}": groups[key][rate] for rate in sorted(groups[key])}
            axes = _selection_panels(fig, lines, lambda j, _: f"C{j}")
            fig.suptitle(f"{dataset_name(ident.dataset)} · {label} · {bits} bits")
            legend_below(fig, axes, ncols=3)
        yield ident, stem("selection", ident, method=slug, bits=bits), fig


def separator_figures(
    records: Iterable[Record], *, labels: Mapping[str, str] | Sequence[str] | None = None, **filters: Any
) -> Iterator[tuple[TableIdentity, str, Figure]]:
    """The separators side by side: selection precision, recall and selected fraction over
    epochs, a line per method configuration that selects (NRCH's own separator, a strategy
    around a base, ...) with a ± std band over seeds. One figure per data and protocol
    identity, code length and noise rate that has two or more such configurations; colours
    are the same in every figure of a call."""
    labels = parse_labels(labels)
    groups: dict[tuple, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for rec in _selecting(records, filters):
        key = (record_identity(rec), rec.spec.bits, float(rec.spec.noise_rate or 0.0))
        groups[key][record_label(rec, labels)].append(rec)
    palette = Palette(name for g in groups.values() for name in g)
    for key in sorted(groups, key=lambda k: (k[0].slug_parts(), k[1], k[2])):
        if len(groups[key]) < 2:
            continue
        ident, bits, rate = key
        with figure(height=3.2 + 0.16 * len(groups[key])) as fig:  # a legend row per separator
            lines = {name: groups[key][name] for name in sorted(groups[key], key=str.casefold)}
            axes = _selection_panels(fig, lines, lambda _, name: palette(name))
            fig.suptitle(f"{dataset_name(ident.dataset)} · {bits} bits · η={rate:g}")
            legend_below(fig, axes, ncols=1)
        yield ident, stem("selection-compare", ident, bits=bits, rate=rate), fig


def _normal_pdf(x: np.ndarray, mean: float, var: float) -> np.ndarray:
    var = max(float(var), 1e-12)
    return np.exp(-((x - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)


def _arr(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def plot_loss_histogram(
    records: Iterable[Record], out_dir: str | Path, *, formats: Sequence[str] = FORMATS, **options: Any
) -> list[Path]:
    """:func:`loss_histogram_figures` saved as ``<out_dir>/<dataset>/loss-hist_<method>_….{png,pdf}``."""
    return [
        p for i, name, fig in loss_histogram_figures(records, **options) for p in save(fig, out_dir, i, name, formats)
    ]


def loss_histogram_figures(
    records: Iterable[Record],
    *,
    seed: int | None = None,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    **filters: Any,
) -> Iterator[tuple[TableIdentity, str, Figure]]:
    """Per-sample-loss histogram of clean versus noisy training samples with the fitted mixture.

    From ``diagnostics.sample_loss_hist``: clean and noisy counts as stacked densities over all
    samples (the stack integrates to 1, like the mixture), with each weighted component and
    their sum. One figure per data and protocol identity, method configuration (strategy
    included), code length and noise rate;
    ``seed`` picks the run (default: the lowest seed).
    """
    labels = parse_labels(labels)
    chosen: dict[tuple, Record] = {}
    for rec in _ok(records, filters):
        s = rec.spec
        if not rec.diagnostics.get("sample_loss_hist") or (seed is not None and s.seed != seed):
            continue
        key = (record_identity(rec), record_slug(rec), s.bits, float(s.noise_rate or 0.0))
        if key not in chosen or s.seed < chosen[key].spec.seed:
            chosen[key] = rec
    for key in sorted(chosen, key=lambda k: (k[0].slug_parts(), *k[1:])):
        ident, slug, bits, rate = key
        rec = chosen[key]
        h = rec.diagnostics["sample_loss_hist"]
        edges = _arr(h["edges"])
        clean, noisy = _arr(h.get("clean") or []), _arr(h.get("noisy") or [])
        widths = np.diff(edges)
        total = float(np.nansum(clean) + np.nansum(noisy)) or 1.0
        with figure(height=2.3) as fig:
            ax = fig.subplots()
            # stacked, so the bar tops are the density of all samples, which the mixture models
            c = clean / (total * widths) if len(clean) else np.zeros(len(widths))
            ax.bar(edges[:-1], c, width=widths, align="edge", alpha=0.6, color="C0", label="clean samples")
            if len(noisy):
                ax.bar(edges[:-1], noisy / (total * widths), bottom=c, width=widths, align="edge", alpha=0.6,
                       color="C3", label="noisy samples")  # fmt: skip
            gmm = h.get("gmm") or {}
            means, variances, weights = (list(gmm.get(k) or []) for k in ("means", "variances", "weights"))
            if means and len(means) == len(variances) == len(weights):
                x = np.linspace(edges[0], edges[-1], 400)
                comps = [w * _normal_pdf(x, m, v) for m, v, w in zip(means, variances, weights, strict=True)]
                ax.plot(x, np.sum(comps, axis=0), color="black", lw=0.9, alpha=0.7, label="mixture")
                names = ["clean component", "noisy component"] if len(means) == 2 else None
                for i, idx in enumerate(np.argsort(means)):
                    ax.plot(x, comps[idx], ls="--", color="navy" if i == 0 else "darkred",
                            label=names[i] if names else f"component {i}")  # fmt: skip
            ax.set_xlabel("per-sample loss" + (f" (epoch {h['epoch']})" if h.get("epoch") is not None else ""))
            ax.set_ylabel("density")
            ax.grid(alpha=0.3)
            title = f"{dataset_name(ident.dataset)} · {record_label(rec, labels)} · {bits} bits · η={rate:g}"
            fig.suptitle(title + f" · seed {rec.spec.seed}")
            legend_below(fig, [ax], ncols=2)
        yield ident, stem("loss-hist", ident, method=slug, bits=bits, rate=rate, seed=rec.spec.seed), fig
