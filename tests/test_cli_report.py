"""``nrchbench table``, ``compare`` and ``plot`` through click's CliRunner on constructed records."""

from __future__ import annotations

import io

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
    assert res.output.count("### mirflickr · avg · mAP") == 2  # one per preset
    assert "preset fast" in res.output and "preset paper" in res.output
    assert "| DJSRH† |" in res.output and "(n=2)" in res.output and "paired t-test" in res.output
    assert "<u>" not in res.output


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
        assert text.count("\\begin{table}") == 3 and "\\toprule" in text
    else:
        assert text.count("### mirflickr") == 3


def test_table_layout_ci_and_fit(results):
    res = invoke("table", "--results", results, "--preset", "fast", "--rows", "method", "--columns", "noise", "--ci")
    assert res.exit_code == 0, res.output
    assert "### mirflickr · avg · mAP · 16 bits" in res.output and "· 32 bits" in res.output
    assert "| method | η=0.2 | η=0.5 | η=0.8 |" in res.output and "95% t-interval" in res.output
    res = invoke("table", "--results", results, "--preset", "fast", "--format", "latex", "--fit", "resize")
    assert res.exit_code == 0 and "\\resizebox{\\linewidth}" in res.output
    res = invoke("table", "--results", results, "--rows", "seed", "--columns", "bits")
    assert res.exit_code != 0 and "unknown table axis 'seed'" in res.output


def test_table_filters_make_the_grid(results):
    res = invoke("table", "--results", results, "--preset", "fast", "--bits", "16", "--noise", "0.2,0.8")
    assert res.exit_code == 0, res.output
    assert "| method | 16 bits, η=0.2 | 16 bits, η=0.8 |" in res.output and "32 bits" not in res.output


def test_table_strategy_axis_and_filter(tmp_path):
    recs = [make_record("dcmh", 16, 0.5, s, strategy=st) for st in ("none", "coteaching") for s in SEEDS]
    res_dir = write_records(tmp_path, recs)
    res = invoke("table", "--results", res_dir, "--rows", "method", "--columns", "strategy")
    assert res.exit_code == 0, res.output
    assert "| method | none | Co-teaching |" in res.output and "· 16 bits, η=0.5" in res.output
    res = invoke("table", "--results", res_dir, "--strategy", "coteaching")
    assert res.exit_code == 0 and "| DCMH + Co-teaching |" in res.output and "| DCMH |" not in res.output
    res = invoke("table", "--results", res_dir, "--strategy", "elr")
    assert res.exit_code != 0 and "--strategy elr" in res.output, res.output
    res = invoke("table", "--results", res_dir, "--strategy", "bogus")
    assert res.exit_code != 0 and "unknown strategy 'bogus'" in res.output, res.output


def test_table_versus(tmp_path):
    recs = [make_record("dcmh", 16, 0.5, s, strategy=st) for st in ("none", "coteaching") for s in SEEDS]
    res_dir = write_records(tmp_path, recs)
    res = invoke("table", "--results", res_dir, "--versus", "base")
    assert res.exit_code == 0, res.output
    assert "(ref) |" in res.output and "better/worse than its own base method" in res.output
    res = invoke("table", "--results", res_dir, "--versus", "dcmh", "--robustness")
    assert res.exit_code != 0 and "drop --robustness or --versus" in res.output, res.output


def test_table_robustness(results):
    res = invoke(
        "table", "--results", results, "--preset", "fast", "--robustness", "--label", "nrch-nogmm=NRCH w/o GMM"
    )
    assert res.exit_code == 0, res.output
    assert "· robustness" in res.output and "16 bits, AUC" in res.output and "| NRCH w/o GMM |" in res.output


def test_table_refusals_are_one_line(results, tmp_path):
    for args, msg in [
        (["--results", tmp_path / "nothing"], "no result records found"),
        (["--results", results, "--metric", "accuracy"], "unknown metric 'accuracy'"),
        (["--results", results, "--metric", "map@50"], "no record has metric 'map@50'"),
        (["--results", results, "--dataset", "coco"], "no record"),
    ]:
        res = invoke("table", *args)
        assert res.exit_code != 0 and msg in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output


def test_compare_with_paper(tmp_path):
    write_records(tmp_path, [make_record("nrch", 16, 0.8, s) for s in SEEDS])
    res = invoke("compare", "--reference", "paper", "--results", tmp_path)
    assert res.exit_code == 0, res.output
    assert "ours vs paper" in res.output and "query set" in res.output and " / 0." in res.output
    res = invoke("compare", "--results", tmp_path, "--format", "csv", "--direction", "all")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(io.StringIO(res.stdout))
    assert set(df["direction"]) == {"i2t", "t2i", "avg"} and df["reference"].notna().all()


def test_compare_with_a_custom_reference(tmp_path):
    write_records(tmp_path, [make_record("dcmh", 16, 0.5, s, params={"standardize": True}) for s in SEEDS])
    ref = tmp_path / "mine.csv"
    ref.write_text(
        "# source: my lab's rerun\n# selection: last epoch\n"
        "dataset,method,direction,noise_model,noise_rate,bits,value,params\n"
        "mirflickr,dcmh,avg,nrch,0.5,16,0.6,standardize=true\n"
    )
    res = invoke("compare", "--reference", ref, "--results", tmp_path)
    assert res.exit_code == 0, res.output
    assert "my lab's rerun" in res.output and "/ 0.600" in res.output and "query set" not in res.output


def test_compare_without_overlap_fails(tmp_path):
    write_records(tmp_path, [make_record("nrch", 16, 0.8, 0, dataset="wiki")])
    res = invoke("compare", "--results", tmp_path)
    assert res.exit_code != 0 and "reference 'paper'" in res.output


def test_plot_all(tmp_path):
    recs = [make_record(m, 16, r, s) for m in ("nrch", "dcmh") for r in (0.2, 0.8) for s in (0, 1)]
    recs += [make_record("djsrh", 16, None, s) for s in (0, 1)]
    results = write_records(tmp_path / "results", recs)
    out = tmp_path / "plots"
    res = invoke("plot", "--results", results, "--out-dir", out)
    assert res.exit_code == 0, res.output
    names = {p.name for p in (out / "mirflickr").iterdir()}
    for prefix in ("map-vs-noise_avg", "selection_nrch", "loss-hist_nrch", "pr_16bits"):
        assert any(n.startswith(prefix) and n.endswith(".png") for n in names), prefix
        assert any(n.startswith(prefix) and n.endswith(".pdf") for n in names), prefix


def test_plot_refusals(tmp_path):
    results = write_records(tmp_path / "results", [make_record("dcmh", 16, 0.2, 0)])
    res = invoke("plot", "--results", results, "--out-dir", tmp_path / "plots", "--kind", "loss-hist")
    assert res.exit_code != 0 and "sample_loss_hist" in res.output
    res = invoke("plot", "--results", results, "--out-dir", tmp_path / "plots", "--kind", "noise", "--metric", "map@50")
    assert res.exit_code != 0 and "no record has metric 'map@50'" in res.output
    assert len(res.output.strip().splitlines()) == 1
