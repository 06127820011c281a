"""``table --versus REF``: every row against a reference row by a two-sided paired t-test over seeds."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_report import cell, make_record, seeds_records

from nrchbench.errors import ConfigError
from nrchbench.report import leaderboard, render
from nrchbench.report.render import to_latex, to_markdown
from nrchbench.report.versus import against, against_each

RNG = np.random.default_rng(7)
BASE = 0.6 + RNG.normal(0, 0.03, 5)  # the seed moves every row alike (same noisy labels)


def _recs():
    rng = np.random.default_rng(8)  # the same records at every call
    recs = seeds_records("nrch-nodns", list(BASE), strategy="gmm-select")  # the reference
    recs += seeds_records("nrch", list(BASE + 0.04 + rng.normal(0, 0.002, 5)))  # clearly better
    recs += seeds_records("nrch-nogmm", list(BASE + rng.normal(0, 0.02, 5)))  # seed noise
    recs += seeds_records("dcmh", list(BASE - 0.2 + rng.normal(0, 0.002, 5)))  # clearly worse
    return recs


def test_rows_against_a_named_row_match_scipy_two_sided():
    (b,) = leaderboard(_recs())
    v = against(b, "nrch-nodns + gmm-select")  # a row label, any case
    ref = cell(v, "nrch-nodns", 16, 0.5)
    assert ref["mark"] == "reference" and np.isnan(ref["p_vs_ref"])
    assert cell(v, "nrch", 16, 0.5)["mark"] == "better" and cell(v, "dcmh", 16, 0.5)["mark"] == "worse"
    assert cell(v, "nrch-nogmm", 16, 0.5)["mark"] == ""
    vals = {
        m: np.array([r.metrics["avg"]["map"] for r in _recs() if r.spec.method == m]) for m in ("nrch", "nrch-nogmm")
    }
    ref_vals = np.array([r.metrics["avg"]["map"] for r in _recs() if r.spec.method == "nrch-nodns"])
    for m in vals:
        assert cell(v, m, 16, 0.5)["p_vs_ref"] == pytest.approx(stats.ttest_rel(vals[m], ref_vals).pvalue)
    md = to_markdown(v.views()[0])
    assert "↑ |" in md and "↓ |" in md and "(ref) |" in md and "better/worse than NRCH-nodns + GMM-select" in md
    assert "**" not in md.split("\n\n")[2]  # no best-of-column marks in the body
    tex = to_latex(v.views()[0])
    assert "$\\uparrow$" in tex and "$\\downarrow$" in tex and "\\textbf" not in tex
    df = pd.read_csv(io.StringIO(render([v], "csv")))
    assert set(df.loc[df["method"] == "nrch", "mark"]) == {"better"}
    assert set(df["versus"].dropna()) == {"NRCH-nodns + GMM-select"}
    # the plain table is unchanged by having built the comparison
    assert cell(b, "nrch", 16, 0.5)["mark"] == "best"


def test_a_method_name_is_that_method_without_strategy():
    (b,) = leaderboard(_recs())
    v = against(b, "NRCH")
    assert cell(v, "nrch", 16, 0.5)["mark"] == "reference" and cell(v, "dcmh", 16, 0.5)["mark"] == "worse"


def test_base_compares_each_strategy_with_its_own_base():
    recs = seeds_records("dcmh", list(BASE)) + seeds_records("nrch-nodns", list(BASE + 0.1))
    recs += seeds_records("dcmh", list(BASE + 0.03 + RNG.normal(0, 0.002, 5)), strategy="coteaching")
    recs += seeds_records("nrch-nodns", list(BASE + 0.07 + RNG.normal(0, 0.002, 5)), strategy="coteaching")
    recs += seeds_records("nrch-nodns", list(BASE + 0.1 + RNG.normal(0, 0.02, 5)), strategy="elr")
    (b,) = leaderboard(recs)
    v = against(b, "base")
    marks = {
        (r.method, r.strategy): m for r, m in zip(v.rows.loc[v.cells["row"]].itertuples(), v.cells["mark"], strict=True)
    }
    # DCMH + Co-teaching beats DCMH (+0.03) though it is below NRCH-nodns; NRCH-nodns + Co-teaching loses 0.03
    assert marks == {
        ("dcmh", "none"): "reference",
        ("nrch-nodns", "none"): "reference",
        ("dcmh", "coteaching"): "better",
        ("nrch-nodns", "coteaching"): "worse",
        ("nrch-nodns", "elr"): "",
    }
    assert "its own base method without a strategy" in v.rule()


def test_refusals_are_one_line():
    (b,) = leaderboard(_recs())
    with pytest.raises(ConfigError, match="matches no row of the table; use one of the row labels: DCMH"):
        against(b, "nrch-nodns")  # only with a strategy here: the plain method is not a row
    with pytest.raises(ConfigError, match="no row has a strategy whose base"):
        against(b, "base")
    (few,) = leaderboard(seeds_records("nrch", [0.8, 0.81]) + seeds_records("dcmh", [0.7, 0.8]))
    with pytest.raises(ConfigError, match="needs 3 or more seeds"):
        against(few, "nrch")


def test_noise_invariant_rows_are_not_compared():
    recs = _recs() + [make_record("djsrh", 16, None, s) for s in range(5)]
    (b,) = leaderboard(recs)
    v = against(b, "nrch")
    assert cell(v, "djsrh", 16, 0.5)["mark"] == ""


def test_tables_without_the_reference_are_left_out(caplog):
    recs = _recs() + [make_record("dcmh", 16, 0.5, s, noise_model="instance") for s in range(5)]
    boards = leaderboard(recs)
    assert len(boards) == 2
    (v,) = against_each(boards, "nrch")
    assert v.identity.noise_model == "one-swap" and "left out" in caplog.text
    with pytest.raises(ConfigError, match="matches no row"):
        against_each(boards, "oracle")


def test_edge_cases_found_in_review():
    (b,) = leaderboard(_recs() + [make_record("djsrh", 16, None, s) for s in range(5)])
    with pytest.raises(ConfigError, match="noise-invariant row shares no noisy labels"):
        against(b, "DJSRH†")  # the label as printed, † included, is found — and refused
    (one,) = leaderboard(seeds_records("dcmh", list(BASE)))
    with pytest.raises(ConfigError, match="the reference is the only ranked row"):
        against(one, "dcmh")
    # a row sharing fewer than 3 seeds with the reference: no test, said so, p stays NaN
    recs = _recs() + [make_record("nrch-nogmm", 16, 0.5, s, params={"warmup": 9}) for s in (5, 6, 7)]
    (b,) = leaderboard(recs)
    v = against(b, "nrch")
    row = v.rows.index[v.rows["label"].str.contains("warmup")][0]
    c = v.cells[v.cells["row"] == row].iloc[0]
    assert c["mark"] == "untested" and np.isnan(c["p_vs_ref"])
    md = to_markdown(v.views()[0])
    assert "(no test) (n=3) |" in md and "fewer than 3 seeds shared with the reference" in md
