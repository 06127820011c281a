"""Figures of results: a metric versus the noise rate, and precision–recall curves.

Each function takes typed records, writes PNG and PDF files under ``<out_dir>/<dataset>/``
(:mod:`.figures`: paper-column size, legends outside the axes, the tables' method labels) and
returns the paths. The per-run diagnostics (selection, loss histograms) are in
:mod:`.diagnostics_plots`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from nrchbench.records import Record
from nrchbench.report.diagnostics_plots import plot_loss_histogram, plot_selection
from nrchbench.report.figures import FORMATS, Palette, figure, legend_below, save, stem
from nrchbench.report.frame import record_frame, record_label, select_records
from nrchbench.report.identity import TABLE_KEYS, TableIdentity
from nrchbench.report.labels import dataset_name, direction_name, metric_label, parse_labels
from nrchbench.report.leaderboard import leaderboard

log = logging.getLogger(__name__)

__all__ = [
    "NEEDS",
    "map_vs_noise_figures",
    "plot_all",
    "plot_kinds",
    "plot_map_vs_noise",
    "plot_pr_curves",
    "pr_figures",
]

#: What each kind of plot reads from a record (for the message when nothing can be drawn).
NEEDS = {
    "noise": "successful runs at two or more noise rates",
    "selection": "history with sel_precision/sel_recall/selected_fraction (a method that selects samples)",
    "loss-hist": "diagnostics.sample_loss_hist (a method that selects samples, e.g. nrch)",
    "pr": "metrics.<dir>.pr_curve",
}
_DIRS = {"i2t": "image→text", "t2i": "text→image"}


def plot_map_vs_noise(
    records: Iterable[Record], out_dir: str | Path, *, formats: Sequence[str] = FORMATS, **options: Any
) -> list[Path]:
    """:func:`map_vs_noise_figures` saved as ``<out_dir>/<dataset>/<metric>-vs-noise_<direction>_….{png,pdf}``."""
    return [
        p
        for ident, name, fig in map_vs_noise_figures(records, **options)
        for p in save(fig, out_dir, ident, name, formats)
    ]


def map_vs_noise_figures(
    records: Iterable[Record],
    *,
    metric: str = "map",
    direction: str = "avg",
    results_dir: str | Path | None = None,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    **filters: Any,
) -> Iterator[tuple[TableIdentity, str, Figure]]:
    """The metric versus the noise rate, one panel per code length (two panels a row), a line
    per method with error bars of ± std over seeds; noise-invariant methods dashed, chance
    dotted. One figure per leaderboard (data and protocol identity, direction).

    ``filters``: ``dataset``, ``preset``, ``split``, ``noise_model``, ``methods``, ``bits``,
    ``noise_rates`` as in :func:`~nrchbench.report.leaderboard.leaderboard`.
    """
    boards = leaderboard(records, metric=metric, direction=direction, results_dir=results_dir, labels=labels, **filters)
    palette = Palette(label for b in boards for label in b.rows["label"])
    for b in boards:
        bits_list = sorted({bits for bits, r in b.grid if math.isfinite(r)})
        if not bits_list or len({r for _, r in b.grid}) < 2:
            continue
        ncols = 1 if len(bits_list) == 1 else 2
        nrows = math.ceil(len(bits_list) / ncols)
        with figure(height=0.55 + 1.45 * nrows + 0.12 * len(b.rows)) as fig:
            axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True, sharex=True)
            for ax, bits in zip(axes.flat, bits_list, strict=False):
                _noise_panel(ax, b, bits, palette)
            for ax in axes.flat[len(bits_list) :]:
                ax.set_visible(False)
            for ax in axes[:, 0]:
                ax.set_ylabel(metric_label(b.identity.metric))
            for ax in axes[-1, :]:
                ax.set_xlabel("noise rate η")
            fig.suptitle(f"{dataset_name(b.identity.dataset)} · {direction_name(b.identity.direction)}")
            legend_below(fig, list(axes.flat), order=[*b.rows["label"], "chance"])
        yield b.identity, stem(f"{metric}-vs-noise", b.identity, what=b.identity.direction), fig


def _noise_panel(ax: Any, b: Any, bits: int, palette: Palette) -> None:
    cells = b.cells[(b.cells["bits"] == bits) & (b.cells["state"] == "ok")].sort_values("noise_rate")
    rates = sorted(r for bb, r in b.grid if bb == bits and math.isfinite(r))
    for row, info in b.rows.iterrows():
        c = cells[cells["row"] == row]
        if c.empty:
            continue
        color = palette(info["label"])
        if info["invariant"]:
            ax.axhline(float(c["mean"].iloc[0]), ls="--", color=color, label=info["label"])
        else:
            err = np.nan_to_num(c["std"].to_numpy(dtype=float))
            ax.errorbar(c["noise_rate"], c["mean"], yerr=err, marker="o", capsize=2, color=color, label=info["label"])
    chance = [v for (bb, _), v in b.chance.items() if bb == bits]
    if chance:
        ax.axhline(float(np.mean(chance)), ls=":", color="grey", label="chance")
    ax.set_title(f"{bits} bits")
    ax.set_xticks(rates)
    ax.set_xlim(rates[0] - 0.05, rates[-1] + 0.05)
    ax.grid(alpha=0.3)


def _pr_mean(curves: list[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise mean over seeds of the PR curve, without the radii where any seed retrieved
    nothing or nothing relevant (recall 0: precision is undefined there, not 0)."""
    n = min(len(c["recall"]) for c in curves)
    rec = np.array([[np.nan if v is None else v for v in c["recall"][:n]] for c in curves], dtype=float)
    prec = np.array([[np.nan if v is None else v for v in c["precision"][:n]] for c in curves], dtype=float)
    support = np.array([(c.get("support") or [1] * n)[:n] for c in curves], dtype=float)
    keep = np.all((rec > 0) & (support > 0) & np.isfinite(prec), axis=0)
    return rec[:, keep].mean(axis=0), prec[:, keep].mean(axis=0)


def plot_pr_curves(
    records: Iterable[Record], out_dir: str | Path, *, formats: Sequence[str] = FORMATS, **options: Any
) -> list[Path]:
    """:func:`pr_figures` saved as ``<out_dir>/<dataset>/pr_<bits>bits_….{png,pdf}``."""
    return [p for ident, name, fig in pr_figures(records, **options) for p in save(fig, out_dir, ident, name, formats)]


def pr_figures(
    records: Iterable[Record], *, labels: Mapping[str, str] | Sequence[str] | None = None, **filters: Any
) -> Iterator[tuple[TableIdentity, str, Figure]]:
    """Precision–recall over Hamming radius (``metrics.<dir>.pr_curve``), image→text and
    text→image panels, a line per method (pointwise mean over seeds). One figure per data
    and protocol identity, code length and noise rate; noise-invariant methods join every rate."""
    recs = [r for r in select_records(records, **filters) if r.status == "ok"]
    by_id = {r.run_id: r for r in recs}
    labels = parse_labels(labels)
    frame = record_frame(recs, "map", ("avg",))  # places noise-invariant runs at every rate
    palette = Palette(record_label(r, labels) for r in recs)
    for key, g in frame.groupby([*TABLE_KEYS, "bits", "noise_rate"], sort=True, dropna=False):
        ident = TableIdentity.from_mapping({**dict(zip(TABLE_KEYS, key, strict=False)), "direction": "", "metric": ""})
        bits, rate = int(key[-2]), float(key[-1])
        curves: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for run_id in g["run_id"]:
            rec = by_id[run_id]
            for d in _DIRS:
                pr = rec.metric(d, "pr_curve")
                if pr and pr.get("precision"):
                    curves[record_label(rec, labels)][d].append(pr)
        if not curves:
            continue
        with figure(height=1.75 + 0.12 * len(curves)) as fig:
            axes = fig.subplots(1, 2, sharey=True)
            for label in sorted(curves, key=str.casefold):
                for ax, d in zip(axes, _DIRS, strict=True):
                    if curves[label][d]:
                        r, p = _pr_mean(curves[label][d])
                        ax.plot(r, p, marker=".", ms=2.5, color=palette(label), label=label)
            for ax, d in zip(axes, _DIRS, strict=True):
                ax.set_title(_DIRS[d])
                ax.set_xlabel("recall")
                ax.set_xlim(0, 1.02)
                ax.grid(alpha=0.3)
            axes[0].set_ylabel("precision")
            noise = "" if not math.isfinite(rate) else f", η={rate:g}"
            fig.suptitle(f"{dataset_name(ident.dataset)} · {bits} bits{noise} · Hamming radius 0–{bits}")
            legend_below(fig, axes, order=sorted(curves, key=str.casefold))
        yield ident, stem("pr", ident, bits=bits, rate=rate if math.isfinite(rate) else None), fig


def plot_kinds(
    records: Iterable[Record],
    out_dir: str | Path,
    kinds: Sequence[str] = ("noise", "selection", "loss-hist", "pr"),
    *,
    direction: str = "avg",
    metric: str = "map",
    results_dir: str | Path | None = None,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    formats: Sequence[str] = FORMATS,
    **filters: Any,
) -> dict[str, list[Path]]:
    """The plots of ``kinds`` (``noise``, ``selection``, ``loss-hist``, ``pr``); returns ``{kind: paths}``."""
    records = list(records)
    common = {"labels": labels, "formats": formats, **filters}
    makers = {
        "noise": lambda: plot_map_vs_noise(records, out_dir, metric=metric, direction=direction,
                                           results_dir=results_dir, **common),
        "selection": lambda: plot_selection(records, out_dir, **common),
        "loss-hist": lambda: plot_loss_histogram(records, out_dir, **common),
        "pr": lambda: plot_pr_curves(records, out_dir, **common),
    }  # fmt: skip
    written = {}
    for k in kinds:
        t0 = time.perf_counter()
        log.info("plot: %s from %d record(s)…", k, len(records))
        written[k] = makers[k]()
        log.info("plot: %s: %d file(s) in %.1fs", k, len(written[k]), time.perf_counter() - t0)
    return written


def plot_all(records: Iterable[Record], out_dir: str | Path, **options: Any) -> dict[str, list[Path]]:
    """Every kind of plot (see :func:`plot_kinds`)."""
    return plot_kinds(records, out_dir, **options)
