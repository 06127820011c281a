"""Table layouts: which of method, strategy, code length and noise rate go to rows, columns or
separate tables.

Papers print the same numbers as methods × (bits × noise), one table per code length
(methods × noise), one per noise rate (methods × bits), or transposed. A layout only moves
cells: a missing cell stays missing, and the columns are the grid's values, nothing more.

The training strategy is an axis only when a layout names it (``--columns strategy``: base
methods × strategies, one table per code length and noise rate); otherwise it stays part of
the method configuration (rows ``DCMH + ELR``) and never splits a table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from nrchbench.errors import ConfigError
from nrchbench.report.identity import BASE_KEYS
from nrchbench.report.labels import config_slug, method_label, strategy_label
from nrchbench.report.render import Cell

__all__ = ["AXES", "CHANCE", "by_strategy", "parse_layout", "pivot", "row_labels"]

CHANCE = "chance"  # the row of a random ranking's level

AXES = ("method", "strategy", "bits", "noise")
_HINT = (
    "use method, strategy, bits and noise, e.g. --rows method --columns noise (one table per code length) "
    "or --rows method --columns strategy (base methods × strategies)"
)
_COLUMN = {"method": "row", "strategy": "strategy", "bits": "bits", "noise": "noise_rate"}
_NAN = -1.0  # pivot cannot key on NaN (the noise rate of a noise-invariant-only table)


def parse_layout(rows: str | Sequence[str], columns: str | Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``("method",), ("bits", "noise")`` from ``"method"``, ``"bits,noise"`` (checked).

    Raises:
        ConfigError: an unknown axis, an axis used twice, or an empty side.
    """

    def axes(v: str | Sequence[str]) -> tuple[str, ...]:
        items = [a.strip() for a in (v.split(",") if isinstance(v, str) else v) if a.strip()]
        bad = [a for a in items if a not in AXES]
        if bad:
            raise ConfigError(f"unknown table axis {bad[0]!r}: {_HINT}")
        return tuple(items)

    r, c = axes(rows), axes(columns)
    if not r or not c or len({*r, *c}) != len(r) + len(c):
        raise ConfigError(
            f"--rows {','.join(r)} --columns {','.join(c)}: each axis once at most, both sides set; {_HINT}"
        )
    return r, c


def _rate(r: float) -> str:
    return "any" if not math.isfinite(r) or r == _NAN else f"η={r:g}"


def pivot(
    slots: pd.DataFrame,
    rows: Sequence[str],
    columns: Sequence[str],
    order: Mapping[str, Callable[[Hashable], Any]],
    label: Mapping[str, Callable[[Hashable], str]],
) -> list[tuple[Any, pd.DataFrame]]:
    """``slots`` (one row per ``row`` id, ``bits``, ``noise_rate`` — and ``strategy`` when the
    layout names that axis — with a ``cell``) as wide tables of the layout:
    ``[(split value or "", DataFrame of Cell)]``.

    ``order``/``label``: per axis ``method`` (and ``strategy``), the sort key and display text
    of a value.
    """
    rows, columns = parse_layout(rows, columns)
    split = [a for a in AXES if a not in rows and a not in columns and a != "strategy"]
    slots = slots.assign(noise_rate=slots["noise_rate"].fillna(_NAN))
    sort = {"bits": int, "noise": float, **order}
    show = {"bits": lambda b: f"{b} bits", "noise": _rate, **label}

    def key(axes: Sequence[str], values: Any) -> tuple:
        values = values if isinstance(values, tuple) else (values,)
        return tuple(sort[a](v) for a, v in zip(axes, values, strict=True))

    def display(axes: Sequence[str], values: Any) -> Any:
        values = values if isinstance(values, tuple) else (values,)
        out = tuple(show[a](v) for a, v in zip(axes, values, strict=True))
        return out if len(out) > 1 else out[0]

    groups = list(slots.groupby([_COLUMN[a] for a in split], sort=False)) if split else [((), slots)]
    out = []
    for values, part in sorted(groups, key=lambda g: key(split, g[0])):
        wide = part.pivot(index=[_COLUMN[a] for a in rows], columns=[_COLUMN[a] for a in columns], values="cell")
        wide = wide.loc[
            sorted(wide.index, key=lambda v: key(rows, v)), sorted(wide.columns, key=lambda v: key(columns, v))
        ]
        wide = wide.map(lambda c: c if isinstance(c, Cell) else Cell())
        shown = [[display(a, v) for v in vs] for a, vs in ((rows, wide.index), (columns, wide.columns))]
        twice = [t for side in shown for t in dict.fromkeys(side) if side.count(t) > 1]
        if twice:
            raise ConfigError(
                f"two rows or columns of a table would both read {twice[0]!r}; give them distinct --label texts"
            )
        wide.index = pd.Index([display(rows, v) for v in wide.index], tupleize_cols=True, name=None)
        wide.index.names = list(rows)
        wide.columns = pd.Index([display(columns, v) for v in wide.columns], tupleize_cols=True)
        out.append((display(split, values) if split else "", wide))
    return out


def row_labels(rows: pd.DataFrame, labels: Mapping[str, str]) -> pd.Series:
    """Human labels; rows that would share one also name the resolved parameters they differ in
    (or, when a ``--label`` gave them one text, their configuration in registry names)."""
    texts = {
        idx: method_label(r.method, json.loads(r.params), r.strategy, json.loads(r.strategy_params), labels)
        for idx, r in zip(rows.index, rows.itertuples(), strict=True)
    }
    slugs = {
        idx: config_slug(r.method, json.loads(r.params), r.strategy, json.loads(r.strategy_params))
        for idx, r in zip(rows.index, rows.itertuples(), strict=True)
    }
    texts = _distinct(texts, rows["resolved_params"].to_dict(), slugs)
    return pd.Series(texts).reindex(rows.index) + rows["invariant"].map({True: "†", False: ""})


def _distinct(texts: dict[str, str], params: Mapping[str, str], fallback: Mapping[str, str]) -> dict[str, str]:
    """``texts`` (key → text) with every text that several keys share made distinct: `` [k=v]``
    of the parameters (``params``: key → JSON) those keys differ in, else `` [fallback[key]]``."""
    out = dict(texts)
    by_text: dict[str, list[str]] = {}
    for k, text in texts.items():
        by_text.setdefault(text, []).append(k)
    for text, keys in by_text.items():
        if len(keys) < 2:
            continue
        values = {k: json.loads(params[k] or "{}") for k in keys}
        differ = sorted(
            {p for v in values.values() for p in v if len({json.dumps(x.get(p)) for x in values.values()}) > 1}
        )
        for k in keys:
            out[k] = f"{text} [{', '.join(f'{p}={values[k].get(p)}' for p in differ) or fallback[k]}]"
    return out


def by_strategy(
    slots: pd.DataFrame, rows: pd.DataFrame, labels: Mapping[str, str], *, spread_chance: bool
) -> tuple[pd.DataFrame, dict, dict, bool]:
    """``slots`` keyed by base method configuration (``row``) and ``strategy``, with the sort
    keys and labels of both axes, and whether some base × strategy pair has no record. The
    chance row is repeated under every strategy when strategies or methods are columns."""
    base = pd.Series(["|".join(map(str, k)) for k in rows[list(BASE_KEYS)].itertuples(index=False)], index=rows.index)
    strategy = pd.Series(
        ["|".join(map(str, k)) for k in rows[["strategy", "strategy_params"]].itertuples(index=False)],
        index=rows.index,
    )
    plain = rows.assign(strategy="none", strategy_params="{}", base=base).drop_duplicates("base")
    base_label = dict(zip(plain["base"], row_labels(plain, labels), strict=True))
    st_label = _distinct(
        {
            k: strategy_label(r.strategy, json.loads(r.strategy_params), labels)
            for k, r in zip(strategy, rows.itertuples(), strict=True)
        },
        dict(zip(strategy, rows["strategy_params"], strict=True)),
        {k: k.split("|")[0] for k in strategy},
    )
    chance = slots["row"] == CHANCE
    out = slots[~chance].assign(strategy=slots.loc[~chance, "row"].map(strategy), row=slots["row"].map(base))
    keys = list(dict.fromkeys(strategy))
    if chance.any():  # under every strategy column, or one row with no strategy
        spread = keys if spread_chance else [""]
        out = pd.concat([out, *(slots[chance].assign(strategy=k) for k in spread)], ignore_index=True)
        st_label[""] = ""
    base_order = {k: i for i, k in enumerate([*dict.fromkeys(base), CHANCE])}
    orders = {
        "method": base_order.__getitem__,
        "strategy": lambda k: (k == "", k.split("|")[0] != "none", st_label[k].casefold(), k),
    }
    shows = {"method": {**base_label, CHANCE: CHANCE}.__getitem__, "strategy": st_label.__getitem__}
    empty = len(set(zip(base, strategy, strict=True))) < len(set(base)) * len(set(strategy))
    return out, orders, shows, empty
