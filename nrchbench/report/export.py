"""Many tables to one text: CSV (long form), Markdown or LaTeX."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

from nrchbench.errors import ConfigError
from nrchbench.report.render import View, to_latex, to_markdown

__all__ = ["FORMATS", "render", "to_csv"]

FORMATS = ("csv", "markdown", "latex")


class Table(Protocol):
    """What renders: a leaderboard, a robustness summary or a comparison."""

    def views(self, rows: Sequence[str] = ..., columns: Sequence[str] = ..., *, ci: bool = ...) -> list[View]: ...

    def long(self) -> pd.DataFrame: ...


def to_csv(tables: Sequence[Table], path: str | Path | None = None) -> str:
    """The long forms of ``tables`` stacked into one CSV (``\\n`` line ends), written to ``path`` if given."""
    df = pd.concat([t.long() for t in tables], ignore_index=True) if tables else pd.DataFrame()
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    if path is not None:
        Path(path).write_text(buf.getvalue(), encoding="utf-8")
    return buf.getvalue()


def render(
    tables: Sequence[Table],
    fmt: str,
    *,
    rows: Sequence[str] | str = ("method",),
    columns: Sequence[str] | str = ("bits", "noise"),
    ci: bool = False,
    fit: str = "none",
    width: float = 345.0,
) -> str:
    """``tables`` as ``csv`` (long form, every number and key), ``markdown`` or ``latex``.

    ``rows``/``columns``: the layout (see :meth:`~nrchbench.report.leaderboard.Leaderboard.views`);
    ``ci``: 95% t-intervals instead of ± std; ``fit``/``width``: see :func:`~nrchbench.report.render.to_latex`.
    """
    if fmt == "csv":
        return to_csv(tables)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    views: list[View] = [v for t in tables for v in t.views(rows, columns, ci=ci)]
    if fmt == "markdown":
        return "\n".join(to_markdown(v) for v in views)
    return "\n".join(to_latex(v, fit=fit, width=width) for v in views)
