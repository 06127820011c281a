"""Rendering tables: cells as text, Markdown, and LaTeX through pandas' ``Styler``.

A :class:`View` is one printable table: a DataFrame of :class:`Cell` objects with display
labels on both axes, a heading, a caption and notes. Tables, robustness summaries and
comparisons all render through here. LaTeX escaping is pandas' own (``Styler``'s
``escape="latex"``); the only LaTeX written here is the typography of our own symbols
(±, ≈, †, η, …) for pdflatex, and booktabs rules come from ``Styler.to_latex``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from nrchbench.errors import ConfigError

__all__ = ["FITS", "Cell", "View", "latex_text", "to_latex", "to_markdown"]

DASH = "—"
FITS = ("none", "resize", "split")
#: Our own symbols as pdflatex typesets them (applied after pandas' escaping).
_LATEX_SYMBOLS = {
    "±": r"$\pm$",
    "≈": r"$\approx$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "†": r"\textsuperscript{\dag}",
    "η": r"$\eta$",
    "α": r"$\alpha$",
    "→": r"$\to$",
    "—": "---",
    "–": "--",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "Δ": r"$\Delta$",
    "·": r"$\cdot$",
    "<": r"$<$",
    ">": r"$>$",
}
_SYMBOLS = re.compile("|".join(map(re.escape, _LATEX_SYMBOLS)))
_MARK_SUFFIX = {"tie": " ≈", "better": " ↑", "worse": " ↓", "reference": " (ref)", "untested": " (no test)"}
_STATE_TEXT = {"missing": DASH, "failed": "failed", "not computed": "not computed", "undefined": "undefined"}


@dataclass(frozen=True)
class Cell:
    """One table cell. ``kind``: ``score`` (mean ± std), ``chance`` (a level), ``percent``
    (a fraction shown in %), ``compare`` (ours / reference (Δ)) or ``text``."""

    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    ci_low: float = math.nan
    ci_high: float = math.nan
    state: str = "missing"
    mark: str = ""
    kind: str = "score"
    ref: float = math.nan
    text: str = ""

    def render(self, style: str, *, precision: int = 3, ci: bool = False, usual_n: int = 0) -> str:
        """The cell as ``text``, ``markdown`` or ``latex`` (bold/underline in LaTeX come from the Styler)."""
        if self.kind == "text":
            return self.text
        p = 1 if self.kind == "percent" else precision
        scale = 100.0 if self.kind == "percent" else 1.0

        def num(v: float) -> str:
            text = f"{scale * v:.{p}f}"
            return text.removeprefix("-") if float(text) == 0 else text  # no "-0.0"

        if self.kind == "compare":
            ours = num(self.mean) if self.state == "ok" else _STATE_TEXT[self.state]
            ref = num(self.ref) if math.isfinite(self.ref) else DASH
            txt = f"{ours} / {ref}"
            if self.state == "ok" and math.isfinite(self.ref):
                txt += f" ({scale * (self.mean - self.ref):+.{p}f})"
            return txt + (f" (n={self.n})" if self.state == "ok" and self.n != usual_n else "")
        if self.state != "ok":
            return _STATE_TEXT[self.state]
        if self.kind == "chance":
            return num(self.mean)
        core = num(self.mean)
        if ci and math.isfinite(self.ci_low):
            core += f" [{num(self.ci_low)}, {num(self.ci_high)}]"
        elif math.isfinite(self.std):
            core += f" ± {num(self.std)}"
        if style == "markdown" and self.mark in ("best", "second"):
            core = f"**{core}**" if self.mark == "best" else f"_{core}_"
        if self.mark in _MARK_SUFFIX:
            core += _MARK_SUFFIX[self.mark]
        if self.n != usual_n:
            core += f" (n={self.n})"
        return core


@dataclass
class View:
    """One printable table (see the module docstring). ``table`` holds :class:`Cell` objects;
    its index and columns hold display labels (tuples for several levels)."""

    heading: str
    caption: str
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    usual_n: int = 0
    precision: int = 3
    ci: bool = False
    label: str = "tab:leaderboard"

    def text(self, style: str) -> pd.DataFrame:
        """The cells as strings of ``style``."""
        return self.table.map(lambda c: c.render(style, precision=self.precision, ci=self.ci, usual_n=self.usual_n))


# --------------------------------------------------------------------------- Markdown


def _md(s: object) -> str:
    return str(s).replace("|", "\\|")


def _flat(label: object) -> str:
    return ", ".join(str(x) for x in label if x != "") if isinstance(label, tuple) else str(label)


def to_markdown(view: View) -> str:
    """A Markdown table under a ``###`` heading, the caption in italics and the notes below."""
    cells = view.text("markdown")
    index_names = [n or "" for n in view.table.index.names]
    headers = [*index_names, *(_flat(c) for c in cells.columns)]
    lines = [f"### {view.heading}", "", f"*{view.caption}*", ""]
    lines.append("| " + " | ".join(_md(h) for h in headers) + " |")
    text = [all(c.kind == "text" for c in view.table[col]) for col in view.table.columns]
    lines.append("|" + "|".join([*([":---"] * len(index_names)), *(":---" if t else "---:" for t in text)]) + "|")
    for label, row in cells.iterrows():
        labels = label if isinstance(label, tuple) else (label,)
        lines.append("| " + " | ".join([*(_md(x) for x in labels), *row.tolist()]) + " |")
    lines.append("")
    lines.extend(f"{note}  " for note in view.notes)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- LaTeX


def latex_escape(text: str) -> str:
    """``text`` escaped for LaTeX by pandas (the escaping ``Styler.format(escape="latex")`` applies)."""
    one = pd.DataFrame([[str(text)]]).style.format(escape="latex").hide(axis=0).hide(axis=1)
    return one.to_latex().splitlines()[1].removesuffix(" \\\\")


def latex_text(text: object) -> str:
    """Plain text (a label, a caption) as LaTeX: escaped by pandas, our symbols typeset."""
    return _SYMBOLS.sub(lambda m: _LATEX_SYMBOLS[m[0]], latex_escape(str(text)))


def _symbols(text: object) -> str:
    return _SYMBOLS.sub(lambda m: _LATEX_SYMBOLS[m[0]], str(text))


def _width_pt(view: View, columns: Sequence[object] | None = None) -> float:
    """Rough typeset width of ``view`` (10 pt type: ~4.4 pt per character, 12 pt of padding per column)."""
    cells = view.text("text")
    cols = list(cells.columns) if columns is None else list(columns)
    labels = [_flat(i) for i in cells.index]
    width = 4.4 * max(map(len, labels), default=6) + 12
    for c in cols:
        header = max(len(str(x)) for x in (c if isinstance(c, tuple) else (c,)))
        width += 4.4 * max([header, *map(len, cells[c])]) + 12
    return width


def _split(view: View, width: float) -> list[View]:
    """``view`` cut into consecutive column groups that each fit ``width`` pt, keeping the
    groups of the outer column level (e.g. one code length) together where they fit."""
    cols = list(view.table.columns)
    outer = list(dict.fromkeys(c[0] if isinstance(c, tuple) else c for c in cols))
    groups = [[c for c in cols if (c[0] if isinstance(c, tuple) else c) == o] for o in outer]
    units = [[c] for g in groups for c in g] if any(_width_pt(view, g) > width for g in groups) else groups
    parts: list[list[object]] = [[]]
    for unit in units:
        if parts[-1] and _width_pt(view, parts[-1] + unit) > width:
            parts.append([])
        parts[-1].extend(unit)
    if len(parts) == 1:
        return [view]
    return [
        replace(
            view,
            heading=f"{view.heading} (part {i} of {len(parts)})",
            table=view.table[part],
            label=f"{view.label}-{i}",
        )
        for i, part in enumerate(parts, start=1)
    ]


def _one_latex(view: View, fit: str) -> str:
    cells = view.table
    styler = cells.style.format(
        lambda c: _symbols(c.render("latex", precision=view.precision, ci=view.ci, usual_n=view.usual_n))
    )
    styler = styler.format_index(_symbols, axis=0, escape="latex").format_index(_symbols, axis=1, escape="latex")
    props = cells.map(lambda c: {"best": "textbf:--rwrap;", "second": "underline:--rwrap;"}.get(c.mark, ""))
    styler = styler.apply(lambda _: props, axis=None)
    styler = styler.hide(axis=1, names=True).hide(axis=0, names=True)
    caption = latex_text(" ".join([view.heading + ".", view.caption + ".", *view.notes]))
    tex = styler.to_latex(
        column_format="l" * cells.index.nlevels + "r" * len(cells.columns),
        hrules=True,
        multicol_align="c",
        multirow_align="naive",  # no \\multirow: booktabs is the only package needed
        caption=caption,
        label=view.label,
        position_float="centering",
        environment="table",
    )
    if fit == "resize":  # needs \usepackage{graphicx}
        tex = tex.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}", 1)
        tex = tex.replace("\\end{tabular}\n", "\\end{tabular}%\n}\n", 1)
    return tex


def to_latex(view: View, *, fit: str = "none", width: float = 345.0) -> str:
    """booktabs ``table`` environment(s) (needs ``\\usepackage{booktabs}``).

    Args:
        fit: ``none``; ``resize`` (scale the tabular to ``\\linewidth``; needs graphicx);
            ``split`` (several tables whose estimated width fits ``width`` pt).
        width: target width in pt for ``split`` (345 pt: the ``article`` class text width;
            about 240 pt for one column of a two-column paper).
    """
    if fit not in FITS:
        raise ConfigError(f"--fit {fit!r}: expected one of {', '.join(FITS)}")
    views = _split(view, width) if fit == "split" else [view]
    return "\n".join(_one_latex(v, fit) for v in views)
