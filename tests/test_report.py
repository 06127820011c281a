"""Leaderboards, significance, robustness, layouts, rendering, comparisons and plots on
constructed typed records (schema 2, plus schema-1 records read through the migration)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nrchbench.errors import ConfigError
from nrchbench.records import Record, parse_record, record_path
from nrchbench.report import compare_with_reference, leaderboard, load_reference, render, robustness
from nrchbench.report.render import to_latex, to_markdown
from nrchbench.spec import IDENTITY_FIELDS, RunSpec, compute_run_id

BITS = (16, 32)
RATES = (0.2, 0.5, 0.8)
SEEDS = (0, 1, 2)
BASE = {"nrch": 0.80, "dcmh": 0.70, "nrch-nogmm": 0.75, "djsrh": 0.65}
MISSING = ("dcmh", 32, 0.5, 2)  # one seed never ran
FAILED = ("dcmh", 16, 0.8, 2)  # one seed failed
_ENV = {
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
}


def value_of(method: str, bits: int, rate: float | None, seed: int, direction: str) -> float:
    rng = np.random.default_rng(zlib.crc32(repr((method, bits, rate, seed, direction)).encode()))
    drop = 0.0 if rate is None else 0.15 * rate
    off = {"i2t": 0.01, "t2i": -0.01}[direction]
    return float(BASE.get(method, 0.6) - drop + 0.005 * bits / 16 + off + rng.normal(0, 0.01))


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
    params: dict[str, Any] | None = None,
    resolved: dict[str, Any] | None = None,
    chance: float = 0.54,
    drop_metrics: tuple[str, ...] = (),
    created: str | None = None,
    **spec_fields: Any,
) -> Record:
    """A schema-2 record; ``values`` = {"i2t": v, "t2i": v} (default: a seeded function of the
    spec); ``spec_fields`` set other spec fields (dataset_options, split_seed, selection, ...)."""
    inv = rate is None
    spec = RunSpec(
        method=method,
        dataset=dataset,
        bits=bits,
        noise_model=None if inv else spec_fields.pop("noise_model", "nrch"),
        noise_rate=rate,
        seed=seed,
        preset=preset,
        params=params or {},
        split=spec_fields.pop("split", "nrch"),
        resolved_params=resolved or {"epochs": 3, **(params or {})},
        preset_requested=preset,
        noise_invariant=inv,
        **spec_fields,
    )
    metrics: dict = {}
    history: list[dict] = []
    diagnostics: dict = {}
    if status == "ok":
        for d in ("i2t", "t2i"):
            v = values[d] if values else value_of(method, bits, rate, seed, d)
            metrics[d] = {
                "map": v,
                "map_tie": v - 0.02,
                "map@100": v + 0.05,
                "precision@100": v + 0.03,
                "chance": chance,
                "num_queries": 100,
                "num_queries_no_relevant": 0,
                "pr_curve": {
                    "radius": list(range(bits + 1)),
                    "precision": [0.0, *np.linspace(v + 0.1, 0.55, bits).tolist()],
                    "recall": [0.0, *np.linspace(0.01, 1.0, bits).tolist()],
                    "support": [0, *([100] * bits)],
                },
            }
        metrics["avg"] = {k: (metrics["i2t"][k] + metrics["t2i"][k]) / 2 for k in metrics["i2t"] if k != "pr_curve"}
        for d in metrics:
            for k in drop_metrics:
                metrics[d].pop(k, None)
        for epoch in range(3):
            h = {"epoch": epoch, "loss": 1.0 / (epoch + 1)}
            if method.startswith("nrch") and not inv:
                h.update(selected_fraction=1 - rate * 0.5, sel_precision=0.7 + 0.05 * epoch, sel_recall=0.9)
            history.append(h)
        if method == "nrch" and not inv:
            edges = np.linspace(0, 1, 21)
            centers = (edges[:-1] + edges[1:]) / 2
            diagnostics["sample_loss_hist"] = {
                "epoch": 2,
                "edges": edges.tolist(),
                "clean": np.round(1000 * np.exp(-((centers - 0.2) ** 2) / 0.01)).astype(int).tolist(),
                "noisy": np.round(400 * rate * np.exp(-((centers - 0.75) ** 2) / 0.02)).astype(int).tolist(),
                "gmm": {"means": [0.2, 0.75], "variances": [0.005, 0.01], "weights": [0.7, 0.3]},
            }
    return parse_record(
        {
            "schema_version": 2,
            "run_id": spec.run_id,
            "status": status,
            "error": None if status == "ok" else "RuntimeError: NaN in loss",
            "spec": spec.model_dump(mode="json"),
            "dataset": {"dataset": dataset, "split_rule": spec.split},
            "metrics": metrics,
            "history": history,
            "diagnostics": diagnostics,
            "timing": dict.fromkeys(("load", "noise", "fit", "encode", "evaluate", "total"), 0.1),
            "env": _ENV,
            "created": created or f"2026-11-27T10:00:{seed:02d}Z",
        }
    )


def schema1_record(method: str, bits: int, rate: float, seed: int, value: float) -> Record:
    """A record as nrchbench wrote it before the redesign (schema 1), read through the migration."""
    spec = {
        "method": method,
        "dataset": "mirflickr",
        "bits": bits,
        "noise_model": "nrch",
        "noise_rate": rate,
        "noise_params": {},
        "seed": seed,
        "preset": "fast",
        "params": {},
        "split": "nrch",
        "split_seed": 0,
        "val_size": 0,
        "dataset_options": {},
        "resolved_params": {"epochs": 3},
        "preset_requested": "fast",
        "device": "cpu",
        "noise_invariant": False,
        "selection": "last-epoch",
    }
    m = {"map": value, "map_tie": value, "chance": 0.5}
    return parse_record(
        {
            "schema_version": 1,
            "run_id": compute_run_id({k: spec[k] for k in IDENTITY_FIELDS}),
            "status": "ok",
            "error": None,
            "spec": spec,
            "dataset": {},
            "noise_report": None,
            "metrics": {"i2t": m, "t2i": m, "avg": m},
            "history": [],
            "diagnostics": {},
            "timing": dict.fromkeys(("load", "noise", "fit", "encode", "evaluate", "total"), 0.1),
            "env": _ENV,
            "codes": None,
            "created": "2025-01-01T00:00:00Z",
        }
    )


def make_records() -> list[Record]:
    """3 noise-aware methods (one only at 16 bits), a noise-invariant one, a failed run, two presets."""
    recs = []
    for bits in BITS:
        for seed in SEEDS:
            recs.append(make_record("djsrh", bits, None, seed))
            for rate in RATES:
                for method in ("nrch", "dcmh"):
                    key = (method, bits, rate, seed)
                    if key != MISSING:
                        recs.append(make_record(method, bits, rate, seed, status="failed" if key == FAILED else "ok"))
                if bits == 16:
                    recs.append(make_record("nrch-nogmm", bits, rate, seed))
    for seed in SEEDS:  # a second preset: never mixed into the 'fast' tables
        recs.append(make_record("nrch", 16, 0.8, seed, preset="paper"))
    return recs


def write_records(root: Path, records: list[Record]) -> Path:
    for rec in records:
        p = record_path(root, rec)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(rec.to_dict()))
    return root


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return make_records()


@pytest.fixture(scope="module")
def fast(records):
    (b,) = leaderboard(records, preset="fast")
    return b


def cell(board, method: str, bits: int, rate: float) -> pd.Series:
    """The aggregated cell of a method (registry name) in a board."""
    row = board.rows.index[board.rows["method"] == method]
    assert len(row) == 1, (method, list(board.rows["method"]))
    c = board.cells
    hit = c[(c["row"] == row[0]) & (c["bits"] == bits) & np.isclose(c["noise_rate"].fillna(-1), rate)]
    assert len(hit) == 1
    return hit.iloc[0]


def values(records, method, bits, rate, direction="avg", metric="map", preset="fast"):
    return np.array(
        [
            r.metrics[direction][metric]
            for r in records
            if (r.spec.method, r.spec.bits, r.spec.noise_rate, r.spec.preset, r.status)
            == (method, bits, rate, preset, "ok")
        ]
    )


def seeds_records(method: str, vals: list[float], **kw) -> list[Record]:
    """One record per seed with avg map = vals[seed] (i2t = t2i)."""
    return [make_record(method, 16, 0.5, s, values={"i2t": v, "t2i": v}, **kw) for s, v in enumerate(vals)]


# --------------------------------------------------------------------------- tables


def test_one_table_per_preset_and_direction(records):
    boards = leaderboard(records, direction="all")
    assert [(b.identity.preset, b.identity.direction) for b in boards] == [
        ("fast", "i2t"),
        ("fast", "t2i"),
        ("fast", "avg"),
        ("paper", "i2t"),
        ("paper", "t2i"),
        ("paper", "avg"),
    ]
    paper = boards[-1]
    assert list(paper.rows["method"]) == ["nrch"] and paper.grid == [(16, 0.8)]
    assert "preset paper" in paper.caption() and "preset" in paper.heading


@pytest.mark.parametrize("direction", ["i2t", "t2i", "avg"])
def test_mean_std_n_ci_against_numpy(records, direction):
    (b,) = leaderboard(records, preset="fast", direction=direction)
    for method in ("nrch", "dcmh"):
        for bits in BITS:
            for rate in RATES:
                vals = values(records, method, bits, rate, direction)
                c = cell(b, method, bits, rate)
                assert c["n"] == len(vals)
                assert c["mean"] == pytest.approx(vals.mean())
                assert c["std"] == pytest.approx(vals.std(ddof=1))
                lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=stats.sem(vals))
                assert (c["ci_low"], c["ci_high"]) == pytest.approx((lo, hi))


def test_missing_failed_and_seed_count(fast):
    t = fast.views()[0].text("text")
    assert fast.usual_n == 3
    assert t.loc["DCMH", ("32 bits", "η=0.5")].endswith("(n=2)")  # a seed never ran
    assert t.loc["DCMH", ("16 bits", "η=0.8")].endswith("(n=2)")  # a seed failed
    assert "(n=" not in t.loc["NRCH", ("16 bits", "η=0.2")]
    for rate in RATES:  # nrch-nogmm only ran at 16 bits: visibly missing at 32
        assert t.loc["NRCH-nogmm", ("32 bits", f"η={rate:g}")] == "—"
    assert fast.failed == 1 and any("1 failed run" in n for n in fast.notes())


def test_noise_invariant_repeated_not_ranked(records, fast):
    t = fast.views()[0].text("text")
    for bits in BITS:
        assert len({t.loc["DJSRH†", (f"{bits} bits", f"η={r:g}")] for r in RATES}) == 1
        assert cell(fast, "djsrh", bits, 0.2)["mean"] == pytest.approx(values(records, "djsrh", bits, None).mean())
    inv = fast.cells[fast.cells["row"].map(fast.rows["invariant"])]
    assert (inv["mark"] == "").all()
    assert any(n.startswith("†") for n in fast.notes())


def test_chance_row(fast):
    t = fast.views()[0].text("text")
    assert t.index[-1] == "chance" and set(t.loc["chance"]) == {"0.540"}


def test_unknown_descriptive_and_bad_direction(records):
    with pytest.raises(ConfigError, match="unknown metric 'accuracy'"):
        leaderboard(records, metric="accuracy")
    with pytest.raises(ConfigError, match="descriptive"):
        leaderboard(records, metric="chance")
    with pytest.raises(ConfigError, match="unknown direction"):
        leaderboard(records, direction="x2y")


def test_a_table_of_noise_invariant_methods_only():
    (b,) = leaderboard([make_record("djsrh", 16, None, s) for s in SEEDS] + [make_record("djsrh", 32, None, 0)])
    assert b.identity.noise_model == "" and "noise-invariant methods only" in b.caption()
    t = b.views()[0].text("text")
    assert list(t.columns) == [("16 bits", "any"), ("32 bits", "any")]
    assert t.loc["DJSRH†", ("32 bits", "any")].endswith("(n=1)") and t.loc["chance", ("16 bits", "any")] == "0.540"


def test_old_schema1_records_still_table():
    recs = [schema1_record(m, 16, 0.5, s, v + 0.01 * s) for m, v in (("nrch", 0.7), ("dcmh", 0.6)) for s in SEEDS]
    (b,) = leaderboard(recs)
    assert b.identity.selection == "last" and cell(b, "nrch", 16, 0.5)["mean"] == pytest.approx(0.71)


# --------------------------------------------------------------------------- identity


def test_runs_on_different_data_never_share_a_table():
    """Issue 18's reproduction: nrch on n=1500 must not be ranked against nrch-nodns on n=600."""
    recs = [make_record("nrch", 16, 0.5, 0, dataset="synthetic", dataset_options={"n": 600}, chance=0.30)]
    recs += [make_record("nrch-nodns", 16, 0.5, 0, dataset="synthetic", dataset_options={"n": 600}, chance=0.30)]
    recs += [make_record("nrch", 16, 0.5, 0, dataset="synthetic", dataset_options={"n": 1500}, chance=0.50)]
    boards = leaderboard(recs)
    assert len(boards) == 2
    by_n = {json.loads(b.identity.dataset_options)["n"]: b for b in boards}
    assert sorted(by_n[600].rows["method"]) == ["nrch", "nrch-nodns"]
    assert list(by_n[1500].rows["method"]) == ["nrch"]
    assert by_n[600].chance == {(16, 0.5): 0.30} and by_n[1500].chance == {(16, 0.5): 0.50}
    for n, b in by_n.items():
        assert f"dataset options n={n}" in b.heading and f"n={n}" in b.caption()
    md = render(boards, "markdown")
    assert md.count("### synthetic") == 2


@pytest.mark.parametrize(
    "field",
    [
        {"split_seed": 3},
        {"val_size": 100},
        {"feature_transform": "zscore"},
        {"noise_params": {"flip": 0.3}},
        {"selection": "val", "val_size": 100},
        {"zero_relevant": "zero"},
        {"split": "random"},
    ],
)
def test_every_protocol_field_separates_tables(field):
    recs = [make_record("nrch", 16, 0.5, s) for s in SEEDS] + [make_record("dcmh", 16, 0.5, s, **field) for s in SEEDS]
    boards = leaderboard(recs)
    assert len(boards) == 2 and all(len(b.rows) == 1 for b in boards)
    assert len({b.heading for b in boards}) == 2  # the headings say which is which


def test_rows_dedupe_on_the_whole_spec():
    recs = seeds_records("nrch", [0.7, 0.71, 0.72]) + seeds_records("nrch", [0.6, 0.61, 0.62], resolved={"epochs": 9})
    (b,) = leaderboard(recs)
    assert len(b.rows) == 2 and b.rows["label"].str.contains("epochs=").all()
    assert set(b.cells["n"]) == {3}
    dup = seeds_records("nrch", [0.9, 0.9, 0.9], created="2027-01-01T00:00:00Z")  # same specs, newer
    (b,) = leaderboard(recs[:3] + dup)
    assert b.duplicates == 3 and cell(b, "nrch", 16, 0.5)["mean"] == pytest.approx(0.9)
    assert any("duplicate" in n for n in b.notes())


def test_human_labels():
    recs = [make_record("dcmh", 16, 0.5, 0, params={"standardize": True}), make_record("nrch-nogmm", 16, 0.5, 0)]
    recs.append(make_record("dcmh", 16, 0.5, 0, params={"standardize": False, "lr": 0.01}))
    (b,) = leaderboard(recs, labels={"nrch-nogmm": "NRCH w/o GMM"})
    assert sorted(b.rows["label"]) == ["DCMH (lr=0.01)", "DCMH (standardize)", "NRCH w/o GMM"]


# --------------------------------------------------------------------------- significance


def test_clear_win_is_bold_and_tie_is_marked():
    rng = np.random.default_rng(0)
    base = 0.7 + rng.normal(0, 0.02, 5)  # the seed moves every method alike (same noisy labels)
    gain = 0.05 + rng.normal(0, 0.003, 5)
    recs = seeds_records("nrch", list(base + gain)) + seeds_records("dcmh", list(base))
    (b,) = leaderboard(recs)
    assert b.significance == "paired-t"
    assert cell(b, "nrch", 16, 0.5)["mark"] == "best" and cell(b, "dcmh", 16, 0.5)["mark"] == "second"
    p = cell(b, "dcmh", 16, 0.5)["p_vs_best"]
    assert p == pytest.approx(stats.ttest_rel(base + gain, base, alternative="greater").pvalue)
    md = to_markdown(b.views()[0])
    assert "| **0.75" in md and "| _0.70" in md and "<u>" not in md and "paired t-test" in md
    # a third method within seed noise of the best: a tie, and nobody is bold
    recs += seeds_records("nrch-nodns", list(base + gain + rng.normal(0, 0.03, 5)))
    (b,) = leaderboard(recs)
    assert cell(b, "nrch", 16, 0.5)["mark"] == "tie" and cell(b, "nrch-nodns", 16, 0.5)["mark"] == "tie"
    assert cell(b, "dcmh", 16, 0.5)["mark"] == ""
    rows = [line for line in to_markdown(b.views()[0]).splitlines() if line.startswith("| ")]
    assert not any("**" in r for r in rows) and sum(r.endswith(" ≈ |") for r in rows) == 2
    tex = to_latex(b.views()[0])
    assert "\\textbf" not in tex and tex.count("$\\approx$") >= 2


def test_pairing_by_seed_finds_what_an_unpaired_view_misses():
    base = [0.5, 0.7, 0.9]  # huge spread across seeds, a small consistent gain
    recs = seeds_records("nrch", [v + d for v, d in zip(base, (0.010, 0.012, 0.011), strict=True)])
    recs += seeds_records("dcmh", base)
    (b,) = leaderboard(recs)
    assert cell(b, "nrch", 16, 0.5)["mark"] == "best"


def test_fewer_than_three_seeds_ranks_by_mean_and_says_so():
    (b,) = leaderboard(seeds_records("nrch", [0.8, 0.81]) + seeds_records("dcmh", [0.7, 0.8]))
    assert b.significance == "mean" and cell(b, "nrch", 16, 0.5)["mark"] == "best"
    assert "no significance test" in b.notes()[0]


def test_ci_shows_t_intervals(fast):
    c = cell(fast, "nrch", 16, 0.2)
    text = fast.views(ci=True)[0].text("text").loc["NRCH", ("16 bits", "η=0.2")]
    assert f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]" in text and "±" not in text
    assert "95% t-interval" in fast.caption(ci=True)


# --------------------------------------------------------------------------- robustness


def test_robustness_against_a_hand_computation():
    table = {"nrch": [(0.80, 0.78, 0.74), (0.82, 0.79, 0.75), (0.81, 0.80, 0.73)],
             "dcmh": [(0.70, 0.60, 0.45), (0.72, 0.61, 0.44), (0.69, 0.58, 0.46)]}  # fmt: skip
    recs = [
        make_record(m, 16, rate, s, values={"i2t": v, "t2i": v})
        for m, per_seed in table.items()
        for s, vs in enumerate(per_seed)
        for rate, v in zip(RATES, vs, strict=True)
    ]
    (b,) = leaderboard(recs)
    r = robustness(b)
    for m, per_seed in table.items():
        auc = [((a + c) / 2 * 0.3 + (c + e) / 2 * 0.3) / 0.6 for a, c, e in per_seed]
        drop = [(a - e) / a for a, _, e in per_seed]
        row = b.rows.index[b.rows["method"] == m][0]
        got = r.cells.set_index(["row", "measure"])
        assert got.loc[(row, "auc"), "mean"] == pytest.approx(np.mean(auc))
        assert got.loc[(row, "auc"), "std"] == pytest.approx(np.std(auc, ddof=1))
        assert got.loc[(row, "drop"), "mean"] == pytest.approx(np.mean(drop))
    marks = r.cells.set_index(["row", "measure"])["mark"]
    nrch = b.rows.index[b.rows["method"] == "nrch"][0]
    assert marks[(nrch, "auc")] == "best" and marks[(nrch, "drop")] == "best"  # drop: lower is better
    md = to_markdown(r.view())
    assert "16 bits, AUC" in md and "16 bits, drop (%)" in md
    assert f"{100 * np.mean([(a - e) / a for a, _, e in table['dcmh']]):.1f}" in md


def test_robustness_needs_two_rates():
    (b,) = leaderboard(seeds_records("nrch", [0.8, 0.8, 0.8]))
    assert robustness(b) is None


# --------------------------------------------------------------------------- missing metrics


def test_a_metric_no_record_has_is_refused_in_one_line(records):
    with pytest.raises(ConfigError) as exc:
        leaderboard(records, metric="map@50")
    msg = str(exc.value)
    assert "no record has metric 'map@50'" in msg and "map@100" in msg and "\n" not in msg


def test_not_computed_is_not_failed():
    recs = [make_record("nrch", 16, 0.5, s, drop_metrics=("map@100",)) for s in SEEDS]
    recs += [make_record("dcmh", 16, 0.5, s) for s in SEEDS]
    recs += [make_record("dcmh", 16, 0.8, s, status="failed") for s in SEEDS]
    (b,) = leaderboard(recs, metric="map@100")
    t = b.views()[0].text("text")
    assert t.loc["NRCH", ("16 bits", "η=0.5")] == "not computed"
    assert t.loc["DCMH", ("16 bits", "η=0.8")] == "failed"
    assert b.not_computed == 3 and b.failed == 3
    notes = " ".join(b.notes())
    assert "not computed: 3 successful run(s) lack map@100" in notes and "3 failed run(s)" in notes


def test_selection_precision_tables_only_the_selecting_methods():
    """Issue 15: the last epoch's selection precision ranks separators; non-selecting rows are left out."""
    recs = [make_record(m, 16, 0.5, s) for m in ("nrch", "nrch-nogmm", "dcmh") for s in SEEDS]
    (b,) = leaderboard(recs, metric="sel_precision", direction="avg")
    t = b.views()[0].text("text")
    assert set(t.index) == {"NRCH", "NRCH-nogmm"}  # dcmh logs no selection
    assert t.loc["NRCH", ("16 bits", "η=0.5")].startswith("0.800 ± 0.000")  # epoch 2: 0.7 + 0.05·2
    with pytest.raises(ConfigError, match="descriptive"):
        leaderboard(recs, metric="selected_fraction")


def test_missing_metric_is_evaluated_again_from_saved_codes(tmp_path):
    from nrchbench.metrics.codes import save_codes
    from nrchbench.records import codes_path
    from nrchbench.runner import evaluate_codes_file

    rng = np.random.default_rng(0)
    labels_q, labels_db = rng.random((30, 5)) < 0.3, rng.random((120, 5)) < 0.3
    recs = []
    for s in SEEDS:
        rec = make_record("nrch", 16, 0.5, s, drop_metrics=("map@100",))
        rec = rec.model_copy(update={"codes": codes_path(tmp_path, rec).name})
        codes_path(tmp_path, rec).parent.mkdir(parents=True, exist_ok=True)
        save_codes(
            codes_path(tmp_path, rec),
            query_image=np.sign(rng.normal(size=(30, 16))),
            query_text=np.sign(rng.normal(size=(30, 16))),
            db_image=np.sign(rng.normal(size=(120, 16))),
            db_text=np.sign(rng.normal(size=(120, 16))),
            query_labels=labels_q,
            db_labels=labels_db,
        )
        recs.append(rec)
    write_records(tmp_path, recs)
    expected = [evaluate_codes_file(codes_path(tmp_path, r))["avg"]["map@100"] for r in recs]
    (b,) = leaderboard(recs, metric="map@100", results_dir=tmp_path)
    assert cell(b, "nrch", 16, 0.5)["mean"] == pytest.approx(np.mean(expected)) and b.not_computed == 0
    (b,) = leaderboard(recs, metric="map@100", require=False)  # without the results directory: not computed
    assert b.not_computed == 3
    with pytest.raises(ConfigError, match="none has saved codes"):
        leaderboard(recs, metric="map@100")


# --------------------------------------------------------------------------- layouts


def test_columns_are_the_grid_present_not_a_product():
    recs = [make_record(m, 16, r, s) for m in ("nrch", "dcmh") for r in RATES for s in SEEDS]
    recs += [make_record("nrch", 64, 0.5, s) for s in SEEDS]  # one stray run
    (b,) = leaderboard(recs)
    assert b.grid == [(16, 0.2), (16, 0.5), (16, 0.8), (64, 0.5)]
    t = b.views()[0].text("text")
    assert list(t.columns) == [("16 bits", "η=0.2"), ("16 bits", "η=0.5"), ("16 bits", "η=0.8"), ("64 bits", "η=0.5")]
    assert t.loc["DCMH", ("64 bits", "η=0.5")] == "—" and any("not run" in n for n in b.notes())
    (b,) = leaderboard(recs, bits=[16, 64], noise_rates=[0.2, 0.5])  # asked for: exactly that grid
    assert b.grid == [(16, 0.2), (16, 0.5), (64, 0.2), (64, 0.5)]
    assert b.views()[0].text("text").loc["NRCH", ("64 bits", "η=0.2")] == "—"


def test_layouts_move_cells_without_changing_them(fast):
    default = fast.views()[0].text("text")
    per_bits = fast.views(rows="method", columns="noise")
    assert [v.heading.rsplit(" · ", 1)[-1] for v in per_bits] == ["16 bits", "32 bits"]
    for v, bits in zip(per_bits, BITS, strict=True):
        t = v.text("text")
        assert list(t.columns) == [f"η={r:g}" for r in RATES]
        for r in RATES:
            assert t.loc["NRCH", f"η={r:g}"] == default.loc["NRCH", (f"{bits} bits", f"η={r:g}")]
    per_rate = fast.views(rows=["method"], columns=["bits"])
    assert len(per_rate) == 3 and list(per_rate[0].text("text").columns) == ["16 bits", "32 bits"]
    (tr,) = fast.views(rows="bits,noise", columns="method")
    t = tr.text("text")
    assert "chance" in t.columns and t.loc[("16 bits", "η=0.5"), "NRCH"] == default.loc["NRCH", ("16 bits", "η=0.5")]
    (grouped,) = fast.views(rows="method,bits", columns="noise")
    assert grouped.text("text").loc[("NRCH", "32 bits"), "η=0.8"] == default.loc["NRCH", ("32 bits", "η=0.8")]
    with pytest.raises(ConfigError, match="unknown table axis 'seed'"):
        fast.views(rows="method", columns="seed")
    with pytest.raises(ConfigError, match="each axis once"):
        fast.views(rows="method", columns="method,bits")


def test_strategy_axis_pivots_method_plus_strategy_rows_without_changing_cells():
    """Issue 15: ``--columns strategy`` = base methods × strategies; the same cells as the rows
    ``DCMH + ELR``; a pair never run is ``—``; ``strategies`` filters like the other axes."""
    recs = [
        make_record(m, 16, r, s, strategy=st)
        for m, sts in (("dcmh", ("none", "elr", "gmm-select")), ("nrch-nodns", ("none", "gmm-select")))
        for st in sts
        for r in (0.2, 0.8)
        for s in SEEDS
    ]
    recs += [make_record("nrch", 16, r, s) for r in (0.2, 0.8) for s in SEEDS]
    (b,) = leaderboard(recs)
    default = b.views()[0].text("text")
    assert {"DCMH + ELR", "DCMH + GMM-select", "NRCH-nodns + GMM-select", "NRCH"} <= set(default.index)
    per_cell = b.views(rows="method", columns="strategy")
    assert [v.heading.rsplit(" · ", 1)[-1] for v in per_cell] == ["16 bits, η=0.2", "16 bits, η=0.8"]
    t = per_cell[1].text("text")
    assert list(t.columns) == ["none", "ELR", "GMM-select"]  # the base method first, then by name
    assert list(t.index) == ["DCMH", "NRCH", "NRCH-nodns", "chance"]
    assert t.loc["DCMH", "ELR"] == default.loc["DCMH + ELR", ("16 bits", "η=0.8")]
    assert t.loc["NRCH-nodns", "GMM-select"] == default.loc["NRCH-nodns + GMM-select", ("16 bits", "η=0.8")]
    assert t.loc["NRCH", "none"] == default.loc["NRCH", ("16 bits", "η=0.8")]
    assert t.loc["NRCH", "ELR"] == "—" and t.loc["NRCH-nodns", "ELR"] == "—"
    assert set(t.loc["chance"]) == {default.loc["chance", ("16 bits", "η=0.8")]}
    assert "— : not run." in per_cell[1].notes
    # one table per base method: rows are its strategies
    per_method = b.views(rows="strategy", columns="noise")
    assert [v.heading.rsplit(" · ", 1)[-1] for v in per_method] == [
        "DCMH, 16 bits",
        "NRCH, 16 bits",
        "NRCH-nodns, 16 bits",
    ]
    assert list(per_method[0].text("text").index) == ["none", "ELR", "GMM-select"]
    (grouped,) = b.views(rows="method,strategy", columns="bits,noise")
    g = grouped.text("text")
    assert ("NRCH", "ELR") not in g.index and g.loc[("chance", ""), ("16 bits", "η=0.2")] == default.loc[
        "chance", ("16 bits", "η=0.2")
    ]
    assert g.loc[("DCMH", "ELR"), ("16 bits", "η=0.2")] == default.loc["DCMH + ELR", ("16 bits", "η=0.2")]
    # the filter
    (only,) = leaderboard(recs, strategies=["none", "GMM-select"])
    assert set(only.rows["strategy"]) == {"none", "gmm-select"}
    with pytest.raises(ConfigError, match="unknown strategy 'bogus'"):
        leaderboard(recs, strategies=["bogus"])


def test_labels_made_equal_are_told_apart_or_refused():
    """Review of issue 15: two rows (or strategies) that --label makes equal must not crash a pivot."""
    recs = [make_record("dcmh", 16, 0.5, s, strategy=st) for st in ("none", "elr", "gce") for s in SEEDS]
    recs += [make_record("nrch-nodns", 16, 0.5, s) for s in SEEDS]
    (b,) = leaderboard(recs, labels={"elr": "Robust", "gce": "Robust", "dcmh": "X", "nrch-nodns": "X"})
    t = b.views(rows="method", columns="strategy")[0].text("text")
    assert list(t.columns) == ["none", "Robust [elr]", "Robust [gce]"]
    assert list(t.index) == ["X [dcmh]", "X [nrch-nodns]", "chance"]
    t = b.views(rows="strategy", columns="method")[0].text("text")
    assert list(t.index) == ["none", "Robust [elr]", "Robust [gce]"] and set(t["chance"]) == {"0.540"}


# --------------------------------------------------------------------------- rendering


def test_csv_is_long_and_plain(records):
    df = pd.read_csv(io.StringIO(render(leaderboard(records, direction="all"), "csv")))
    keys = {"dataset", "dataset_options", "split", "preset", "selection", "zero_relevant", "noise_model", "direction"}
    assert keys | {"method", "params", "label", "bits", "noise_rate", "mean", "std", "n", "ci_low", "mark"} <= set(df)
    for col in ("mean", "std", "n", "bits", "ci_low"):
        assert pd.api.types.is_numeric_dtype(df[col])
    row = df[(df.preset == "fast") & (df.method == "dcmh") & (df.bits == 32) & (df.noise_rate == 0.5)]
    assert set(row["n"]) == {2}
    miss = df[(df.method == "nrch-nogmm") & (df.bits == 32)]
    assert (miss.n == 0).all() and miss["mean"].isna().all() and set(miss["state"]) == {"missing"}


def _tabular_rows(tex: str) -> list[str]:
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    return [r.strip() for r in body.strip().split("\\\\") if r.strip()]


def test_latex_structure_and_escaping():
    recs = [make_record("dcmh", b, r, s, params={"lr_schedule": "tf"}) for b in BITS for r in RATES for s in SEEDS]
    recs += [make_record("nrch", b, r, s) for b in BITS for r in RATES for s in SEEDS]
    (b,) = leaderboard(recs, metric="map_tie")
    tex = to_latex(b.views()[0])
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{", "\\label{tab:", "16 bits", "$\\eta$=0.2"):
        assert token in tex
    assert "DCMH (lr\\_schedule=tf)" in tex and "map\\_tie" not in tex.split("\\caption")[0]
    ncols = 1 + len(BITS) * len(RATES)
    assert f"\\begin{{tabular}}{{l{'r' * (ncols - 1)}}}" in tex
    for row in _tabular_rows(tex):
        assert row.count("&") == ncols - 1, row
    assert not re.search("[±†—η≈→·]", tex)  # only what pdflatex reads
    assert tex.count("{") == tex.count("}")


def test_latex_fit_resize_and_split(fast):
    (v,) = fast.views()
    resized = to_latex(v, fit="resize")
    assert "\\resizebox{\\linewidth}{!}{%" in resized and resized.count("{") == resized.count("}")
    parts = to_latex(v, fit="split", width=345)
    assert parts.count("\\begin{table}") == 2 and "(part 1 of 2)" in parts  # one code length each
    with pytest.raises(ConfigError, match="--fit"):
        to_latex(v, fit="shrink")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(records, tmp_path):
    body = render(leaderboard(records, direction="all"), "latex", fit="resize")
    doc = "\\documentclass{article}\\usepackage{booktabs,graphicx}\\begin{document}\n" + body + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]


# --------------------------------------------------------------------------- compare


def test_paper_reference_states_its_conventions():
    ref = load_reference("paper")
    assert len(ref.table) == 432 and set(ref.table["method"]) == {"nrch", "dcmh", "djsrh"}
    assert "ACM MM 2024" in ref.source
    nrch = ref.table[ref.table["method"] == "nrch"]
    assert set(nrch["selection"]) == {"best of 5 evaluations on the query set"} and set(nrch["metric"]) == {"map"}
    sel = nrch[(nrch.dataset == "mirflickr") & (nrch.direction == "avg") & (nrch.bits == 16) & (nrch.noise_rate == 0.8)]
    paper = float(sel["value"].iloc[0])
    ours = [make_record("nrch", 16, 0.8, s, values={"i2t": 0.70 + 0.01 * s, "t2i": 0.72 + 0.01 * s}) for s in SEEDS]
    (cmp,) = compare_with_reference(ours, "paper")
    (v,) = cmp.views()
    t = v.text("text")
    mean = np.mean([0.71, 0.72, 0.73])
    assert t.loc["NRCH", ("16 bits", "η=0.8")] == f"{mean:.3f} / {paper:.3f} ({mean - paper:+.3f})"
    assert t.loc["NRCH", ("", "reference convention")].startswith("mAP@all; selection: best of 5")
    md = to_markdown(v)
    assert "ACM MM 2024" in md and "selection: last epoch" in md and "unseeded" in md
    df = pd.read_csv(io.StringIO(cmp.long().to_csv(index=False)))
    assert {"ours_mean", "reference", "diff", "reference_selection"} <= set(df.columns)


def test_custom_reference_carries_its_conventions_and_matches_identity(tmp_path):
    ref = tmp_path / "survey.csv"
    ref.write_text(
        "# source: A survey of hashing (2025), Table 3\n"
        "# metric: map@100\n"
        "# selection: last epoch\n"
        "# note: numbers re-run with the authors' code\n"
        "dataset,method,direction,noise_model,noise_rate,bits,value,params\n"
        "mirflickr,DCMH,avg,nrch,0.5,16,0.700,standardize=true\n"
        "mirflickr,dcmh,avg,nrch,0.5,16,0.650,\n"
        "mirflickr,nrch,avg,nrch,0.5,16,0.800,\n"
    )
    ours = seeds_records("dcmh", [0.60, 0.61, 0.62], params={"standardize": True})
    (cmp,) = compare_with_reference(ours, ref)
    (v,) = cmp.views()
    t = v.text("text")
    ours_map100 = np.mean([0.65, 0.66, 0.67])  # the record's map@100: like with like
    assert t.loc["DCMH (standardize)", ("16 bits", "η=0.5")] == f"{ours_map100:.3f} / 0.700 ({ours_map100 - 0.7:+.3f})"
    md = to_markdown(v)
    assert "A survey of hashing (2025)" in md and "re-run with the authors' code" in md and "mAP@100" in md
    assert "query set" not in md and "NRCH paper" not in md and "unseeded" not in md
    assert "DCMH (defaults)" in md and "NRCH (defaults)" in md  # unmatched reference rows are named


def test_reference_metric_we_lack_is_shown_not_computed(tmp_path):
    ref = tmp_path / "at50.csv"
    ref.write_text(
        "# source: DJSRH-style evaluation\n# metric: map@50\n"
        "dataset,method,direction,noise_model,noise_rate,bits,value\nmirflickr,nrch,avg,nrch,0.5,16,0.9\n"
    )
    (cmp,) = compare_with_reference(seeds_records("nrch", [0.7, 0.7, 0.7]), ref)
    (v,) = cmp.views()
    assert v.text("text").loc["NRCH", ("16 bits", "η=0.5")] == "not computed / 0.900"
    assert "mAP@50" in v.caption and v.text("text").loc["NRCH", ("", "reference convention")].startswith("mAP@50")


def test_bad_reference_files_are_refused_in_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("# sauce: me\ndataset,method,direction,noise_model,noise_rate,bits,value\n")
    with pytest.raises(ConfigError, match="line 1: expected '# key: value'"):
        load_reference(bad)
    bad.write_text("dataset,method\n")
    with pytest.raises(ConfigError, match="lacks column"):
        load_reference(bad)
    with pytest.raises(ConfigError, match="unknown reference"):
        load_reference(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- plots


def _texts(fig) -> dict:
    legend = fig.legends[0]
    return {
        "ylabels": [ax.get_ylabel() for ax in fig.axes if ax.get_visible()],
        "xlabels": [ax.get_xlabel() for ax in fig.axes if ax.get_visible()],
        "titles": [ax.get_title() for ax in fig.axes if ax.get_visible()],
        "legend": [t.get_text() for t in legend.get_texts()],
    }


def _legend_clear_of_axes(fig) -> bool:
    """The legend covers no panel, and nothing sticks out of a paper column (3.3 in)."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    box = fig.legends[0].get_window_extent(renderer)
    assert fig.get_tightbbox(renderer).width <= 3.35, fig.get_tightbbox(renderer).width
    return not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible())


def test_noise_plot_texts(records):
    from nrchbench.report.plots import map_vs_noise_figures

    ((_, name, fig),) = list(map_vs_noise_figures(records, preset="fast"))
    t = _texts(fig)
    assert t["ylabels"][0] == "mAP" and t["xlabels"][-1] == "noise rate η"
    assert t["titles"] == ["16 bits", "32 bits"]
    assert t["legend"] == ["DCMH", "DJSRH†", "NRCH", "NRCH-nogmm", "chance"]  # the tables' labels, in their order
    assert fig.get_figwidth() == pytest.approx(3.3) and _legend_clear_of_axes(fig)
    assert name == "map-vs-noise_avg_fast_contiguous_one-swap"


def test_pr_plot_has_no_point_at_recall_zero(records):
    from nrchbench.report.plots import pr_figures

    figs = list(pr_figures([r for r in records if r.spec.bits == 16], preset="fast", noise_rates=[0.8]))
    ((_, name, fig),) = figs
    t = _texts(fig)
    assert t["titles"] == ["image→text", "text→image"] and t["ylabels"][0] == "precision"
    assert t["legend"] == ["DCMH", "DJSRH†", "NRCH", "NRCH-nogmm"]
    for ax in fig.axes:
        for line in ax.get_lines():
            assert (line.get_xdata() > 0).all()
    assert _legend_clear_of_axes(fig) and name == "pr_16bits_fast_contiguous_one-swap-0.8"


def test_diagnostic_plot_texts(records):
    from nrchbench.report.diagnostics_plots import loss_histogram_figures, selection_figures

    recs = [r for r in records if r.spec.bits == 16 and r.spec.preset == "fast"]
    figs = {name: fig for _, name, fig in selection_figures(recs)}
    assert set(figs) == {
        "selection_nrch_16bits_fast_contiguous_one-swap",
        "selection_nrch-nogmm_16bits_fast_contiguous_one-swap",
    }
    t = _texts(figs["selection_nrch_16bits_fast_contiguous_one-swap"])
    assert t["xlabels"][-1] == "epoch" and t["legend"][0] == "η=0.2 (n=3)"
    assert _legend_clear_of_axes(figs["selection_nrch_16bits_fast_contiguous_one-swap"])
    figs = {name: fig for _, name, fig in loss_histogram_figures(recs)}
    fig = figs["loss-hist_nrch_16bits_fast_contiguous_one-swap-0.8_seed0"]
    assert "clean component" in _texts(fig)["legend"] and _legend_clear_of_axes(fig)


def test_plots_write_png_and_pdf_in_a_folder_per_dataset(records, tmp_path):
    from nrchbench.report import plots

    recs = [r for r in records if r.spec.bits == 16 and r.spec.noise_rate in (None, 0.2, 0.8)]
    written = plots.plot_kinds(recs, tmp_path, preset="fast", formats=("png",))
    assert all(written.values())
    for paths in written.values():
        for p in paths:
            assert p.parent == tmp_path / "mirflickr" and p.stat().st_size > 0
            assert re.fullmatch(r"[a-z@-]+(_[A-Za-z0-9@.=+-]+)+\.png", p.name), p.name


def test_the_same_records_give_the_same_figure_bytes(records, tmp_path, monkeypatch):
    """Committed figures do not churn: no creation date in the PDF (the clock moves between writes)."""
    import time as _time

    from nrchbench.report import plots

    recs = [r for r in records if r.spec.bits == 16 and r.spec.noise_rate in (None, 0.2, 0.8)]
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)  # unset: matplotlib stamps the current time
    one = plots.plot_kinds(recs, tmp_path / "a", ["noise"], preset="fast", formats=("pdf", "png"))["noise"]
    later = _time.time() + 3600
    monkeypatch.setattr(_time, "time", lambda: later)
    two = plots.plot_kinds(recs, tmp_path / "b", ["noise"], preset="fast", formats=("pdf", "png"))["noise"]
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


def test_diagnostic_figures_keep_strategies_apart():
    """Two strategies on one base are two figures (their names used to collide: the last overwrote the first)."""
    from nrchbench.report.diagnostics_plots import loss_histogram_figures, selection_figures, separator_figures

    recs = [make_record("nrch-nodns", 16, 0.5, s, strategy=st) for st in ("gmm-select", "coteaching") for s in SEEDS]
    recs += [make_record("nrch", 16, 0.5, s, strategy=st) for st in ("none", "elr") for s in SEEDS]
    names = {name: fig for _, name, fig in selection_figures(recs)}
    assert {
        "selection_nrch-nodns+gmm-select_16bits_fast_contiguous_one-swap",
        "selection_nrch-nodns+coteaching_16bits_fast_contiguous_one-swap",
        "selection_nrch_16bits_fast_contiguous_one-swap",
        "selection_nrch+elr_16bits_fast_contiguous_one-swap",
    } == set(names)
    assert (
        "NRCH-nodns + Co-teaching"
        in names["selection_nrch-nodns+coteaching_16bits_fast_contiguous_one-swap"]._suptitle.get_text()
    )
    (compare,) = [(n, f) for _, n, f in separator_figures(recs)]  # the separators side by side, one rate
    assert compare[0] == "selection-compare_16bits_fast_contiguous_one-swap-0.5"
    legend = _texts(compare[1])["legend"]
    assert legend == sorted(legend, key=str.casefold) and len(legend) == 4 and "NRCH + ELR (n=3)" in legend
    assert _legend_clear_of_axes(compare[1])
    hists = {name for _, name, _ in loss_histogram_figures(recs)}
    assert hists == {
        "loss-hist_nrch_16bits_fast_contiguous_one-swap-0.5_seed0",
        "loss-hist_nrch+elr_16bits_fast_contiguous_one-swap-0.5_seed0",
    }
