"""What every figure shares: paper-column size and fonts, colours per method, legends outside
the axes, and regular file names (one folder per dataset, parts in one order).

matplotlib is used through its object API and the Agg canvas (no pyplot, no global backend
switch), with the style applied per figure (``matplotlib.rc_context``), so plotting is safe in
any process and leaves matplotlib's global state alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nrchbench.report.identity import TableIdentity
from nrchbench.report.labels import dataset_name

__all__ = ["COLUMN_WIDTH", "FORMATS", "Palette", "figure", "legend_below", "save", "stem"]

FORMATS = ("png", "pdf")
#: One column of a two-column paper, in inches: figures are drawn at this width, so their
#: fonts (7–8 pt) print at the size they are set to.
COLUMN_WIDTH = 3.3
STYLE = {
    "font.size": 7.5,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable, and accepted by paper submission systems
}


@contextmanager
def figure(height: float, width: float = COLUMN_WIDTH) -> Iterator[Figure]:
    """A constrained-layout :class:`Figure` of ``width`` × ``height`` inches in the paper style."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


class Palette:
    """One colour per label, the same in every figure of a call (sorted labels → tab10, tab20)."""

    def __init__(self, labels: Iterable[str]) -> None:
        names = sorted(set(labels), key=str.casefold)
        cmap = mpl.colormaps["tab10" if len(names) <= 10 else "tab20"]
        self.colors = {name: cmap(i % cmap.N) for i, name in enumerate(names)}

    def __call__(self, label: str) -> Any:
        return self.colors.get(label, "black")


def legend_below(fig: Figure, axes: Sequence[Any], ncols: int = 2, order: Sequence[str] = ()) -> None:
    """One legend for the figure, outside and below the axes (never over a line); entries
    de-duplicated across panels, in ``order`` (then in order of first appearance)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    rank = {label: i for i, label in enumerate(order)}
    entries = dict(sorted(entries.items(), key=lambda e: rank.get(e[0], len(rank))))
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=ncols, frameon=False)


def stem(
    kind: str,
    identity: TableIdentity,
    *,
    what: str | None = None,
    method: str | None = None,
    bits: int | None = None,
    rate: float | None = None,
    seed: int | None = None,
) -> str:
    """``<kind>[_<what>][_<method>][_<bits>bits]_<preset>_<split>_<noise model>[-<rate>][_<extras>][_seed<s>]``."""
    parts = [kind, what, method, None if bits is None else f"{bits}bits", *identity.slug_parts(rate)]
    parts.append(None if seed is None else f"seed{seed}")
    return "_".join(re.sub(r"[^A-Za-z0-9@.=+-]+", "-", str(p)) for p in parts if p)


def save(fig: Figure, out_dir: str | Path, identity: TableIdentity, name: str, formats: Sequence[str]) -> list[Path]:
    """``fig`` as ``<out_dir>/<dataset>/<name>.<fmt>`` for each format; returns the paths."""
    folder = Path(out_dir) / re.sub(r"[^A-Za-z0-9._+-]", "_", dataset_name(identity.dataset))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with mpl.rc_context(STYLE):  # pdf.fonttype is read when saving
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            # no creation date: the same records give the same bytes (committed figures do not churn)
            meta = {"CreationDate": None} if fmt == "pdf" else {}
            fig.savefig(path, format=fmt, dpi=300, bbox_inches="tight", pad_inches=0.02, metadata=meta)
            paths.append(path)
    return paths
