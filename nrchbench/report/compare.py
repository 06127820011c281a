"""Our numbers beside a published reference, like with like, each number's convention stated.

A reference is a CSV file that carries its own source and conventions in ``#`` header lines
before the column names::

    # source: Wang et al., "Robust Contrastive Cross-modal Hashing with Noisy Labels", ACM MM 2024
    # metric: map
    # selection: not stated
    # selection[nrch]: best of 5 evaluations on the query set
    # zero_relevant: exclude
    # split: nrch
    # note: DJSRH is unsupervised: the same numbers at every noise rate.
    dataset,method,direction,noise_model,noise_rate,bits,value
    mirflickr,nrch,avg,nrch,0.2,16,0.781

Header keys (all optional; ``key[method]`` applies to one method's rows): ``source``,
``url``, ``metric`` (our metric key the numbers are, default ``map`` = mAP@all; ``map@50``
etc.), ``selection`` (how the reference chose its checkpoint), ``zero_relevant``
(``exclude``, ``zero`` or free text), ``params`` (``key=value`` list: the method's
non-default parameters), ``split``, ``noise``, ``features``, and ``note`` (repeatable).
Columns: ``dataset``, ``method``, ``direction`` (i2t, t2i, avg), ``noise_model``,
``noise_rate``, ``bits``, the number in ``value`` (or ``map``), and optionally per-row
``params`` (``k=v;k=v``), ``metric``, ``selection``, ``zero_relevant``.

Rows match ours on method identity — the registry name and its non-default parameters —
never on display labels: a reference row ``dcmh`` with ``params standardize=true`` is our
``DCMH (standardize)``. Each reference metric is compared with the same metric of ours
(evaluated again from saved codes where a record lacks it, otherwise "not computed").
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nrchbench.errors import ConfigError, NrchbenchError
from nrchbench.jsonutil import canonical_json
from nrchbench.params import parse_key_values
from nrchbench.records import Record
from nrchbench.report.labels import dataset_name, metric_label, non_default
from nrchbench.report.leaderboard import Leaderboard, leaderboard, metric_direction
from nrchbench.report.render import Cell, View

__all__ = ["REFERENCES", "Comparison", "Reference", "compare_with_reference", "load_reference"]

REFERENCES = {"paper": "nrch_mm24.csv"}
COLUMNS = ("dataset", "method", "direction", "noise_model", "noise_rate", "bits")
HEADER_KEYS = ("source", "url", "metric", "selection", "zero_relevant", "params", "split", "noise", "features", "note")
_PER_ROW = ("metric", "selection", "zero_relevant", "params")
_HEADER = re.compile(r"^#\s*([a-z_]+)(?:\[([^\]]+)\])?\s*:\s*(.*)$")


@dataclass
class Reference:
    """A loaded reference: ``table`` (one row per number, conventions resolved per row) and its header."""

    name: str
    table: pd.DataFrame
    header: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.header.get("source") or f"{self.name} (source not stated)"


def _canonical(kind: str, name: str) -> str:
    from nrchbench.registry import DATASETS, METHODS, NOISE

    try:
        return {"method": METHODS, "noise": NOISE, "dataset": DATASETS}[kind].canonical(name)
    except NrchbenchError:
        return name


def _read_header(lines: list[str], name: str) -> tuple[dict[str, str], list[str], int]:
    header: dict[str, str] = {}
    notes: list[str] = []
    n = 0
    for line in lines:
        if not line.startswith("#"):
            break
        n += 1
        m = _HEADER.match(line.strip())
        if not line.strip("# \n"):
            continue
        if not m or m[1] not in HEADER_KEYS or (m[2] and m[1] not in _PER_ROW):
            raise ConfigError(
                f"reference {name!r} line {n}: expected '# key: value' or '# key[method]: value' with key one of "
                f"{', '.join(HEADER_KEYS)} (per method: {', '.join(_PER_ROW)}), got {line.strip()!r}"
            )
        if m[1] == "note":
            notes.append(m[3].strip())
        else:
            header[f"{m[1]}[{_canonical('method', m[2])}]" if m[2] else m[1]] = m[3].strip()
    return header, notes, n


def load_reference(reference: str | Path = "paper") -> Reference:
    """``"paper"`` (the NRCH paper, package data) or the path of a reference CSV (see the module docstring).

    Raises:
        ConfigError: an unknown name, a missing file, a bad header line, missing columns or an unknown metric.
    """
    name = str(reference)
    if name in REFERENCES:
        text = resources.files("nrchbench.reference").joinpath(REFERENCES[name]).read_text(encoding="utf-8")
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                f"unknown reference {name!r}: expected {', '.join(REFERENCES)} or a CSV file "
                f"(columns {','.join(COLUMNS)},value; see `nrchbench compare --help`)"
            )
        text, name = path.read_text(encoding="utf-8"), path.name
    lines = text.splitlines(keepends=True)
    header, notes, skip = _read_header(lines, name)
    df = pd.read_csv(io.StringIO("".join(lines[skip:])), dtype={"params": str, "selection": str})
    value = "value" if "value" in df.columns else "map" if "map" in df.columns else None
    missing = [c for c in COLUMNS if c not in df.columns] + ([] if value else ["value"])
    if missing:
        raise ConfigError(
            f"reference {name!r} lacks column(s) {', '.join(missing)}: expected {','.join(COLUMNS)},value"
        )
    out = pd.DataFrame(
        {
            "dataset": [_canonical("dataset", d) for d in df["dataset"]],
            "method": [_canonical("method", m) for m in df["method"]],
            "direction": df["direction"].astype(str),
            "noise_model": [_canonical("noise", m) for m in df["noise_model"]],
            "noise_rate": df["noise_rate"].astype(float),
            "bits": df["bits"].astype(int),
            "value": df[value].astype(float),
        }
    )
    for key in _PER_ROW:
        default = {"metric": "map", "params": ""}.get(key, "not stated")
        column = df[key] if key in df.columns else pd.Series([None] * len(df))
        out[key] = [
            str(c) if isinstance(c, str) and c.strip() else header.get(f"{key}[{m}]", header.get(key, default))
            for c, m in zip(column, out["method"], strict=True)
        ]
    for metric in out["metric"].unique():
        metric_direction(metric)  # unknown metrics are refused here, in one line
    out["params"] = [
        canonical_json(non_default(m, parse_key_values([p for p in re.split(r"[;\s]+", s) if p], "params")))
        for m, s in zip(out["method"], out["params"], strict=True)
    ]
    return Reference(name=name, table=out, header=header, notes=notes)


def _long_metric(metric: str) -> str:
    return {"map": "mAP@all", "map_tie": "tie-aware mAP@all"}.get(metric, metric_label(metric))


@dataclass
class Comparison:
    """One leaderboard of ours (``board``) beside the reference numbers of the same metric."""

    board: Leaderboard
    reference: Reference
    ref: pd.DataFrame  # row, bits, noise_rate, value, selection, zero_relevant
    unmatched: list[str]

    def caption(self) -> str:
        b, r = self.board, self.reference
        spec = [f"{k} {r.header[k]}" for k in ("split", "noise", "features") if k in r.header]
        return (
            f"{b.identity.what(b.higher_is_better)}: ours vs {r.source}. Ours: mean over {b.usual_n} seed(s); "
            f"{b.identity.protocol()}. Reference: {_long_metric(b.identity.metric)}"
            + (f"; {'; '.join(spec)}" if spec else "")
            + ". Cells: ours / reference (Δ = ours − reference)"
        )

    def notes(self) -> list[str]:
        out = list(self.reference.notes)
        if self.unmatched:
            out.append(
                "Reference rows without a matching configuration of ours: "
                + ", ".join(self.unmatched)
                + " (rows match on method and non-default parameters; state them with a params column or "
                "'# params[method]: k=v')."
            )
        return out

    def views(self, *_: Any, ci: bool = False) -> list[View]:
        b = self.board
        cols = list(b.grid)
        wide = pd.DataFrame(index=b.rows.index, columns=pd.MultiIndex.from_tuples(cols), dtype=object)
        cells = b.cells.set_index(["row", "bits", "noise_rate"])
        ref = self.ref.set_index(["row", "bits", "noise_rate"])["value"]
        for row in b.rows.index:
            for col in cols:
                c = cells.loc[(row, *col)] if (row, *col) in cells.index else None
                v = float(ref.get((row, *col), math.nan))
                wide.loc[row, col] = Cell(
                    mean=c["mean"] if c is not None else math.nan,
                    n=int(c["n"]) if c is not None else 0,
                    state=c["state"] if c is not None else "missing",
                    kind="compare",
                    ref=v,
                )
        conventions = self.ref.drop_duplicates("row").set_index("row")
        wide[("", "reference convention")] = [
            Cell(kind="text", text=_convention(b.identity.metric, conventions.loc[r]) if r in conventions.index else "")
            for r in b.rows.index
        ]
        wide.index = pd.Index(b.rows["label"], name="method")
        wide.columns = pd.Index(
            [(f"{bits} bits", f"η={r:g}") for bits, r in cols] + [("", "reference convention")], tupleize_cols=True
        )
        view = View(
            heading=f"{b.heading} — ours vs {self.reference.name}",
            caption=self.caption(),
            table=wide,
            notes=self.notes(),
            usual_n=b.usual_n,
            precision=b.precision,
            label=b.latex_label("vs-" + Path(self.reference.name).stem),
        )
        return [view]

    def long(self) -> pd.DataFrame:
        df = self.board.long()
        df = df[df["method"] != "chance"].rename(columns={"mean": "ours_mean", "std": "ours_std"})
        rows = self.board.rows.reset_index()[["row", "method", "params"]]
        names = {"value": "reference", "selection": "reference_selection", "zero_relevant": "reference_zero_relevant"}
        ref = self.ref.merge(rows, on="row").rename(columns=names)
        keys = ["method", "params", "bits", "noise_rate"]
        df = df.merge(ref[[*keys, *names.values()]], on=keys, how="left")
        df["diff"] = df["ours_mean"] - df["reference"]
        df["reference_metric"] = self.board.identity.metric
        df["reference_source"] = self.reference.source
        return df


def _convention(metric: str, row: pd.Series) -> str:
    return f"{_long_metric(metric)}; selection: {row['selection']}; zero-relevant queries: {row['zero_relevant']}"


def compare_with_reference(
    records: Iterable[Record],
    reference: str | Path | Reference = "paper",
    *,
    dataset: str | None = None,
    direction: str | Sequence[str] = "avg",
    preset: str | None = None,
    split: str | None = None,
    noise_model: str | None = None,
    results_dir: str | Path | None = None,
    precision: int = 3,
) -> list[Comparison]:
    """Our tables beside ``reference``'s numbers, for every (dataset, direction, noise model,
    metric) both have; one :class:`Comparison` per table of ours."""
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    records = list(records)
    out: list[Comparison] = []
    for metric in sorted(ref.table["metric"].unique()):
        boards = leaderboard(
            records,
            metric=metric,
            direction=direction,
            dataset=dataset,
            preset=preset,
            split=split,
            noise_model=noise_model,
            results_dir=results_dir,
            precision=precision,
            require=False,
        )
        for b in boards:
            t = b.identity
            sub = ref.table[
                (ref.table["metric"] == metric)
                & (ref.table["dataset"].isin([t.dataset, dataset_name(t.dataset)]))
                & (ref.table["direction"] == t.direction)
                & (ref.table["noise_model"] == t.noise_model)
            ]
            if sub.empty:
                continue
            ours = b.rows[b.rows["strategy"] == "none"].reset_index()[["row", "method", "params"]]
            matched = sub.merge(ours, on=["method", "params"])
            grid = pd.DataFrame(b.grid, columns=["bits", "noise_rate"])
            matched = matched.merge(grid, on="bits", suffixes=("", "_ours"))
            matched = matched[np.isclose(matched["noise_rate"], matched["noise_rate_ours"])]
            if matched.empty:
                continue
            matched = matched.assign(noise_rate=matched["noise_rate_ours"])
            found = set(zip(matched["method"], matched["params"], strict=True))
            unmatched = sorted(
                {_ref_label(m, p) for m, p in zip(sub["method"], sub["params"], strict=True) if (m, p) not in found}
            )
            cols = ["row", "bits", "noise_rate", "value", "selection", "zero_relevant"]
            out.append(Comparison(board=b, reference=ref, ref=matched[cols], unmatched=unmatched))
    return out


def _ref_label(method: str, params: str) -> str:
    from nrchbench.report.labels import method_label

    p = json.loads(params)
    return method_label(method, p) + ("" if p else " (defaults)")
