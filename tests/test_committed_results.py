"""The committed leaderboards are reproduced, number for number, from the committed records.

Guards every change to records (schema migrations), to their loader and to the table code:
``nrchbench table`` on ``results/wiki`` must give the mean, std and seed count of every cell
of the committed ``leaderboard_*.csv``, and those equal the values computed straight from
the committed record files (JSON, numpy; no nrchbench code).
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nrchbench.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "results"
KEY = ["method", "params", "direction", "bits", "noise_rate"]


def _from_json(metric: str) -> dict[tuple, list[float]]:
    """(method, params, direction, bits, noise rate) → the seeds' values, read from the record files;
    noise-invariant runs are counted at every noise rate of the grid."""
    cells: dict[tuple, list[float]] = defaultdict(list)
    recs = [json.loads(p.read_text()) for p in sorted((RESULTS / "wiki-as-given" / "runs").rglob("*.json"))]
    rates = sorted({r["spec"]["noise_rate"] for r in recs if r["spec"]["noise_rate"] is not None})
    for r in recs:
        if r["status"] != "ok":
            continue
        s = r["spec"]
        params = json.dumps(s["params"], sort_keys=True, separators=(",", ":"))
        for d in ("i2t", "t2i", "avg"):
            for rate in [s["noise_rate"]] if s["noise_rate"] is not None else rates:
                cells[(s["method"], params, d, s["bits"], rate)].append(r["metrics"][d][metric])
    return cells


@pytest.mark.parametrize("metric", ["map", "map_tie"])
def test_wiki_leaderboard_numbers_unchanged(metric: str) -> None:
    committed = pd.read_csv(RESULTS / "wiki-as-given" / f"leaderboard_{metric}.csv", dtype={"params": str})
    committed = committed[committed["method"] != "chance"]
    res = CliRunner().invoke(
        main,
        ["table", "--results", str(RESULTS / "wiki-as-given"), "--dataset", "wiki", "--direction", "all", "--metric", metric,
         "--format", "csv"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    now = pd.read_csv(io.StringIO(res.stdout), dtype={"params": str})  # stderr: the code-version warning
    now = now[now["method"] != "chance"]
    merged = committed.merge(now, on=KEY, suffixes=("_committed", "_now"), how="outer", validate="one_to_one")
    assert len(merged) == len(committed) == len(now) == 5 * 3 * 4 * 3
    assert merged["n_now"].tolist() == merged["n_committed"].tolist()
    assert (merged["mean_now"] - merged["mean_committed"]).abs().max() < 1e-12
    assert (merged["std_now"] - merged["std_committed"]).abs().max() < 1e-12
    expected = _from_json(metric)
    for row in committed.itertuples():
        vals = np.array(expected[(row.method, row.params, row.direction, row.bits, row.noise_rate)])
        assert row.n == len(vals) == 3
        assert row.mean == pytest.approx(vals.mean(), abs=1e-12)
        assert row.std == pytest.approx(vals.std(ddof=1), abs=1e-12)
