"""Our numbers beside a published reference (the NRCH paper), in the leaderboard layout.

The reference is package data (``nrchbench/reference/nrch_mm24.csv``, loaded with
:mod:`importlib.resources`) or any CSV with the same columns. Every output states that the
paper selected NRCH's checkpoint on the query set and used the official unseeded noise
generator, while nrchbench reports the last epoch with seeded noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nrchbench.errors import ConfigError
from nrchbench.report.tables import (
    DASH,
    Leaderboard,
    _booktabs,
    _latex_columns,
    _latex_escape,
    _latex_label,
    _long_csv,
    _markdown_table,
    leaderboard,
)

REFERENCES = {"paper": "nrch_mm24.csv"}
REFERENCE_COLUMNS = ("dataset", "method", "direction", "noise_model", "noise_rate", "bits", "map")
PAPER_PROTOCOL_NOTE = (
    "Paper (Wang et al., ACM MM 2024): NRCH's checkpoint is the best of 5 evaluations on the query "
    "set (model selection on the test queries), label noise from the official unseeded generator, "
    "VGG-19 fc7 image / bag-of-words text features. Ours: the last epoch, seeded noise, nothing "
    "selected on the query set. Cells: ours / paper (Δ = ours − paper)."
)


def load_reference(reference: str | Path = "paper") -> pd.DataFrame:
    """A reference table: ``"paper"`` (the NRCH paper's published mAP, package data) or a CSV path.

    Raises:
        ConfigError: if the name is unknown, the file is missing or its columns are wrong.
    """
    name = str(reference)
    if name in REFERENCES:
        with resources.files("nrchbench.reference").joinpath(REFERENCES[name]).open("r", encoding="utf-8") as fh:
            ref = pd.read_csv(fh)
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                f"unknown reference {name!r}: expected one of {', '.join(REFERENCES)} or a CSV file "
                f"with columns {','.join(REFERENCE_COLUMNS)}"
            )
        ref = pd.read_csv(path)
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise ConfigError(
            f"reference {name!r} lacks column(s) {', '.join(missing)}: expected {','.join(REFERENCE_COLUMNS)}"
        )
    ref["noise_rate"] = ref["noise_rate"].astype(float)
    ref["bits"] = ref["bits"].astype(int)
    ref["map"] = ref["map"].astype(float)
    return ref


@dataclass
class Comparison:
    """One leaderboard of ours beside the reference: ``paper`` and ``diff`` align with ``ours.mean``."""

    ours: Leaderboard
    paper: pd.DataFrame
    diff: pd.DataFrame
    reference: str = "paper"
    notes: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:  # dataset, direction, metric, preset, ... of ours
        if name in ("dataset", "direction", "metric", "preset", "split", "selection", "noise_model"):
            return getattr(self.ours, name)
        raise AttributeError(name)

    @property
    def title(self) -> str:
        return f"{self.ours.title} — ours vs {self.reference}"

    @property
    def caption(self) -> str:
        b = self.ours
        seeds = f"{b.usual_n} seed{'s' if b.usual_n != 1 else ''}"
        return (
            f"{b.dataset}, {b.direction}, {b.metric}: ours (preset {b.preset}, split {b.split}, noise model "
            f"{b.noise_model}, selection {b.selection}, mean over {seeds}) vs {self.reference}"
        )

    def cells(self, style: str = "text") -> pd.DataFrame:
        """Strings ``ours / paper (Δ)`` (``—`` where a side is missing)."""
        b = self.ours
        p = b.precision
        data = {}
        for col in b.mean.columns:
            column = []
            for method in b.mean.index:
                n = int(b.n.loc[method, col])
                ours = DASH if n == 0 else f"{b.mean.loc[method, col]:.{p}f}"
                if n and n != b.usual_n:
                    ours += f" (n={n})"
                ref = self.paper.loc[method, col]
                paper = DASH if not np.isfinite(ref) else f"{ref:.{p}f}"
                d = self.diff.loc[method, col]
                txt = f"{ours} / {paper}" + (f" ({d:+.{p}f})" if np.isfinite(d) else "")
                column.append(txt)
            data[col] = column
        df = pd.DataFrame(data, index=[b._label(m) for m in b.mean.index], columns=b.mean.columns)
        df.index.name = "method"
        return df

    @property
    def table(self) -> pd.DataFrame:
        return self.cells()

    def long(self) -> pd.DataFrame:
        b = self.ours.long()
        b = b[b["method"] != "chance"].rename(columns={"mean": "ours_mean", "std": "ours_std"})
        b["paper"] = [self.paper.loc[m, (bits, r)] for m, bits, r in zip(b["method"], b["bits"], b["noise_rate"])]
        b["diff"] = [self.diff.loc[m, (bits, r)] for m, bits, r in zip(b["method"], b["bits"], b["noise_rate"])]
        b["reference"] = self.reference
        return b.reset_index(drop=True)

    def to_csv(self, path: str | Path | None = None) -> str:
        return to_csv([self], path)

    def to_markdown(self) -> str:
        return _markdown_table(self.title, self.caption, self.cells(), self.notes)

    def to_latex(self, label: str | None = None) -> str:
        """A booktabs LaTeX table (pandas Styler), the protocol note in the caption."""
        b = self.ours
        cells = self.cells().apply(lambda col: col.map(_latex_escape))
        cells.index = pd.Index(
            [_latex_escape(m) + ("\\textsuperscript{\\dag}" if m in b.noise_invariant else "") for m in b.mean.index]
        )
        cells.columns = _latex_columns(cells.columns)
        caption = " ".join(_latex_escape(t) for t in [self.caption + ".", *self.notes])
        caption = caption.replace(_latex_escape("†"), "\\textsuperscript{\\dag}")
        return _booktabs(cells.style, len(cells.columns), caption, label or _latex_label(b) + "-vs-" + self.reference)


def compare_with_reference(
    records: Iterable[Mapping[str, Any]],
    reference: str | Path = "paper",
    *,
    dataset: str | None = None,
    direction: str | Sequence[str] = "avg",
    preset: str | None = None,
    split: str | None = None,
    precision: int = 3,
) -> list[Comparison]:
    """Our mAP beside the reference's, for the datasets and directions present in both.

    Args:
        records: result records.
        reference: ``"paper"`` (package data) or a CSV path with the reference columns.
        dataset, preset, split: filters as in :func:`~nrchbench.report.tables.leaderboard`.
        direction: ``i2t``, ``t2i``, ``avg`` or ``all``.
        precision: decimals shown.

    Returns:
        One :class:`Comparison` per leaderboard of ours that the reference covers (ours' rows
        and columns; the reference value is NaN where it has none).
    """
    ref = load_reference(reference)
    ref_name = reference if isinstance(reference, str) and reference in REFERENCES else Path(reference).name
    out: list[Comparison] = []
    for model in sorted(ref["noise_model"].dropna().unique()):
        boards = leaderboard(
            records,
            dataset=dataset,
            direction=direction,
            metric="map",
            preset=preset,
            split=split,
            noise_model=model,
            precision=precision,
        )
        for b in boards:
            if b.noise_model not in (model, None):
                continue
            sub = ref[(ref["dataset"] == b.dataset) & (ref["direction"] == b.direction) & (ref["noise_model"] == model)]
            if sub.empty:
                continue
            paper = pd.DataFrame(np.nan, index=b.mean.index, columns=b.mean.columns)
            for method in b.mean.index:
                rows = sub[sub["method"] == method]
                for bits, rate in b.mean.columns:
                    hit = rows[rows["bits"] == bits]
                    if not (isinstance(rate, float) and math.isnan(rate)):
                        hit = hit[np.isclose(hit["noise_rate"], rate)]
                    if len(hit):
                        paper.loc[method, (bits, rate)] = float(hit["map"].iloc[0])
            if not np.isfinite(paper.to_numpy(dtype=float)).any():
                continue
            notes = [PAPER_PROTOCOL_NOTE]
            if b.split not in (None, "nrch"):
                notes.append(f"Our split rule is {b.split!r}; the paper used the contiguous 'nrch' split.")
            if b.selection != "last-epoch":
                notes.append(f"Our checkpoint selection is {b.selection!r}, not the last epoch.")
            notes.extend(b.notes_list(highlight=False))
            out.append(Comparison(ours=b, paper=paper, diff=b.mean - paper, reference=str(ref_name), notes=notes))
    return out


def to_csv(comparisons: Sequence[Comparison], path: str | Path | None = None) -> str:
    return _long_csv([c.long() for c in comparisons], path)


def render(comparisons: Sequence[Comparison], fmt: str) -> str:
    """``csv``, ``markdown`` or ``latex`` text of the comparisons."""
    if fmt == "csv":
        return to_csv(comparisons)
    if fmt == "markdown":
        return "\n".join(c.to_markdown() for c in comparisons)
    if fmt == "latex":
        return "\n".join(c.to_latex() for c in comparisons)
    raise ConfigError(f"unknown format {fmt!r}: expected csv, markdown or latex")
