"""A leaderboard against a reference row: is this row's difference real or seed noise?

The default marks answer "which method is best in this column"; ``--versus REF`` answers the
question a reader asks next — "does A beat B?" — for every row at once. In each column of
the table every ranked row is compared with the reference by a **two-sided paired t-test
across seeds** (pairs: the runs with the same seed, which share the noisy labels and the
split); ``↑``/``↓`` mark a row significantly better/worse than the reference (p < α), no mark
a difference the test cannot tell from seed noise. The reference is

* a row label as the table prints it (``"NRCH-nodns + GMM-select"``, case-insensitive);
* a method name (``nrch``, an alias too): that method with no strategy and its default
  parameters, when exactly one row is that;
* ``base``: each row against its own base method configuration without a strategy (the
  strategy's effect on the same base; rows without a strategy, or whose base was not run,
  are not compared).

Noise-invariant rows are not compared (their pairing shares no noisy labels). Every column
tests several rows: at α = 0.05 an occasional mark is expected by chance alone.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import pandas as pd

from nrchbench.errors import ConfigError
from nrchbench.report.identity import BASE_KEYS
from nrchbench.report.stats import ALPHA, MIN_SEEDS, paired_p

if TYPE_CHECKING:
    from nrchbench.report.leaderboard import Leaderboard

__all__ = ["against", "against_each", "reference_rows"]

log = logging.getLogger(__name__)

BASE = "base"


def reference_rows(rows: pd.DataFrame, ref: str) -> dict[str, str]:
    """``{row id: reference row id}`` for every row compared with ``ref`` (see the module docstring).

    Raises:
        ConfigError: no row (or more than one) matches ``ref``; ``base`` with no strategy rows.
    """
    ref = ref.strip()
    plain = rows["strategy"].eq("none")
    if ref.casefold() == BASE:
        keys = list(BASE_KEYS)
        base_of = {tuple(r[k] for k in keys): idx for idx, r in rows[plain].iterrows()}
        out = {
            idx: base_of[tuple(r[k] for k in keys)]
            for idx, r in rows[~plain].iterrows()
            if tuple(r[k] for k in keys) in base_of and not bool(r["invariant"])
        }
        if not out:
            raise ConfigError(
                "--versus base: no row has a strategy whose base method (strategy none) is in the same table; "
                "run the base too or name a row"
            )
        return out
    labels = rows["label"].str.rstrip("†").str.casefold()
    hit = rows.index[labels == ref.rstrip("†").casefold()]
    if len(hit) == 0:
        hit = rows.index[plain & rows["method"].eq(_canonical(ref)) & rows["params"].map(json.loads).eq({})]
    if len(hit) != 1:
        why = "matches no row" if len(hit) == 0 else f"matches {len(hit)} rows"
        raise ConfigError(
            f"--versus {ref!r} {why} of the table; use one of the row labels: {', '.join(rows['label'])}, or 'base'"
        )
    if bool(rows.loc[hit[0], "invariant"]):
        raise ConfigError(
            f"--versus {ref!r}: a noise-invariant row shares no noisy labels with the others, so no paired test "
            "against it; name a row trained on the noisy labels"
        )
    others = [i for i in rows.index if i != hit[0] and not bool(rows.loc[i, "invariant"])]
    if not others:
        raise ConfigError(f"--versus {ref!r}: the reference is the only ranked row of the table; nothing to compare")
    return dict.fromkeys(others, hit[0])


def _canonical(name: str) -> str:
    from nrchbench.errors import RegistryError
    from nrchbench.registry import METHODS

    try:
        return METHODS.canonical(name)
    except RegistryError:
        return name


def _two_sided(a: Mapping[int, float], b: Mapping[int, float]) -> float:
    """Two-sided paired p-value over the common seeds (NaN below 3: no test)."""
    p = 2 * min(paired_p(a, b, True), paired_p(a, b, False))
    return min(1.0, p) if math.isfinite(p) else math.nan


def against(board: Leaderboard, ref: str) -> Leaderboard:
    """``board`` with its marks replaced by the comparison with ``ref``: ``mark`` is ``better``,
    ``worse`` or ``reference``, ``p_vs_ref`` the two-sided paired p-value.

    Raises:
        ConfigError: ``ref`` matches no row (see :func:`reference_rows`), or the cells have
            fewer than 3 seeds (no test).
    """
    if board.usual_n < MIN_SEEDS:
        raise ConfigError(
            f"--versus needs a paired test, which needs {MIN_SEEDS} or more seeds per cell; "
            f"this table has {board.usual_n}"
        )
    refs = reference_rows(board.rows, ref)
    cells = board.cells.assign(mark="", p_vs_ref=math.nan)
    key = {(r.row, r.bits, _key(r.noise_rate)): i for i, r in zip(cells.index, cells.itertuples(), strict=True)}
    higher = board.higher_is_better
    for i, c in zip(cells.index, cells.itertuples(), strict=True):
        j = key.get((refs.get(c.row), c.bits, _key(c.noise_rate)))
        if c.row not in refs or j is None or c.state != "ok" or cells.loc[j, "state"] != "ok":
            continue
        p = _two_sided(c.values, cells.loc[j, "values"])
        if not math.isfinite(p):  # fewer than 3 seeds shared with the reference
            cells.loc[i, "mark"] = "untested"
            continue
        cells.loc[j, "mark"] = "reference"
        cells.loc[i, "p_vs_ref"] = p
        if p < ALPHA:
            better = (c.mean > cells.loc[j, "mean"]) == higher
            cells.loc[i, "mark"] = "better" if better else "worse"
    if ref.strip().casefold() == BASE:
        words = "its own base method without a strategy"
    else:
        words = board.rows.loc[next(iter(refs.values())), "label"]
    return replace(board, cells=cells, versus=words)


def against_each(boards: Iterable[Leaderboard], ref: str) -> list[Leaderboard]:
    """:func:`against` on every table that has ``ref``; the others (another noise model, a
    dataset without the reference row) are left out with a warning.

    Raises:
        ConfigError: no table has ``ref`` (the first table's reason).
    """
    out, errors = [], []
    for board in boards:
        try:
            out.append(against(board, ref))
        except ConfigError as exc:
            errors.append((board.heading, str(exc)))
    if not out:
        raise ConfigError(errors[0][1] if errors else f"--versus {ref!r}: no table to compare in")
    for heading, why in errors:
        log.warning("%s: left out: %s", heading, why)
    return out


def _key(rate: float) -> float:
    return -1.0 if not math.isfinite(rate) else round(float(rate), 9)
