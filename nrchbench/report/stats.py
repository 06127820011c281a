"""Aggregation over seeds, significance marks and the robustness summary (pandas groupby).

Significance (``paired-t``, used when a table's cells have ≥ 3 seeds): in each column, the
method with the best mean is compared with every other ranked method by a one-sided paired
t-test across seeds (:func:`scipy.stats.ttest_rel`); pairs are the runs with the same seed,
which share the same noisy labels and the same split. It is marked **best** when every test
gives p < α (0.05); otherwise it and every method it does not beat significantly are marked
**tie**. The runner-up is marked **second** when the best is significant and the runner-up
in turn beats every method below it. A comparison with fewer than 3 paired seeds is not
significant. With fewer seeds a table falls back to ``mean`` ranking (best and second-best
mean, equal rounded means share a rank), and its caption says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special  # the t distribution, without scipy.stats's second of import time

__all__ = ["ALPHA", "MIN_SEEDS", "aggregate", "mark", "paired_p", "robustness_values"]

ALPHA = 0.05
MIN_SEEDS = 3
CI_LEVEL = 0.95
STATES = ["ok", "not computed", "undefined", "failed"]
_NAN_KEY = -1.0


def aggregate(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per group of ``keys`` (groupby): mean, sample std (ddof=1), n, the 95% t-interval
    (``ci_low``, ``ci_high``), the cell ``state`` (``ok`` when any seed has a value, else the
    first of not computed / undefined / failed present), counts of ``failed`` and
    ``not_computed`` runs, and ``values`` ({seed: value}, for paired tests)."""
    keys = list(keys)
    cols = ["mean", "std", "n", "ci_low", "ci_high", "state", "failed", "not_computed", "values"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, *cols])
    # groupby keys must not be NaN (a noise-invariant-only table has no noise rate): a sentinel
    nan_keys = [k for k in keys if frame[k].dtype.kind == "f"]
    f = frame.assign(**{k: frame[k].fillna(_NAN_KEY) for k in nan_keys})
    counts = f.groupby(keys, sort=False)["state"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=STATES, fill_value=0)
    ok = f[f["state"] == "ok"]
    out = counts.join(ok.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]), how="left")
    out["n"] = out.pop("count").fillna(0).astype(int)
    half = (
        special.stdtrit(np.maximum(out["n"] - 1, 1), 0.5 + CI_LEVEL / 2) * out["std"] / np.sqrt(out["n"].clip(lower=1))
    )
    half[out["n"] < 2] = np.nan
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    first = counts[["not computed", "undefined", "failed"]].gt(0).idxmax(axis=1)
    out["state"] = np.where(out["n"] > 0, "ok", first)
    out = out.rename(columns={"not computed": "not_computed"})
    values: dict[tuple, dict[int, float]] = {}
    for *key, seed, value in ok[[*keys, "seed", "value"]].itertuples(index=False, name=None):
        values.setdefault(tuple(key), {})[int(seed)] = float(value)
    index = [k if isinstance(k, tuple) else (k,) for k in out.index]
    out["values"] = [values.get(k, {}) for k in index]
    out = out.reset_index()[[*keys, *cols]]
    for k in nan_keys:
        out[k] = out[k].replace(_NAN_KEY, np.nan)
    return out


def paired_p(a: Mapping[int, float], b: Mapping[int, float], higher_is_better: bool = True) -> float:
    """One-sided p-value that ``a`` is better than ``b`` over their common seeds (NaN below 3)."""
    seeds = sorted(a.keys() & b.keys())
    if len(seeds) < MIN_SEEDS:
        return math.nan
    x = np.array([a[s] for s in seeds])
    y = np.array([b[s] for s in seeds])
    d = x - y
    if np.all(d == d[0]):  # no spread in the differences: the t statistic is undefined
        return 0.0 if (d[0] > 0 if higher_is_better else d[0] < 0) else 1.0
    # scipy.stats.ttest_rel(x, y, alternative="greater"/"less"), from the t distribution's cdf
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return float(special.stdtr(len(d) - 1, -t if higher_is_better else t))


def _mark_one(means: list[float], values: list[dict[int, float]], higher: bool, mode: str, precision: int):
    """Marks and p-values (vs the best) of one column's ranked cells (see the module docstring)."""
    marks, ps = [""] * len(means), [math.nan] * len(means)
    order = sorted(range(len(means)), key=lambda i: -means[i] if higher else means[i])
    if len(order) < 2:
        return marks, ps
    if mode == "mean":
        distinct = list(dict.fromkeys(round(means[i], precision) for i in order))
        for i in order:
            rank = distinct.index(round(means[i], precision))
            marks[i] = ("best", "second", "")[min(rank, 2)]
        return marks, ps
    best, *rest = order
    for i in rest:
        ps[i] = paired_p(values[best], values[i], higher)
    tied = [i for i in rest if not ps[i] < ALPHA]
    if tied:
        for i in [best, *tied]:
            marks[i] = "tie"
        return marks, ps
    marks[best] = "best"
    runner, *below = rest
    if all(paired_p(values[runner], values[i], higher) < ALPHA for i in below):
        marks[runner] = "second"
    return marks, ps


def mark(
    cells: pd.DataFrame, by: Sequence[str], ranked: pd.Series, higher: bool | pd.Series, mode: str, precision: int = 3
) -> pd.DataFrame:
    """``cells`` with ``mark`` (best, second, tie or "") and ``p_vs_best`` set within each group
    of ``by`` (a column of the table) among the ``ranked`` cells.

    Args:
        cells: from :func:`aggregate` (``mean``, ``values``).
        by: the keys of one comparison (e.g. bits and noise rate).
        ranked: bool per cell: take part (noise-invariant and empty cells do not).
        higher: whether higher is better, for all cells or per cell.
        mode: ``paired-t`` or ``mean``.
    """
    cells = cells.assign(mark="", p_vs_best=math.nan)
    higher = pd.Series(higher, index=cells.index) if isinstance(higher, bool) else higher
    pool = cells[ranked & np.isfinite(cells["mean"].astype(float))]
    for _, idx in pool.groupby(list(by), dropna=False, sort=False).indices.items():
        rows = pool.index[idx]
        marks, ps = _mark_one(
            cells.loc[rows, "mean"].tolist(),
            cells.loc[rows, "values"].tolist(),
            bool(higher[rows[0]]),
            mode,
            precision,
        )
        cells.loc[rows, "mark"] = marks
        cells.loc[rows, "p_vs_best"] = ps
    return cells


def robustness_values(frame: pd.DataFrame, rates: Mapping[int, Sequence[float]], keys: Sequence[str]) -> pd.DataFrame:
    """Per (``keys``, bits, seed): the area under the metric-vs-noise curve and the relative drop.

    ``auc`` = trapezoid over ``rates[bits]`` (the table's noise rates at that code length) of
    the seed's values, divided by the rate span (so a flat curve scores its value);
    ``drop`` = (value at the lowest rate − value at the highest) / value at the lowest.
    A seed missing any of the rates gets no entry (the robustness cell then has fewer seeds).
    """
    ok = frame[(frame["state"] == "ok") & frame["bits"].isin(list(rates))]
    rows = []
    for (*key, bits, seed), g in ok.groupby([*keys, "bits", "seed"], dropna=False, sort=False):
        grid = sorted(rates[bits])
        if len(grid) < 2:
            continue
        by_rate = dict(zip(g["noise_rate"].round(9), g["value"], strict=True))
        vals = [by_rate.get(round(r, 9)) for r in grid]
        if any(v is None for v in vals):
            continue
        auc = float(np.trapezoid(vals, grid)) / (grid[-1] - grid[0])
        drop = (vals[0] - vals[-1]) / vals[0] if vals[0] else math.nan
        rows.append({**dict(zip(keys, key, strict=True)), "bits": bits, "seed": seed, "auc": auc, "drop": drop})
    return pd.DataFrame(rows, columns=[*keys, "bits", "seed", "auc", "drop"])
