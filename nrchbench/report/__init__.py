"""Leaderboards, robustness summaries, comparisons with published numbers, and plots.

Everything here is a pure function of typed result records
(:func:`nrchbench.records.load_records`); nothing reaches back into training code.

Modules: :mod:`.identity` (what a table may not mix), :mod:`.frame` (records → a long
pandas frame), :mod:`.stats` (aggregation, significance, robustness values),
:mod:`.leaderboard` (tables and layouts), :mod:`.robustness`, :mod:`.render` (cells,
Markdown, LaTeX via ``Styler``), :mod:`.export`, :mod:`.compare`, :mod:`.labels`, and the
plots (:mod:`.plots`, :mod:`.diagnostics_plots`; matplotlib is imported only for them).
"""

from __future__ import annotations

from typing import Any

from nrchbench.report.compare import Comparison, compare_with_reference, load_reference
from nrchbench.report.export import render, to_csv
from nrchbench.report.leaderboard import Leaderboard, leaderboard
from nrchbench.report.robustness import Robustness, robustness

_PLOTS = {
    "plot_map_vs_noise": "plots",
    "plot_pr_curves": "plots",
    "plot_all": "plots",
    "plot_selection": "diagnostics_plots",
    "plot_loss_histogram": "diagnostics_plots",
}

__all__ = [
    "Comparison",
    "Leaderboard",
    "Robustness",
    "compare_with_reference",
    "leaderboard",
    "load_reference",
    "render",
    "robustness",
    "to_csv",
    *_PLOTS,
]


def __getattr__(name: str) -> Any:
    # matplotlib is imported only when a plot is asked for
    if name in _PLOTS:
        import importlib

        return getattr(importlib.import_module(f"nrchbench.report.{_PLOTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
