"""Table layouts: which of method, code length and noise rate go to rows, columns or separate tables.

Papers print the same numbers as methods × (bits × noise), one table per code length
(methods × noise), one per noise rate (methods × bits), or transposed. A layout only moves
cells: a missing cell stays missing, and the columns are the grid's values, nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import pandas as pd

from nrchbench.errors import ConfigError
from nrchbench.report.render import Cell

__all__ = ["AXES", "parse_layout", "pivot"]

AXES = ("method", "bits", "noise")
_HINT = "use method, bits and noise, e.g. --rows method --columns noise (one table per code length)"
_COLUMN = {"method": "row", "bits": "bits", "noise": "noise_rate"}
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
    order: Callable[[Hashable], Any],
    label: Callable[[Hashable], str],
) -> list[tuple[Any, pd.DataFrame]]:
    """``slots`` (one row per ``row`` id, ``bits``, ``noise_rate`` with a ``cell``) as wide
    tables of the layout: ``[(split value or "", DataFrame of Cell)]``.

    ``order``/``label``: sort key and display text of a row id.
    """
    rows, columns = parse_layout(rows, columns)
    split = [a for a in AXES if a not in rows and a not in columns]
    slots = slots.assign(noise_rate=slots["noise_rate"].fillna(_NAN))
    sort = {"method": order, "bits": int, "noise": float}
    show = {"method": label, "bits": lambda b: f"{b} bits", "noise": _rate}

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
        wide.index = pd.Index([display(rows, v) for v in wide.index], tupleize_cols=True, name=None)
        wide.index.names = list(rows)
        wide.columns = pd.Index([display(columns, v) for v in wide.columns], tupleize_cols=True)
        out.append((display(split, values) if split else "", wide))
    return out
