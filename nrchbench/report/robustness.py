"""The robustness summary of a leaderboard: how much of its score a method keeps as noise grows.

Per method, code length and seed: **AUC**, the area under the metric-versus-noise-rate curve
over the table's noise rates (trapezoid), divided by the rate span — so a flat curve scores
its value and methods compare on the metric's own scale; and **drop**, the relative fall from
the lowest to the highest rate, (v_low − v_high) / v_low, shown in %. Cells are the mean ± std
over seeds, marked with the leaderboard's significance rule (AUC: the metric's direction;
drop: the opposite). Noise-invariant methods have a drop of 0 by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from nrchbench.report.labels import metric_label
from nrchbench.report.leaderboard import Leaderboard
from nrchbench.report.render import Cell, View
from nrchbench.report.stats import aggregate, mark, robustness_values

__all__ = ["Robustness", "robustness"]

MEASURES = {"auc": "AUC", "drop": "drop (%)"}


@dataclass
class Robustness:
    """The robustness summary of ``board``: ``cells`` has one row per (row, bits, measure)."""

    board: Leaderboard
    cells: pd.DataFrame
    rates: dict[int, list[float]]

    @property
    def heading(self) -> str:
        return f"{self.board.heading} · robustness"

    def caption(self) -> str:
        b = self.board
        spans = sorted({tuple(r) for r in self.rates.values()})
        rates = "; ".join(", ".join(f"{r:g}" for r in s) for s in spans)
        return (
            f"Robustness of {b.identity.what(b.higher_is_better)} to label noise: AUC = area under the "
            f"{metric_label(b.identity.metric)}-vs-noise-rate curve over η ∈ {{{rates}}} (trapezoid, divided by the "
            "rate span); drop = relative fall from the lowest to the highest rate, in %. Per seed, then mean ± std "
            f"over seeds. Protocol: {b.identity.protocol()}"
        )

    def notes(self) -> list[str]:
        out = [self.board.rule() + " (AUC: higher is better; drop: lower is better)."]
        if self.board.rows["invariant"].any():
            out.append("† noise-invariant (never sees labels): the same run at every rate, not ranked.")
        return out

    def view(self) -> View:
        b = self.board
        kinds = {"auc": "score", "drop": "percent"}
        slots = pd.DataFrame({"row": b.rows.index}).merge(
            pd.DataFrame([(bits, m) for bits in sorted(self.rates) for m in MEASURES], columns=["bits", "measure"]),
            how="cross",
        )
        slots = slots.merge(self.cells, on=["row", "bits", "measure"], how="left")
        slots["cell"] = [
            Cell(kind=kinds[r.measure])
            if pd.isna(r.state)
            else Cell(r.mean, r.std, int(r.n), r.ci_low, r.ci_high, r.state, r.mark or "", kind=kinds[r.measure])
            for r in slots.itertuples()
        ]
        wide = slots.pivot(index="row", columns=["bits", "measure"], values="cell")
        wide = wide.loc[list(b.rows.index), [(bits, m) for bits in sorted(self.rates) for m in MEASURES]]
        wide.index = pd.Index(b.rows["label"], name="method")
        wide.columns = pd.MultiIndex.from_tuples([(f"{bits} bits", MEASURES[m]) for bits, m in wide.columns])
        return View(
            heading=self.heading,
            caption=self.caption(),
            table=wide,
            notes=self.notes(),
            usual_n=b.usual_n,
            precision=b.precision,
            label=b.latex_label("robustness"),
        )

    def views(self, *_: object, ci: bool = False) -> list[View]:
        """The summary as one table (layouts do not apply: rows methods, columns bits × measure)."""
        view = self.view()
        view.ci = ci
        return [view]

    def long(self) -> pd.DataFrame:
        rows = self.board.rows.reindex(self.cells["row"]).reset_index(drop=True)
        c = self.cells.reset_index(drop=True)
        return pd.DataFrame(
            {
                **self.board.identity.as_dict(),
                **{k: rows[k] for k in ("method", "params", "strategy", "strategy_params", "label", "invariant")},
                "bits": c["bits"],
                "noise_rates": [" ".join(f"{r:g}" for r in self.rates[b]) for b in c["bits"]],
                "measure": c["measure"],
                "mean": c["mean"],
                "std": c["std"],
                "n": c["n"],
                "ci_low": c["ci_low"],
                "ci_high": c["ci_high"],
                "mark": c["mark"],
                "significance": self.board.significance,
            }
        )


def robustness(board: Leaderboard) -> Robustness | None:
    """The robustness summary of ``board`` (None when no code length has two noise rates)."""
    rates = {}
    for bits in sorted({b for b, _ in board.grid}):
        rs = sorted(r for b, r in board.grid if b == bits and math.isfinite(r))
        if len(rs) >= 2:
            rates[bits] = rs
    if not rates:
        return None
    vals = robustness_values(board.frame, rates, ["row"])
    long = vals.melt(id_vars=["row", "bits", "seed"], value_vars=list(MEASURES), var_name="measure")
    long["state"] = ["ok" if math.isfinite(v) else "undefined" for v in long["value"]]
    cells = aggregate(long, ["row", "bits", "measure"])
    ranked = ~cells["row"].map(board.rows["invariant"]).astype(bool)
    higher = (cells["measure"] == "auc") == board.higher_is_better
    cells = mark(cells, ["bits", "measure"], ranked, higher, board.significance, board.precision)
    return Robustness(board=board, cells=cells, rates=rates)
