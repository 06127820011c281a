"""The committed leaderboards are reproduced, number for number, from the committed records.

Guards every change to records (schema migrations), to their loader and to the table code:
``nrchbench table`` on ``results/wiki`` must give the mean, std and seed count of every cell
of the committed ``leaderboard_*.csv``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from nrchbench.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "results"
KEY = ["method", "direction", "bits", "noise_rate"]


@pytest.mark.parametrize("metric", ["map", "map_tie"])
def test_wiki_leaderboard_numbers_unchanged(metric: str) -> None:
    committed = pd.read_csv(RESULTS / "wiki" / f"leaderboard_{metric}.csv")
    res = CliRunner().invoke(
        main,
        [
            "table",
            "--results",
            str(RESULTS / "wiki"),
            "--dataset",
            "wiki",
            "--direction",
            "all",
            "--metric",
            metric,
            "--format",
            "csv",
        ],
    )
    assert res.exit_code == 0, res.output
    now = pd.read_csv(io.StringIO(res.output))
    merged = committed.merge(now, on=KEY, suffixes=("_committed", "_now"), how="left", validate="one_to_one")
    assert len(merged) == len(committed)
    assert merged["n_now"].tolist() == merged["n_committed"].tolist()
    assert (merged["mean_now"] - merged["mean_committed"]).abs().max() < 1e-12
    assert (merged["std_now"] - merged["std_committed"]).abs().max() < 1e-12
