"""Leaderboards, the comparison with published numbers, and plots: pure functions of records.

Nothing here reaches back into training code; every function takes result records (dicts of
the schema in ``docs/ARCHITECTURE.md``), e.g. from :func:`load_records`.
"""

from __future__ import annotations

from typing import Any

from nrchbench.report.compare import Comparison, compare_with_reference, load_reference
from nrchbench.report.tables import Leaderboard, leaderboard, load_records, render, to_csv, to_latex, to_markdown

_PLOTS = ("plot_map_vs_noise", "plot_selection", "plot_loss_histogram", "plot_pr_curves", "plot_all")

__all__ = [
    "Comparison",
    "Leaderboard",
    "compare_with_reference",
    "leaderboard",
    "load_records",
    "load_reference",
    "render",
    "to_csv",
    "to_latex",
    "to_markdown",
    *_PLOTS,
]


def __getattr__(name: str) -> Any:
    # matplotlib is imported only when a plot is asked for
    if name in _PLOTS:
        from nrchbench.report import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
