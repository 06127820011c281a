"""``nrchbench table``, ``compare`` and ``plot`` through click's CliRunner on synthetic records."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from test_report import SEEDS, make_record, make_records, write_records

from nrchbench.cli import main


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp("results"), make_records())


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_table_markdown_to_stdout(results):
    res = invoke("table", "--results", results)
    assert res.exit_code == 0, res.output
    assert res.output.count("### mirflickr · avg · map") == 2  # one per preset
    assert "preset fast" in res.output and "preset paper" in res.output
    assert "| djsrh† |" in res.output and "(n=2)" in res.output and "**" in res.output


@pytest.mark.parametrize("fmt", ["csv", "latex", "markdown"])
def test_table_formats_to_file(results, tmp_path, fmt):
    out = tmp_path / f"t.{fmt}"
    res = invoke("table", "--results", results, "--preset", "fast", "--direction", "all", "--format", fmt, "-o", out)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    if fmt == "csv":
        df = pd.read_csv(out)
        assert set(df["direction"]) == {"i2t", "t2i", "avg"} and set(df["preset"]) == {"fast"}
    elif fmt == "latex":
        assert text.count("\\begin{table}") == 3 and "\\toprule" in text and "\\textbf{" in text
    else:
        assert text.count("### mirflickr") == 3


def test_table_metric_option(results):
    res = invoke("table", "--results", results, "--metric", "map_tie", "--preset", "fast")
    assert res.exit_code == 0 and "map_tie" in res.output


def test_table_errors_are_one_line(results, tmp_path):
    res = invoke("table", "--results", tmp_path / "nothing")
    assert res.exit_code != 0 and "no result records found" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = invoke("table", "--results", results, "--metric", "accuracy")
    assert res.exit_code != 0 and "unknown metric 'accuracy'" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = invoke("table", "--results", results, "--dataset", "coco")
    assert res.exit_code != 0 and "no record" in res.output


def test_compare_with_paper(tmp_path):
    write_records(tmp_path, [make_record("nrch", 16, 0.8, s) for s in SEEDS])
    res = invoke("compare", "--reference", "paper", "--results", tmp_path)
    assert res.exit_code == 0, res.output
    assert "ours vs paper" in res.output and "query set" in res.output
    assert " / 0." in res.output
    out = tmp_path / "cmp.csv"
    res = invoke("compare", "--results", tmp_path, "--format", "csv", "-o", out, "--direction", "all")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert set(df["direction"]) == {"i2t", "t2i", "avg"} and df["paper"].notna().all()


def test_compare_without_overlap_fails(tmp_path):
    write_records(tmp_path, [make_record("nrch", 16, 0.8, 0, dataset="wiki")])
    res = invoke("compare", "--results", tmp_path)
    assert res.exit_code != 0 and "reference" in res.output


def test_plot_all(tmp_path):
    recs = [make_record(m, 16, r, s) for m in ("nrch", "dcmh") for r in (0.2, 0.8) for s in (0, 1)]
    recs += [make_record("djsrh", 16, None, s) for s in (0, 1)]
    results = write_records(tmp_path / "results", recs)
    out = tmp_path / "plots"
    res = invoke("plot", "--results", results, "--out-dir", out)
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    for prefix in ("map_vs_noise", "selection", "loss_hist", "pr"):
        assert any(n.startswith(prefix) and n.endswith(".png") for n in names), prefix
        assert any(n.startswith(prefix) and n.endswith(".pdf") for n in names), prefix


def test_plot_kind_without_data_fails(tmp_path):
    results = write_records(tmp_path / "results", [make_record("dcmh", 16, 0.2, 0)])
    res = invoke("plot", "--results", results, "--out-dir", tmp_path / "plots", "--kind", "loss-hist")
    assert res.exit_code != 0 and "sample_loss_hist" in res.output
