"""Leaderboard tables from result records (pure functions of records).

One table per (dataset, direction, metric) and per protocol key (preset, split rule, noise
model): tables never mix those silently. Rows are methods plus a ``chance`` row, columns are
code length × noise rate, cells are mean ± sample std (ddof=1) over seeds. A cell whose seed
count differs from the table's usual count shows ``(n=k)``; a cell with no successful run
shows ``—``. Only records with ``status == "ok"`` count; failed ones are counted in a footnote.
Noise-invariant methods (``spec.noise_invariant``) are trained once per (dataset, bits,
seed) and their value is repeated in every noise column of that code length, marked with †.
Best and second best per column are bold and underlined, reading the metric's direction.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nrchbench.errors import ConfigError, NrchbenchError

logger = logging.getLogger(__name__)

DIRECTIONS = ("i2t", "t2i", "avg")
DASH = "—"
DAGGER = "†"
CHANCE = "chance"
# Metric keys of a direction dict that are not scores to rank.
_NON_SCORE_KEYS = {"chance", "num_queries", "num_queries_no_relevant", "pr_curve", "bits", "db_size"}
_FALLBACK_METRICS = {
    "map": "mAP@all (stable tie order)",
    "map_tie": "tie-aware mAP@all",
    r"map@\d+": "mAP@k",
    r"precision@\d+": "precision@k",
}
# Metrics whose value under a random ranking equals metrics.<dir>.chance (expected fraction
# of relevant database items); map@k is normalised differently, so it gets no chance row.
_CHANCE_METRICS = re.compile(r"^(map|map_tie|precision@\d+)$")

NOISE_INVARIANT_NOTE = (
    "† noise-invariant (does not use labels): trained once per (dataset, bits, seed) and not ranked; "
    "the same value is repeated in every noise column."
)


# --------------------------------------------------------------------------- records


def load_records(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every valid record under ``results_dir`` as its JSON dict (see :func:`nrchbench.records.load_records`)."""
    from nrchbench.records import load_records as _load

    return [r.to_dict() for r in _load(results_dir)]


def require_records(records: Sequence[Mapping[str, Any]], results_dir: str | Path | None = None) -> None:
    """Raise a one-line :class:`NrchbenchError` when there are no records."""
    if not records:
        where = f"{Path(results_dir) / 'runs'}/**/*.json" if results_dir is not None else "the given records"
        raise NrchbenchError(
            f"no result records found in {where}; run `nrchbench run` or `nrchbench sweep` first, "
            "or point --results at the directory they wrote"
        )


# --------------------------------------------------------------------------- metrics


def metric_higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (from ``nrchbench.metrics`` if available).

    Raises:
        ConfigError: if the metric is unknown to both ``nrchbench.metrics`` and the fallback table.
    """
    info = None
    try:
        from nrchbench.metrics import metric_info  # type: ignore[attr-defined]
    except ImportError:
        metric_info = None
    if metric_info is not None:
        try:
            info = metric_info(metric)
        except Exception:
            info = None
    if info is not None:
        hib = _parse_direction(info)
        if hib is not None:
            return hib
        raise ConfigError(
            f"metric {metric!r} is descriptive, not a score to rank: use map, map_tie, map@<k> or precision@<k>"
        )
    if any(re.fullmatch(pat, metric) for pat in _FALLBACK_METRICS):
        return True
    raise ConfigError(
        f"unknown metric {metric!r}: expected one of map, map_tie, map@<k>, precision@<k> (e.g. --metric map_tie)"
    )


def _parse_direction(info: Any) -> bool | None:
    if isinstance(info, Mapping):
        hib = info.get("higher_is_better")
        direction = info.get("direction")
    else:
        hib = getattr(info, "higher_is_better", None)
        direction = getattr(info, "direction", None)
        if direction is None and isinstance(info, tuple) and info:
            direction = info[0]
    if isinstance(hib, bool):
        return hib
    if isinstance(direction, str):
        d = direction.lower()
        if d.startswith(("high", "max", "up", "+")):
            return True
        if d.startswith(("low", "min", "down", "-")):
            return False
    if isinstance(direction, int | float) and direction != 0:
        return direction > 0
    return None


# --------------------------------------------------------------------------- flattening

_KEY_COLS = ["dataset", "preset", "split", "selection", "noise_model"]


def _method_label(spec: Mapping[str, Any]) -> str:
    """Method name plus user overrides, so differently configured runs never share a row."""
    name = str(spec.get("method", "?"))
    params = spec.get("params") or {}
    if params:
        name += "[" + ",".join(f"{k}={params[k]}" for k in sorted(params)) + "]"
    return name


def _split_of(rec: Mapping[str, Any]) -> str | None:
    ds = rec.get("dataset") or {}
    split = ds.get("split_rule") if isinstance(ds, Mapping) else None
    return split if split is not None else (rec.get("spec") or {}).get("split")


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def records_frame(records: Iterable[Mapping[str, Any]], direction: str, metric: str) -> pd.DataFrame:
    """Long table: one row per record with the protocol keys, the metric value and the chance level."""
    rows = []
    for rec in records:
        spec = rec.get("spec") or {}
        inv = bool(spec.get("noise_invariant")) or spec.get("noise_rate") is None
        metrics = ((rec.get("metrics") or {}).get(direction)) or {}
        rows.append(
            {
                "dataset": spec.get("dataset"),
                "preset": spec.get("preset"),
                "split": _split_of(rec),
                "selection": spec.get("selection") or "last-epoch",
                "noise_model": None if inv else spec.get("noise_model"),
                "method": _method_label(spec),
                "noise_invariant": inv,
                "bits": int(spec["bits"]) if spec.get("bits") is not None else None,
                "noise_rate": None if inv else _num(spec.get("noise_rate")),
                "seed": spec.get("seed"),
                "ok": rec.get("status") == "ok",
                "value": _num(metrics.get(metric)),
                "chance": _num(metrics.get("chance")),
                "created": str(rec.get("created") or ""),
                "run_id": rec.get("run_id"),
            }
        )
    cols = [*_KEY_COLS, "method", "noise_invariant", "bits", "noise_rate", "seed", "ok", "value", "chance"]
    df = pd.DataFrame(rows, columns=[*cols, "created", "run_id"])
    return df.astype({"noise_invariant": bool, "ok": bool, "value": float, "chance": float})


# --------------------------------------------------------------------------- the table


@dataclass
class Leaderboard:
    """One leaderboard: a (dataset, direction, metric) under one preset, split rule and noise model.

    ``mean``, ``std`` and ``n`` share the index (methods) and the columns
    (MultiIndex ``bits`` × ``noise``); missing cells are NaN in ``mean``/``std`` and 0 in ``n``.
    ``chance`` is indexed by the same columns (or None for metrics without a chance level).
    """

    dataset: str
    direction: str
    metric: str
    preset: str | None
    split: str | None
    noise_model: str | None
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    chance: pd.Series | None
    selection: str = "last-epoch"
    noise_invariant: tuple[str, ...] = ()
    failed: int = 0
    duplicates: int = 0
    usual_n: int = 0
    higher_is_better: bool = True
    precision: int = 3
    notes: list[str] = field(default_factory=list)

    # ----------------------------------------------------------------- describing

    @property
    def key(self) -> dict[str, Any]:
        keys = ("dataset", "direction", "metric", "preset", "split", "selection", "noise_model")
        return {k: getattr(self, k) for k in keys}

    @property
    def title(self) -> str:
        return f"{self.dataset} · {self.direction} · {self.metric}"

    @property
    def caption(self) -> str:
        noise = self.noise_model if self.noise_model is not None else "none (noise-invariant only)"
        best = "higher" if self.higher_is_better else "lower"
        return (
            f"{self.dataset}, {self.direction}, {self.metric} ({best} is better): preset {self.preset}, "
            f"split {self.split}, noise model {noise}; mean ± std over {self.usual_n} seed{'s' if self.usual_n != 1 else ''}"
            + ("" if self.selection == "last-epoch" else f"; CHECKPOINT SELECTION: {self.selection}")
        )

    @property
    def footnotes(self) -> list[str]:
        return self.notes_list(highlight=True)

    def notes_list(self, highlight: bool = True) -> list[str]:
        """The footnotes (``highlight``: include the bold/underline legend)."""
        notes = []
        if self.noise_invariant:
            notes.append(NOISE_INVARIANT_NOTE)
        counts = self.n.to_numpy()
        legend = []
        if ((counts > 0) & (counts != self.usual_n)).any():
            legend.append(f"(n=k): cell averaged over k seeds instead of {self.usual_n}")
        if (counts == 0).any():
            legend.append(f"{DASH}: no successful run")
        if highlight:
            legend.append("bold: best, underlined: second best per column")
        if legend:
            notes.append("; ".join(legend) + ".")
        if self.failed:
            notes.append(f"{self.failed} failed run(s) not counted (status 'failed').")
        if self.duplicates:
            notes.append(f"{self.duplicates} duplicate record(s) of the same run ignored (newest kept).")
        notes.extend(self.notes)
        return notes

    def _label(self, method: str) -> str:
        return method + DAGGER if method in self.noise_invariant else method

    # ----------------------------------------------------------------- ranking

    def ranks(self) -> pd.DataFrame:
        """1 for the best, 2 for the second best method per column (0 otherwise), ties shared.

        Noise-invariant methods are shown in every noise column but not ranked there: they were
        not run at that noise (PROTOCOL.md §4).
        """
        rounded = self.mean.round(self.precision)
        rounded = rounded.drop(index=[m for m in self.noise_invariant if m in rounded.index])
        out = pd.DataFrame(0, index=self.mean.index, columns=self.mean.columns)
        for col in rounded.columns:
            vals = rounded[col].dropna()
            distinct = sorted(set(vals), reverse=self.higher_is_better)
            for rank, v in enumerate(distinct[:2], start=1):
                out.loc[vals.index[vals == v], col] = rank
        return out

    # ----------------------------------------------------------------- cells

    def _cell(self, method: str, col: Any, style: str) -> str:
        n = int(self.n.loc[method, col])
        if n == 0:
            return DASH
        m, s = self.mean.loc[method, col], self.std.loc[method, col]
        p = self.precision
        pm = " $\\pm$ " if style == "latex" else " ± "
        txt = f"{m:.{p}f}" + (f"{pm}{s:.{p}f}" if np.isfinite(s) else "")
        if n != self.usual_n:
            txt += f" (n={n})"
        return txt

    def cells(self, style: str = "text") -> pd.DataFrame:
        """The table as strings (``style`` text, markdown or latex; markdown adds ** and <u>)."""
        ranks = self.ranks()
        data = {}
        for col in self.mean.columns:
            column = []
            for method in self.mean.index:
                txt = self._cell(method, col, style)
                if style == "markdown" and txt != DASH:
                    r = ranks.loc[method, col]
                    txt = f"**{txt}**" if r == 1 else f"<u>{txt}</u>" if r == 2 else txt
                column.append(txt)
            data[col] = column
        df = pd.DataFrame(data, index=[self._label(m) for m in self.mean.index], columns=self.mean.columns)
        if self.chance is not None:
            p = self.precision
            df.loc[CHANCE] = [f"{v:.{p}f}" if np.isfinite(v) else DASH for v in self.chance]
        df.index.name = "method"
        return df

    @property
    def table(self) -> pd.DataFrame:
        """The table as plain-text cells (``mean ± std (n=k)``, ``—`` for missing)."""
        return self.cells("text")

    def long(self) -> pd.DataFrame:
        """Machine-readable long form: one row per (method, bits, noise rate) with mean, std, n."""
        rows = []
        for method in self.mean.index:
            for bits, noise in self.mean.columns:
                rows.append(
                    {
                        **self.key,
                        "method": method,
                        "noise_invariant": method in self.noise_invariant,
                        "bits": bits,
                        "noise_rate": noise,
                        "mean": self.mean.loc[method, (bits, noise)],
                        "std": self.std.loc[method, (bits, noise)],
                        "n": int(self.n.loc[method, (bits, noise)]),
                    }
                )
        if self.chance is not None:
            for (bits, noise), v in self.chance.items():
                rows.append(
                    {
                        **self.key,
                        "method": CHANCE,
                        "noise_invariant": False,
                        "bits": bits,
                        "noise_rate": noise,
                        "mean": v,
                        "std": math.nan,
                        "n": 0,
                    }
                )
        return pd.DataFrame(rows)

    # ----------------------------------------------------------------- exporters

    def to_csv(self, path: str | Path | None = None) -> str:
        """Plain numbers (mean, std, n per cell, long form); also written to ``path`` if given."""
        return to_csv([self], path)

    def to_markdown(self) -> str:
        """A Markdown table with a heading, ``**best**``, ``<u>second</u>`` and footnotes."""
        return _markdown_table(self.title, self.caption, self.cells("markdown"), self.footnotes)

    def to_latex(self, label: str | None = None) -> str:
        """A booktabs LaTeX table through :meth:`pandas.io.formats.style.Styler.to_latex`.

        Needs ``\\usepackage{booktabs}`` in the preamble; best is ``\\textbf``, second ``\\underline``.
        """
        cells = self.cells("latex")
        ranks = self.ranks()
        index = [
            _latex_escape(m) + ("\\textsuperscript{\\dag}" if m in self.noise_invariant else "")
            for m in self.mean.index
        ]
        if self.chance is not None:
            index.append(CHANCE)
        cells.index = pd.Index(index)
        cells.columns = _latex_columns(cells.columns)
        props = pd.DataFrame("", index=cells.index, columns=cells.columns)
        for i in range(len(self.mean.index)):
            for j in range(len(self.mean.columns)):
                r = ranks.iat[i, j]
                if r and cells.iat[i, j] != DASH:
                    props.iat[i, j] = "textbf:--rwrap;" if r == 1 else "underline:--rwrap;"
        cells = cells.replace({DASH: "---"})
        styler = cells.style.apply(lambda _df: props, axis=None)
        caption = _latex_escape(self.caption) + ". " + " ".join(_latex_escape(n) for n in self.footnotes)
        caption = caption.replace(_latex_escape(DAGGER), "\\textsuperscript{\\dag}")
        return _booktabs(styler, len(cells.columns), caption, label or _latex_label(self))


def _markdown_table(title: str, caption: str, cells: pd.DataFrame, notes: Iterable[str]) -> str:
    """A Markdown table of formatted ``cells`` (columns: (bits, noise rate)) under a heading and
    an italic caption, the ``notes`` below it (Leaderboard and Comparison exports)."""
    headers = ["method", *(f"{b} bits, η={_fmt_noise(r)}" for b, r in cells.columns)]
    lines = [f"### {title}", "", f"*{caption}*", ""]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join([":---", *(["---:"] * len(cells.columns))]) + "|")
    for label, row in cells.iterrows():
        lines.append("| " + " | ".join([_md_escape(str(label)), *row.tolist()]) + " |")
    lines.append("")
    lines.extend(f"{note}  " for note in notes)
    return "\n".join(lines).rstrip() + "\n"


def _latex_columns(columns: Iterable[tuple[Any, Any]]) -> pd.MultiIndex:
    """The two-level LaTeX header of (bits, noise rate) columns: ``16 bits`` over the rate."""
    return pd.MultiIndex.from_tuples([(f"{b} bits", _fmt_noise(r)) for b, r in columns], names=[None, "noise rate"])


def _booktabs(styler: Any, n_columns: int, caption: str, label: str) -> str:
    """``styler`` as a centred booktabs ``table`` (a left-aligned label column, ``n_columns`` right-aligned)."""
    return styler.to_latex(
        column_format="l" + "r" * n_columns,
        hrules=True,
        multicol_align="c",
        caption=caption,
        label=label,
        position_float="centering",
        environment="table",
    )


def _fmt_noise(r: Any) -> str:
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return "any"
    return f"{float(r):g}"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


_LATEX_SPECIAL = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "±": "$\\pm$",
    "·": "$\\cdot$",
    "—": "---",
    "†": "\\dag{}",
    "η": "$\\eta$",
}


def _latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(s))


def _latex_label(board: Leaderboard) -> str:
    parts = [board.dataset, board.direction, board.metric, board.preset, board.split, board.noise_model]
    if board.selection != "last-epoch":
        parts.append(board.selection)
    return "tab:" + "-".join(re.sub(r"[^A-Za-z0-9@.]+", "", str(p)) for p in parts if p is not None)


# --------------------------------------------------------------------------- building


def _select(frame: pd.DataFrame, col: str, value: Any) -> pd.DataFrame:
    return frame if value is None else frame[frame[col].astype(str) == str(value)]


def _directions(direction: str | Sequence[str] | None) -> list[str]:
    if direction is None or direction == "all":
        return list(DIRECTIONS)
    dirs = [direction] if isinstance(direction, str) else list(direction)
    for d in dirs:
        if d not in DIRECTIONS:
            raise ConfigError(f"unknown direction {d!r}: expected one of i2t, t2i, avg or all")
    return dirs


def _sort_key(v: Any) -> tuple[int, Any]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return (0, "")
    return (1, str(v))


def leaderboard(
    records: Iterable[Mapping[str, Any]],
    *,
    dataset: str | None = None,
    direction: str | Sequence[str] = "avg",
    metric: str = "map",
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    precision: int = 3,
) -> list[Leaderboard]:
    """Leaderboards from result records, one per (dataset, direction, metric, preset, split, noise model).

    Args:
        records: result records (dicts of the ARCHITECTURE.md schema).
        dataset, preset, split, noise_model: keep only records with this value (None: all,
            one table per distinct value). Noise-invariant records join every noise model.
        direction: ``i2t``, ``t2i``, ``avg``, ``all`` or a list of them.
        metric: a scalar metric key (``map``, ``map_tie``, ``map@<k>``, ``precision@<k>``).
        precision: decimals shown.

    Returns:
        The leaderboards, sorted by their key (empty if no record matches the filters).

    Raises:
        ConfigError: unknown direction, or a metric that is neither declared nor in any record.
    """
    records = list(records)
    dirs = _directions(direction)
    try:
        higher = metric_higher_is_better(metric)
    except ConfigError as exc:
        if "descriptive" in str(exc):
            raise
        present = {
            k for r in records for d in DIRECTIONS for k in ((r.get("metrics") or {}).get(d) or {})
        } - _NON_SCORE_KEYS
        if metric not in present:
            raise ConfigError(
                f"unknown metric {metric!r}: the records have {', '.join(sorted(present)) or 'no metrics'}"
            ) from None
        higher = True
        logger.warning("metric %r declares no direction; assuming higher is better", metric)

    boards: list[Leaderboard] = []
    for d in dirs:
        frame = records_frame(records, d, metric)
        frame = _select(frame, "dataset", dataset)
        frame = _select(frame, "preset", preset)
        frame = _select(frame, "split", split)
        aware = frame[~frame["noise_invariant"]]
        inv = frame[frame["noise_invariant"]]
        aware = _select(aware, "noise_model", noise_model)
        # Protocol groups: noise-aware (dataset, preset, split, noise model); noise-invariant
        # runs join every noise-model group of their (dataset, preset, split).
        groups: dict[tuple, pd.DataFrame] = {}
        for key, g in aware.groupby(_KEY_COLS, dropna=False, sort=False):
            groups[tuple(None if _isnull(k) else k for k in key)] = g
        for key, g in inv.groupby(_KEY_COLS[:-1], dropna=False, sort=False):
            key = tuple(None if _isnull(k) else k for k in key)
            matching = [k for k in groups if k[:-1] == key]
            if not matching:
                groups[(*key, None)] = g.iloc[0:0]
                matching = [(*key, None)]
            for k in matching:
                groups[k] = pd.concat([groups[k], g], ignore_index=True)
        for key in sorted(groups, key=lambda k: tuple(_sort_key(v) for v in k)):
            board = _build(groups[key], key, d, metric, higher, precision)
            boards.append(board)
    return boards


def _isnull(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _build(g: pd.DataFrame, key: tuple, direction: str, metric: str, higher: bool, precision: int) -> Leaderboard:
    dataset, preset, split, selection, noise_model = key
    bits = sorted({int(b) for b in g["bits"].dropna()})
    rates = sorted({float(r) for r in g.loc[~g["noise_invariant"], "noise_rate"].dropna()})
    if not rates:
        rates = [math.nan]
    columns = pd.MultiIndex.from_product([bits, rates], names=["bits", "noise"])
    methods = sorted(g["method"].unique())
    invariant = tuple(sorted(g.loc[g["noise_invariant"], "method"].unique()))

    failed = int((~g["ok"]).sum())
    ok = g[g["ok"]].sort_values("created")
    # one value per (method, bits, noise, seed): a rerun of the same run keeps the newest record
    ident = ["method", "bits", "noise_rate", "seed"]
    dedup = ok.drop_duplicates(subset=ident, keep="last")
    duplicates = len(ok) - len(dedup)
    finite = dedup[np.isfinite(dedup["value"])]

    mean = pd.DataFrame(np.nan, index=methods, columns=columns)
    std = pd.DataFrame(np.nan, index=methods, columns=columns)
    n = pd.DataFrame(0, index=methods, columns=columns)
    for (method, b, r), cell in finite.groupby(["method", "bits", "noise_rate"], dropna=False):
        vals = cell["value"].to_numpy(dtype=float)
        targets = [(int(b), rr) for rr in rates] if method in invariant else [(int(b), float(r))]
        for col in targets:
            mean.loc[method, col] = float(np.mean(vals))
            std.loc[method, col] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
            n.loc[method, col] = len(vals)
    counts = Counter(int(v) for v in n.to_numpy().ravel() if v > 0)
    usual = max(counts, key=lambda k: (counts[k], k)) if counts else 0

    chance = None
    if _CHANCE_METRICS.match(metric):
        chance = pd.Series(np.nan, index=columns)
        for b in bits:
            for r in rates:
                sel = ok[(ok["bits"] == b) & ((ok["noise_rate"] == r) | ok["noise_invariant"])]
                vals = sel["chance"].to_numpy(dtype=float)
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    chance[(b, r)] = float(np.mean(vals))
    return Leaderboard(
        dataset=str(dataset),
        direction=direction,
        metric=metric,
        preset=preset,
        split=split,
        noise_model=noise_model,
        selection=selection,
        mean=mean,
        std=std,
        n=n,
        chance=chance,
        noise_invariant=invariant,
        failed=failed,
        duplicates=duplicates,
        usual_n=usual,
        higher_is_better=higher,
        precision=precision,
    )


# --------------------------------------------------------------------------- many tables


def to_csv(boards: Sequence[Leaderboard], path: str | Path | None = None) -> str:
    """All tables in one long CSV (key columns + method, bits, noise_rate, mean, std, n)."""
    return _long_csv([b.long() for b in boards], path)


def _long_csv(frames: Sequence[pd.DataFrame], path: str | Path | None = None) -> str:
    """The long frames stacked into one CSV text (``\\n`` line ends); also written to ``path`` if given."""
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    text = buf.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def to_markdown(boards: Sequence[Leaderboard]) -> str:
    """All tables as Markdown, separated by blank lines."""
    return "\n".join(b.to_markdown() for b in boards)


def to_latex(boards: Sequence[Leaderboard]) -> str:
    """All tables as LaTeX ``table`` environments (needs ``\\usepackage{booktabs}``)."""
    return "\n".join(b.to_latex() for b in boards)


def render(boards: Sequence[Leaderboard], fmt: str) -> str:
    """``csv``, ``markdown`` or ``latex`` text of the tables."""
    if fmt == "csv":
        return to_csv(boards)
    if fmt == "markdown":
        return to_markdown(boards)
    if fmt == "latex":
        return to_latex(boards)
    raise ConfigError(f"unknown format {fmt!r}: expected csv, markdown or latex")
