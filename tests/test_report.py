"""Leaderboards, the paper comparison and plots from synthetic result records."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nrchbench.errors import ConfigError
from nrchbench.report import compare_with_reference, leaderboard, load_reference
from nrchbench.report import tables as T

BITS = (16, 32)
RATES = (0.2, 0.5, 0.8)
SEEDS = (0, 1, 2)
BASE = {"nrch": 0.80, "dcmh": 0.70, "nrch-nogmm": 0.75, "djsrh": 0.65}
MISSING = ("dcmh", 32, 0.5, 2)  # one seed never ran
FAILED = ("dcmh", 16, 0.8, 2)  # one seed failed


def _value(method: str, bits: int, rate: float | None, seed: int, direction: str) -> float:
    rng = np.random.default_rng(zlib.crc32(repr((method, bits, rate, seed, direction)).encode()))
    drop = 0.0 if rate is None else 0.15 * rate
    off = {"i2t": 0.01, "t2i": -0.01}[direction]
    return float(BASE[method] - drop + 0.005 * bits / 16 + off + rng.normal(0, 0.01))


def _run_id(spec: dict) -> str:
    """The runner's hash of the (schema-1) identity, so the records pass validation."""
    from nrchbench.spec import IDENTITY_FIELDS, compute_run_id

    return compute_run_id({k: spec[k] for k in IDENTITY_FIELDS})


def make_record(
    method: str,
    bits: int,
    rate: float | None,
    seed: int,
    *,
    dataset: str = "mirflickr",
    preset: str = "fast",
    status: str = "ok",
    values: dict[str, float] | None = None,
) -> dict:
    """A record of the ARCHITECTURE.md schema (schema_version 1)."""
    inv = rate is None
    spec = {
        "method": method,
        "dataset": dataset,
        "bits": bits,
        "noise_model": None if inv else "nrch",
        "noise_rate": rate,
        "noise_params": {},
        "seed": seed,
        "preset": preset,
        "params": {},
        "split": "nrch",
        "split_seed": 0,
        "val_size": 0,
        "dataset_options": {},
        "resolved_params": {"epochs": 3},
        "preset_requested": preset,
        "device": "cpu",
        "noise_invariant": inv,
        "selection": "last-epoch",
    }
    run_id = _run_id(spec)
    metrics: dict = {}
    history: list[dict] = []
    diagnostics: dict = {}
    if status == "ok":
        metrics = {}
        radius = list(range(bits + 1))
        for d in ("i2t", "t2i"):
            v = values[d] if values else _value(method, bits, rate, seed, d)
            prec = np.linspace(v + 0.1, 0.55, bits + 1)
            rec = np.linspace(0.01, 1.0, bits + 1)
            metrics[d] = {
                "map": v,
                "map_tie": v - 0.02,
                "map@100": v + 0.05,
                "precision@100": v + 0.03,
                "chance": 0.54,
                "num_queries": 100,
                "num_queries_no_relevant": 0,
                "pr_curve": {"radius": radius, "precision": prec.tolist(), "recall": rec.tolist()},
            }
        metrics["avg"] = {
            k: (metrics["i2t"][k] + metrics["t2i"][k]) / 2
            for k in metrics["i2t"]
            if isinstance(metrics["i2t"][k], float | int)
        }
        for epoch in range(3):
            h = {"epoch": epoch, "loss": 1.0 / (epoch + 1), "loss_contrastive": 0.5 / (epoch + 1), "time_train": 0.1}
            if method.startswith("nrch") and not inv:
                h.update(
                    selected_fraction=1 - rate * (0.5 + 0.1 * epoch),
                    sel_precision=0.7 + 0.05 * epoch + 0.01 * seed,
                    sel_recall=0.9 - 0.02 * epoch,
                    gmm_means=[0.2, 0.8],
                )
            history.append(h)
        if method == "nrch" and not inv:
            edges = np.linspace(0, 1, 21)
            centers = (edges[:-1] + edges[1:]) / 2
            clean = np.round(1000 * np.exp(-((centers - 0.2) ** 2) / 0.01)).astype(int)
            noisy = np.round(400 * rate * np.exp(-((centers - 0.75) ** 2) / 0.02)).astype(int)
            diagnostics["sample_loss_hist"] = {
                "epoch": 2,
                "edges": edges.tolist(),
                "clean": clean.tolist(),
                "noisy": noisy.tolist(),
                "gmm": {"means": [0.2, 0.75], "variances": [0.005, 0.01], "weights": [0.7, 0.3]},
            }
    return {
        "schema_version": 1,
        "run_id": run_id,
        "status": status,
        "error": None if status == "ok" else "RuntimeError: NaN in loss",
        "spec": spec,
        "dataset": {"dataset": dataset, "split_rule": "nrch", "num_classes": 24},
        "noise_report": None if inv else {"model": "nrch", "rate": rate, "seed": seed},
        "metrics": metrics,
        "history": history,
        "diagnostics": diagnostics,
        "timing": dict.fromkeys(("load", "noise", "fit", "encode", "evaluate", "total"), 0.1),
        "env": {
            "nrchbench": "0.1.0",
            "python": "3.12",
            "torch": "2.5",
            "numpy": "2.0",
            "cuda": None,
            "device": "cpu",
            "device_name": "cpu",
            "git_revision": None,
            "hostname": "test",
            "platform": "linux",
        },
        "codes": None,
        "created": f"2026-11-27T10:00:{seed:02d}Z",
    }


def make_records() -> list[dict]:
    """3 noise-aware methods (one only at 16 bits), a noise-invariant one, a failed run, two presets."""
    recs = []
    for bits in BITS:
        for seed in SEEDS:
            recs.append(make_record("djsrh", bits, None, seed))
            for rate in RATES:
                for method in ("nrch", "dcmh"):
                    key = (method, bits, rate, seed)
                    if key == MISSING:
                        continue
                    recs.append(make_record(method, bits, rate, seed, status="failed" if key == FAILED else "ok"))
                if bits == 16:
                    recs.append(make_record("nrch-nogmm", bits, rate, seed))
    for seed in SEEDS:  # a second preset: never mixed into the 'fast' tables
        recs.append(make_record("nrch", 16, 0.8, seed, preset="paper"))
    return recs


def write_records(root: Path, records: list[dict]) -> Path:
    for rec in records:
        p = root / "runs" / rec["spec"]["dataset"] / rec["spec"]["method"] / f"{rec['run_id']}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(rec))
    return root


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records()


@pytest.fixture(scope="module")
def boards(records):
    return leaderboard(records, dataset="mirflickr", direction="avg", metric="map")


def _fast(boards):
    (b,) = [b for b in boards if b.preset == "fast"]
    return b


def _values(records, method, bits, rate, direction="avg", metric="map", preset="fast"):
    out = []
    for r in records:
        s = r["spec"]
        if (s["method"], s["bits"], s["noise_rate"], s["preset"], r["status"]) == (method, bits, rate, preset, "ok"):
            out.append(r["metrics"][direction][metric])
    return np.array(out)


# --------------------------------------------------------------------------- tables


def test_one_table_per_preset(boards):
    assert sorted(b.preset for b in boards) == ["fast", "paper"]
    paper = next(b for b in boards if b.preset == "paper")
    assert list(paper.mean.index) == ["nrch"]
    assert list(paper.mean.columns) == [(16, 0.8)]
    assert "preset paper" in paper.caption and "preset fast" in _fast(boards).caption


def test_preset_filter_and_direction_all(records):
    only = leaderboard(records, preset="fast", direction="all", metric="map_tie")
    assert [(b.direction, b.preset) for b in only] == [("i2t", "fast"), ("t2i", "fast"), ("avg", "fast")]


@pytest.mark.parametrize("direction", ["i2t", "t2i", "avg"])
def test_mean_std_against_numpy(records, direction):
    (b,) = leaderboard(records, preset="fast", direction=direction)
    for method in ("nrch", "dcmh"):
        for bits in BITS:
            for rate in RATES:
                vals = _values(records, method, bits, rate, direction)
                assert b.n.loc[method, (bits, rate)] == len(vals)
                assert b.mean.loc[method, (bits, rate)] == pytest.approx(vals.mean())
                assert b.std.loc[method, (bits, rate)] == pytest.approx(vals.std(ddof=1))


def test_seed_count_marker_and_missing(boards):
    b = _fast(boards)
    t = b.table
    assert b.usual_n == 3
    assert t.loc["dcmh", (32, 0.5)].endswith("(n=2)")  # missing seed
    assert t.loc["dcmh", (16, 0.8)].endswith("(n=2)")  # failed seed
    assert "(n=" not in t.loc["nrch", (16, 0.2)]
    # nrch-nogmm only ran at 16 bits: its 32-bit cells stay visibly missing
    for rate in RATES:
        assert t.loc["nrch-nogmm", (32, rate)] == T.DASH
        assert b.n.loc["nrch-nogmm", (32, rate)] == 0
        assert np.isnan(b.mean.loc["nrch-nogmm", (32, rate)])
    assert b.failed == 1
    assert any("1 failed run" in n for n in b.footnotes)


def test_noise_invariant_repeated_and_marked(records, boards):
    b = _fast(boards)
    assert b.noise_invariant == ("djsrh",)
    t = b.table
    assert "djsrh†" in t.index
    for bits in BITS:
        vals = _values(records, "djsrh", bits, None)
        cells = {t.loc["djsrh†", (bits, r)] for r in RATES}
        assert len(cells) == 1
        assert b.mean.loc["djsrh", (bits, 0.2)] == pytest.approx(vals.mean())
    assert any(n.startswith("†") for n in b.footnotes)


def test_chance_row(boards):
    t = _fast(boards).table
    assert t.index[-1] == "chance"
    assert set(t.loc["chance"]) == {"0.540"}


def test_best_and_second_follow_direction(boards, monkeypatch):
    b = _fast(boards)
    ranks = b.ranks()
    ranked = b.mean.drop(index=list(b.noise_invariant))
    assert (ranks.loc[list(b.noise_invariant)] == 0).all().all()  # noise-invariant rows are not ranked
    for col in b.mean.columns:
        col_means = ranked[col].round(3).dropna().sort_values(ascending=False)
        assert ranks.loc[col_means.index[0], col] == 1
        assert ranks.loc[col_means.index[1], col] == 2
    assert (ranks.loc["nrch"] == 1).all()
    md = b.to_markdown()
    assert "**0." in md and "<u>0." in md
    # a lower-is-better metric flips the highlighting
    lower = T.Leaderboard(**{**b.__dict__, "higher_is_better": False})
    r2 = lower.ranks()
    col = (16, 0.2)
    assert r2.loc[ranked[col].idxmin(), col] == 1 and r2.loc["nrch", col] == 0


def test_unknown_metric_and_direction(records):
    with pytest.raises(ConfigError, match="unknown metric"):
        leaderboard(records, metric="accuracy")
    with pytest.raises(ConfigError, match=r"(descriptive|unknown metric)"):
        leaderboard(records, metric="chance")
    with pytest.raises(ConfigError, match="unknown direction"):
        leaderboard(records, direction="x2y")


def test_csv_is_plain_numbers(boards, tmp_path):
    path = tmp_path / "t.csv"
    T.to_csv(boards, path)
    df = pd.read_csv(path)
    assert {
        "dataset",
        "direction",
        "metric",
        "preset",
        "split",
        "method",
        "bits",
        "noise_rate",
        "mean",
        "std",
        "n",
    } <= set(df.columns)
    for col in ("mean", "std", "n", "bits"):
        assert pd.api.types.is_numeric_dtype(df[col])
    row = df[(df.preset == "fast") & (df.method == "dcmh") & (df.bits == 32) & (df.noise_rate == 0.5)]
    assert int(row.n.iloc[0]) == 2
    miss = df[(df.method == "nrch-nogmm") & (df.bits == 32)]
    assert (miss.n == 0).all() and miss["mean"].isna().all()


def test_markdown_layout(boards):
    md = _fast(boards).to_markdown()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert header.count("|") == 2 + len(BITS) * len(RATES)
    assert "16 bits, η=0.2" in header
    assert "| djsrh† |" in md and "| chance |" in md and "(n=2)" in md and T.DASH in md


def _tabular_rows(tex: str) -> list[str]:
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    return [r.strip() for r in body.strip().split("\\\\") if r.strip()]


def test_latex_structure(boards):
    b = _fast(boards)
    tex = b.to_latex()
    for token in (
        "\\toprule",
        "\\midrule",
        "\\bottomrule",
        "\\textbf{",
        "\\underline{",
        "\\multicolumn{3}{c}{16 bits}",
    ):
        assert token in tex
    assert "\\caption{" in tex and "\\label{tab:" in tex
    ncols = 1 + len(BITS) * len(RATES)
    assert f"\\begin{{tabular}}{{l{'r' * (ncols - 1)}}}" in tex
    for row in _tabular_rows(tex):
        assert row.count("&") == ncols - 1, row
    assert "±" not in tex and "†" not in tex and "—" not in tex  # only LaTeX-safe text
    assert tex.count("{") == tex.count("}")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(boards, tmp_path):
    doc = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + T.to_latex(boards) + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_load_records_skips_unreadable(tmp_path, records):
    write_records(tmp_path, records[:5])
    (tmp_path / "runs" / "mirflickr" / "0123456789abcdef.json").write_text("{not json")
    assert len(T.load_records(tmp_path)) == 5


# --------------------------------------------------------------------------- compare


def test_reference_is_package_data():
    ref = load_reference("paper")
    assert len(ref) == 432
    assert set(ref["method"]) == {"nrch", "dcmh", "djsrh"}
    assert pd.api.types.is_float_dtype(ref["map"])


def test_compare_with_paper():
    ref = load_reference("paper")
    sel = ref[(ref.dataset == "mirflickr") & (ref.method == "nrch") & (ref.direction == "avg")]
    paper_16_08 = float(sel[(sel.bits == 16) & (sel.noise_rate == 0.8)]["map"].iloc[0])
    ours = [make_record("nrch", 16, 0.8, s, values={"i2t": 0.70 + 0.01 * s, "t2i": 0.72 + 0.01 * s}) for s in SEEDS]
    ours.append(make_record("nrch-nogmm", 16, 0.8, 0))
    (cmp,) = compare_with_reference(ours, "paper")
    assert cmp.dataset == "mirflickr" and cmp.direction == "avg"
    ours_mean = np.mean([0.71, 0.72, 0.73])
    assert cmp.paper.loc["nrch", (16, 0.8)] == pytest.approx(paper_16_08)
    assert cmp.diff.loc["nrch", (16, 0.8)] == pytest.approx(ours_mean - paper_16_08)
    cell = cmp.cells().loc["nrch", (16, 0.8)]
    assert cell == f"{ours_mean:.3f} / {paper_16_08:.3f} ({ours_mean - paper_16_08:+.3f})"
    assert np.isnan(cmp.paper.loc["nrch-nogmm", (16, 0.8)])  # not in the paper
    md = cmp.to_markdown()
    assert "query set" in md and "last epoch" in md and "unseeded" in md
    assert "\\toprule" in cmp.to_latex() and "query set" in cmp.to_latex()
    df = pd.read_csv(__import__("io").StringIO(cmp.to_csv()))
    assert {"ours_mean", "paper", "diff"} <= set(df.columns)


def test_compare_skips_datasets_not_in_paper():
    assert compare_with_reference([make_record("nrch", 16, 0.8, 0, dataset="wiki")], "paper") == []


# --------------------------------------------------------------------------- plots


@pytest.mark.parametrize("kind", ["noise", "selection", "loss-hist", "pr"])
def test_plots_write_png_and_pdf(records, tmp_path, kind):
    from nrchbench.report import plots

    fn = {
        "noise": plots.plot_map_vs_noise,
        "selection": plots.plot_selection,
        "loss-hist": plots.plot_loss_histogram,
        "pr": plots.plot_pr_curves,
    }[kind]
    if kind != "noise":  # fewer figures: each PNG+PDF pair costs about a second
        records = [r for r in records if r["spec"]["bits"] == 16 and r["spec"]["noise_rate"] in (None, 0.8)]
    paths = fn(records, tmp_path, preset="fast")
    assert paths
    suffixes = {p.suffix for p in paths}
    assert suffixes == {".png", ".pdf"}
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0 and p.parent == tmp_path
        assert re.fullmatch(r"[A-Za-z0-9_.@=-]+", p.name)
