"""Leaderboards from result records (pure functions of typed :class:`~nrchbench.records.Record`).

One table per data-and-protocol identity (:mod:`nrchbench.report.identity`), direction and
metric; rows are method configurations, columns the (code length, noise rate) grid of the
records, cells mean ± sample std over seeds with significance marks (:mod:`.stats`). A
layout pivots them (methods × bits × noise; one table per code length or per noise rate;
transposed) without changing a number.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nrchbench.errors import ConfigError
from nrchbench.provenance import versions_note
from nrchbench.records import Record
from nrchbench.report.frame import (
    DIRECTIONS,
    SEED_KEYS,
    TRAINING_METRICS,
    is_score,
    metric_direction,
    metric_names,
    record_frame,
    select_records,
)
from nrchbench.report.identity import ROW_KEYS, TABLE_KEYS, TableIdentity, distinct_keys
from nrchbench.report.labels import parse_labels
from nrchbench.report.layout import CHANCE, by_strategy, parse_layout, pivot, row_labels
from nrchbench.report.render import Cell, View
from nrchbench.report.stats import ALPHA, MIN_SEEDS, aggregate, mark

log = logging.getLogger(__name__)

__all__ = ["Leaderboard", "leaderboard", "metric_direction"]  # metric_direction lives in .frame

# Metrics whose value under a random ranking is the mean fraction of relevant items (``chance``).
_CHANCE_METRICS = re.compile(r"^(map|map_tie|precision@\d+)$")


@dataclass
class Leaderboard:
    """One table: a data-and-protocol ``identity`` (direction and metric included).

    ``rows`` (index: row id) holds each method configuration's keys, ``label`` and
    ``invariant``; ``cells`` is long, one row per (row, bits, noise_rate) with ``mean``,
    ``std``, ``n``, ``ci_low``/``ci_high``, ``state``, ``mark``, ``p_vs_best`` (and
    ``p_vs_ref`` after :func:`.versus.against`); ``grid`` the (bits, noise rate) columns;
    ``chance`` the chance level per grid column.
    """

    identity: TableIdentity
    rows: pd.DataFrame
    cells: pd.DataFrame
    grid: list[tuple[int, float]]
    chance: dict[tuple[int, float], float]
    higher_is_better: bool
    significance: str
    usual_n: int
    failed: int = 0
    not_computed: int = 0
    duplicates: int = 0
    versions_note: str | None = None  # the records span code versions (PROTOCOL §5)
    heading: str = ""
    precision: int = 3
    frame: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    labels: dict[str, str] = field(default_factory=dict)  # display labels asked for (``--label``)
    versus: str = ""  # marks against this reference row instead of the best (:mod:`.versus`)

    # ----------------------------------------------------------------- words
    def rule(self) -> str:
        """How the marks were given (stated in every caption)."""
        if self.versus:
            untested = ""
            if (self.cells["mark"] == "untested").any():
                untested = "; (no test): fewer than 3 seeds shared with the reference, so no test was made"
            return (
                f"↑/↓: significantly better/worse than {self.versus} (two-sided paired t-test over seeds — same "
                f"seed, same noisy labels — p < {ALPHA}); no mark: the test cannot tell the difference from seed "
                f"noise (each column tests several rows: an occasional mark is expected by chance){untested}"
            )
        if self.significance == "paired-t":
            return (
                f"Bold: significantly best (one-sided paired t-test over seeds — same seed, same noisy labels — "
                f"p < {ALPHA} against every other ranked method); underlined (italic in Markdown): significantly "
                "second best; ≈: tied for best (the best mean and every method the test cannot separate from it)"
            )
        return (
            f"Bold: best mean, underlined (italic in Markdown): second best mean — fewer than {MIN_SEEDS} seeds, "
            "so no significance test"
        )

    def caption(self, ci: bool = False) -> str:
        seeds = f"{self.usual_n} seed{'s' if self.usual_n != 1 else ''}"
        spread = "mean [95% t-interval]" if ci else "mean ± std"
        return (
            f"{self.identity.what(self.higher_is_better)}; {spread} over {seeds}. Protocol: {self.identity.protocol()}"
        )

    def notes(self) -> list[str]:
        out = [self.rule() + "."]
        if self.rows["invariant"].any():
            out.append(
                "† noise-invariant (never sees labels): trained once per code length and seed, "
                "shown at every noise rate, not ranked."
            )
        n = self.cells.loc[self.cells["state"] == "ok", "n"]
        if (n != self.usual_n).any():
            out.append(f"(n=k): averaged over k seeds instead of {self.usual_n}.")
        if self.not_computed:
            out.append(
                f"not computed: {self.not_computed} successful run(s) lack {self.identity.metric} "
                "and have no saved codes to compute it from (rerun with --save-codes)."
            )
        if self.failed:
            out.append(f"{self.failed} failed run(s) not counted.")
        if len(self.cells) < len(self.rows) * len(self.grid):
            out.append("— : not run.")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate record(s) of the same spec ignored (newest kept).")
        if self.versions_note:
            out.append(self.versions_note[0].upper() + self.versions_note[1:] + ".")
        return out

    # ----------------------------------------------------------------- cells
    def _slots(self) -> pd.DataFrame:
        """Every (row, bits, noise_rate) of the grid with its :class:`Cell` (missing ones too)."""
        grid = pd.DataFrame(self.grid, columns=["bits", "noise_rate"])
        slots = pd.DataFrame({"row": self.rows.index}).merge(grid, how="cross")
        slots = slots.merge(self.cells, on=["row", "bits", "noise_rate"], how="left")
        slots["cell"] = [
            Cell(state="missing")
            if pd.isna(r.state)
            else Cell(r.mean, r.std, int(r.n), r.ci_low, r.ci_high, r.state, r.mark or "")
            for r in slots.itertuples()
        ]
        if self.chance:
            chance = pd.DataFrame(
                {
                    "row": CHANCE,
                    "bits": [b for b, _ in self.grid],
                    "noise_rate": [r for _, r in self.grid],
                    "cell": [
                        Cell(self.chance[c], state="ok", kind="chance") if c in self.chance else Cell()
                        for c in self.grid
                    ],
                }
            )
            slots = pd.concat([slots, chance], ignore_index=True)
        return slots[["row", "bits", "noise_rate", "cell"]]

    def views(
        self, rows: Sequence[str] = ("method",), columns: Sequence[str] = ("bits", "noise"), *, ci: bool = False
    ) -> list[View]:
        """The table in a layout (:mod:`.layout`): ``rows`` and ``columns`` take axes of
        ``method``, ``strategy``, ``bits``, ``noise``; an axis in neither splits it into one table
        per value (the chance row goes with the methods). Naming ``strategy`` makes ``method``
        the base method configuration and the strategy an axis of its own (``--columns
        strategy``: base methods × strategies); otherwise the strategy is part of each row."""
        r, c = parse_layout(rows, columns)
        slots = self._slots()
        if "method" not in {*r, *c}:
            slots = slots[slots["row"] != CHANCE]  # a chance level per split value: no table of its own
        labels = {**self.rows["label"].to_dict(), CHANCE: CHANCE}
        order = {k: i for i, k in enumerate([*self.rows.index, CHANCE])}
        orders, shows = {"method": order.__getitem__}, {"method": labels.__getitem__}
        notes = self.notes()
        if "method" not in {*r, *c}:
            notes.insert(
                1, "Marks compare the rows of one code length and noise rate across all these tables (one per method)."
            )
        if "strategy" in {*r, *c}:
            slots, orders, shows, empty = by_strategy(
                slots, self.rows, self.labels, spread_chance=bool({"strategy", "method"} & set(c))
            )
            if empty and "— : not run." not in notes:
                notes.append("— : not run.")
        out = []
        for suffix, wide in pivot(slots, r, c, orders, shows):
            words = ", ".join(suffix) if isinstance(suffix, tuple) else suffix
            out.append(
                View(
                    heading=self.heading + (f" · {words}" if words else ""),
                    caption=self.caption(ci),
                    table=wide,
                    notes=notes,
                    usual_n=self.usual_n,
                    precision=self.precision,
                    ci=ci,
                    label=self.latex_label(suffix),
                )
            )
        return out

    def latex_label(self, suffix: Any = "") -> str:
        t = self.identity
        parts = [Path(t.dataset).name, t.direction, t.metric, *t.slug_parts()]
        parts += list(suffix) if isinstance(suffix, tuple) else [suffix] if suffix else []
        return "tab:" + "-".join(re.sub(r"[^A-Za-z0-9@.=]+", "", str(p)) for p in parts if p != "")

    def long(self) -> pd.DataFrame:
        """Machine-readable: one row per cell of the grid (chance included) with every key."""
        slots = self._slots()
        rows = self.rows.reindex(slots["row"]).reset_index(drop=True)
        rows.loc[slots["row"].to_numpy() == CHANCE, ["method", "label", "invariant"]] = [CHANCE, CHANCE, False]
        cells = slots.merge(
            self.cells.reindex(columns=["row", "bits", "noise_rate", "p_vs_best", "p_vs_ref"]), how="left"
        )
        c = slots["cell"]
        return pd.DataFrame(
            {
                **{k: v for k, v in self.identity.as_dict().items()},
                **{k: rows[k] for k in ("method", "params", "strategy", "strategy_params", "label", "invariant")},
                "bits": slots["bits"],
                "noise_rate": slots["noise_rate"],
                "mean": [x.mean for x in c],
                "std": [x.std for x in c],
                "n": [x.n for x in c],
                "ci_low": [x.ci_low for x in c],
                "ci_high": [x.ci_high for x in c],
                "state": [x.state for x in c],
                "mark": [x.mark for x in c],
                "p_vs_best": cells["p_vs_best"],
                "versus": self.versus,
                "p_vs_ref": cells["p_vs_ref"],
                "significance": self.significance,
            }
        )


# --------------------------------------------------------------------------- building


def _directions(direction: str | Sequence[str]) -> list[str]:
    dirs = list(DIRECTIONS) if direction == "all" else [direction] if isinstance(direction, str) else list(direction)
    for d in dirs:
        if d not in DIRECTIONS:
            raise ConfigError(f"unknown direction {d!r}: expected one of i2t, t2i, avg or all")
    return dirs


def _build(
    frame: pd.DataFrame, identity: TableIdentity, higher: bool, grid: list, precision: int, labels
) -> Leaderboard:
    rows = frame.drop_duplicates(list(ROW_KEYS))[[*ROW_KEYS, "invariant"]]
    rows.index = pd.Index(["|".join(map(str, k)) for k in rows[list(ROW_KEYS)].itertuples(index=False)], name="row")
    rows = rows.assign(label=row_labels(rows, labels))
    rows = rows.sort_values("label", key=lambda s: s.str.casefold(), kind="stable")
    frame = frame.assign(row=["|".join(map(str, k)) for k in frame[list(ROW_KEYS)].itertuples(index=False)])
    cells = aggregate(frame, ["row", "bits", "noise_rate"])
    counts = Counter(cells.loc[cells["state"] == "ok", "n"])
    usual = max(counts, key=lambda k: (counts[k], k)) if counts else 0
    mode = "paired-t" if usual >= MIN_SEEDS else "mean"
    ranked = ~cells["row"].map(rows["invariant"]).astype(bool)
    cells = mark(cells, ["bits", "noise_rate"], ranked, higher, mode, precision)
    chance = {}
    if _CHANCE_METRICS.match(identity.metric):
        ok = frame[(frame["state"] == "ok") & frame["chance"].notna()]
        for (b, r), v in ok.groupby(["bits", "noise_rate"], dropna=False)["chance"].mean().items():
            chance[(int(b), _rate(r))] = float(v)
    used = frame.drop_duplicates("record")
    runs = used["state"]
    return Leaderboard(
        identity=identity,
        rows=rows,
        cells=cells,
        grid=grid,
        chance={c: chance[c] for c in grid if c in chance},
        higher_is_better=higher,
        significance=mode,
        usual_n=usual,
        failed=int((runs == "failed").sum()),
        not_computed=int((runs == "not computed").sum()),
        versions_note=versions_note(zip(used["code_version"], used["created"], strict=True)),
        precision=precision,
        frame=frame,
        labels=dict(labels),
    )


def _rate(r: Any) -> float:
    """A noise rate as a grid key: NaN (no rate: noise-invariant only) is always the one
    ``math.nan`` object, so sets and dicts see one key (NaN != NaN)."""
    r = float(r)
    return r if math.isfinite(r) else math.nan


def _grid(frame: pd.DataFrame, bits: Sequence[int] | None, rates: Sequence[float] | None) -> list[tuple[int, float]]:
    """The (bits, noise rate) pairs of the records — or the product of what was asked for."""
    present = {(int(b), _rate(r)) for b, r in zip(frame["bits"], frame["noise_rate"], strict=True)}
    if bits or rates:
        present = set(
            itertools.product(
                sorted(bits) if bits else sorted({b for b, _ in present}),
                sorted(map(float, rates)) if rates else sorted({r for _, r in present}),
            )
        )
    return sorted(present, key=lambda c: (c[0], -1.0 if not math.isfinite(c[1]) else c[1]))


def leaderboard(
    records: Iterable[Record],
    *,
    metric: str = "map",
    direction: str | Sequence[str] = "avg",
    dataset: str | None = None,
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    methods: Sequence[str] | None = None,
    bits: Sequence[int] | None = None,
    noise_rates: Sequence[float] | None = None,
    strategies: Sequence[str] | None = None,
    results_dir: str | Path | None = None,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    precision: int = 3,
    require: bool = True,
) -> list[Leaderboard]:
    """Leaderboards from typed records: one per data-and-protocol identity, direction and metric.

    Args:
        records: :class:`~nrchbench.records.Record` objects (``load_records(results_dir)``).
        metric: any scalar metric key :func:`nrchbench.metrics.metric_info` knows (``map``,
            ``map_tie``, ``map@50``, ``recall@1000``, ``hamming_precision@2``, ...).
        direction: ``i2t``, ``t2i``, ``avg``, ``all`` or a list.
        dataset, preset, split, noise_model, methods: keep only these (None: all; one table
            per distinct identity). Noise-invariant runs join every noise model.
        bits, noise_rates: keep only these, and make the columns exactly their product.
        strategies: keep only runs under these training strategies (``none``: the base
            methods as they are).
        results_dir: where the records live; a record lacking ``metric`` is evaluated again
            from its saved codes there (None: never).
        labels: display labels for registry names (``{"nrch-nogmm": "NRCH w/o GMM"}``).
        precision: decimals shown.
        require: refuse a metric that no record has (False: show its cells as "not computed").

    Raises:
        ConfigError: an unknown or descriptive metric, an unknown direction, or a metric that
            no record has (nor can compute from saved codes).
    """
    higher = metric_direction(metric)
    dirs = _directions(direction)
    records = select_records(
        records, dataset=dataset, preset=preset, split=split, methods=methods, bits=bits, strategies=strategies
    )
    frame = record_frame(records, metric, dirs, results_dir=results_dir)
    if metric in TRAINING_METRICS:  # rows only for the methods and strategies that select or weight
        frame = frame[frame["state"] != "not computed"]
    if noise_model is not None:
        frame = frame[frame["noise_model"].isin([noise_model, ""])]
    if noise_rates:
        frame = frame[frame["noise_rate"].round(9).isin([round(float(r), 9) for r in noise_rates])]
    computed = frame["state"].isin(["ok", "undefined"]).any()
    if require and not computed and (frame["state"] == "not computed").any():
        have = ", ".join(m for m in metric_names(records) if is_score(m)) or "none"
        raise ConfigError(
            f"no record has metric {metric!r} and none has saved codes to compute it from "
            f"(the records have: {have}); rerun with --save-codes or table one of those"
        )
    frame = frame.sort_values("created", kind="stable")
    unique = frame.drop_duplicates(SEED_KEYS, keep="last")
    dropped = set(frame["record"]) - set(unique["record"])
    tables = []
    for key, part in unique.groupby([*TABLE_KEYS, "direction"], sort=True):
        identity = TableIdentity.from_mapping(
            {**dict(zip([*TABLE_KEYS, "direction"], key, strict=True)), "metric": metric}
        )
        grid = _grid(part, bits, noise_rates)
        board = _build(part, identity, higher, grid, precision, parse_labels(labels))
        board.duplicates = len(dropped & set(frame.loc[_same_table(frame, key), "record"]))
        tables.append(board)
    distinct = distinct_keys([t.identity for t in tables])
    for t in tables:
        t.heading = t.identity.heading(distinct)
        if t.versions_note:
            log.warning("%s: %s", t.heading, t.versions_note)
    tables.sort(key=_order)
    return tables


def _order(t: Leaderboard) -> tuple:
    ident = t.identity.as_dict()
    return (*(str(ident[k]) for k in TABLE_KEYS), DIRECTIONS.index(t.identity.direction))


def _same_table(frame: pd.DataFrame, key: tuple) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for k, v in zip([*TABLE_KEYS, "direction"], key, strict=True):
        mask &= frame[k] == v
    return mask
