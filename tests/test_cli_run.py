"""CLI end to end on a tiny synthetic set: ``run``, ``evaluate`` and ``sweep``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FAILING, TOY, forget_toy_plugins

from nrchbench.cli import main
from nrchbench.records import iter_record_paths, parse_record, read_record

SMALL = ["-d", "n=600", "-d", "image_dim=64", "-d", "text_dim=200"]
TINY = ["--bits", "16", "--preset", "tiny", "--device", "cpu", *SMALL]


@pytest.fixture(scope="module", autouse=True)
def _forget_plugins():
    """``--plugin`` registers in this process: forget the test plugins after this module."""
    yield
    forget_toy_plugins()


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_json_prints_only_the_record(tmp_path: Path) -> None:
    res = invoke(
        "run", "--plugin", TOY, "--method", "toy-linear", "--noise", "0.5", *TINY, "--out", str(tmp_path), "--json"
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)  # stdout is the record and nothing else
    parse_record(rec)
    assert rec["status"] == "ok" and rec["spec"]["noise_rate"] == 0.5 and rec["spec"]["bits"] == 16
    for d in ("i2t", "t2i", "avg"):
        for key in ("map", "map_tie", "map@100", "precision@100", "chance"):
            v = rec["metrics"][d][key]
            assert isinstance(v, float) and 0.0 <= v <= 1.0, (d, key, v)
    assert all(isinstance(h["loss"], float) and isinstance(h["epoch"], int) for h in rec["history"])
    assert all(isinstance(v, float) for v in rec["timing"].values())
    assert isinstance(rec["spec"]["seed"], int) and isinstance(rec["dataset"]["num_classes"], int)
    assert [read_record(p).to_dict() for p in iter_record_paths(tmp_path)] == [rec]


def test_run_shows_a_result_table(tmp_path: Path) -> None:
    res = invoke("run", "--plugin", TOY, "--method", "toy-linear", *TINY, "-p", "ridge=5", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    for text in ("I2T", "T2I", "map_tie", "map@100", "precision@100", "chance", "selection precision", "record:"):
        assert text in res.stdout
    (rec,) = [read_record(p).to_dict() for p in iter_record_paths(tmp_path)]
    assert rec["spec"]["params"] == {"ridge": 5.0} and rec["spec"]["resolved_params"]["ridge"] == 5.0


def test_run_failure_is_one_line_nonzero_and_recorded(tmp_path: Path) -> None:
    res = invoke("run", "--plugin", FAILING, "--method", "toy-raise", *TINY, "--out", str(tmp_path))
    assert res.exit_code == 1
    assert "toy-raise exploded on purpose" in res.stderr and "Traceback" not in res.output
    assert "second line" not in res.output
    (rec,) = [read_record(p).to_dict() for p in iter_record_paths(tmp_path)]
    assert rec["status"] == "failed" and rec["error"] == "RuntimeError: toy-raise exploded on purpose"


def test_run_user_errors(tmp_path: Path) -> None:
    res = invoke("run", "--method", "no-such-method", "--out", str(tmp_path))
    assert res.exit_code != 0 and "unknown method 'no-such-method'" in res.output
    res = invoke("run", "--plugin", TOY, "--method", "toy-linear", "-p", "ridge", "--out", str(tmp_path))
    assert res.exit_code != 0 and "expected key=value" in res.output
    res = invoke("run", "--plugin", str(tmp_path / "missing.py"), "--method", "x")
    assert res.exit_code != 0 and "could not be imported" in res.output
    assert not iter_record_paths(tmp_path)


def test_run_bad_input_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    """A missing dataset file is the user's error: one line, exit 2, no (failed) record."""
    (tmp_path / "data" / "wiki").mkdir(parents=True)
    out = tmp_path / "out"
    res = invoke(
        "run", "--method", "nrch", "--dataset", "wiki", "--data-root", str(tmp_path / "data"), "--out", str(out)
    )
    assert res.exit_code == 2
    assert "raw_features.mat" in res.output and "Traceback" not in res.output
    assert not out.exists() or not iter_record_paths(out)


def test_evaluate_recomputes_from_saved_codes(tmp_path: Path) -> None:
    out = str(tmp_path)
    res = invoke("run", "--plugin", TOY, "--method", "toy-linear", *TINY, "--out", out, "--json", "--save-codes")
    rec = json.loads(res.stdout)
    path = next(iter(iter_record_paths(tmp_path)))
    res = invoke("evaluate", rec["run_id"], "--results", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == rec["metrics"]
    # --write repairs edited metrics (metrics are not part of the run id)
    edited = {**rec, "metrics": {**rec["metrics"], "avg": {**rec["metrics"]["avg"], "map": 0.0}}}
    path.write_text(json.dumps(edited))
    res = invoke("evaluate", str(path), "--write")
    assert res.exit_code == 0 and "differs" in res.stdout and "avg.map" in res.stdout
    assert read_record(path).metrics == rec["metrics"]
    # a run without codes, and an unknown id
    res = invoke("run", "--plugin", TOY, "--method", "toy-linear", *TINY, "--seed", "1", "--out", out, "--json")
    res = invoke("evaluate", json.loads(res.stdout)["run_id"][:8], "--results", out)
    assert res.exit_code != 0 and "--save-codes" in res.output
    res = invoke("evaluate", "ffffffffffffffff", "--results", out)
    assert res.exit_code != 0 and "no record" in res.output


def test_sweep_two_methods_two_noise_two_seeds(tmp_path: Path) -> None:
    out = str(tmp_path)
    args = ["sweep", "--plugin", TOY, "--methods", "toy-linear,nrch-nodns", "--noise", "0.2,0.8", "--seeds", "0,1"]
    args += ["--bits", "16", "--preset", "tiny", "--device", "cpu", *SMALL, "--out", out]
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["total"], summary["ok"], summary["failed"], summary["skipped"]) == (8, 8, 0, 0)
    assert all(r["host"] and r["pid"] for r in summary["runs"])
    records = [read_record(p).to_dict() for p in iter_record_paths(tmp_path)]
    assert len(records) == 8 and {r["spec"]["method"] for r in records} == {"toy-linear", "nrch-nodns"}
    assert {(r["spec"]["noise_rate"], r["spec"]["seed"]) for r in records} == {
        (a, b) for a in (0.2, 0.8) for b in (0, 1)
    }
    res = invoke(*args)  # resumes: nothing left to run
    assert res.exit_code == 0 and "8 skipped" in res.stdout
    res = invoke(*args, "--dry-run")
    assert res.exit_code == 0 and res.stdout.count("done") >= 8


def test_sweep_with_failures_exits_nonzero_and_reports(tmp_path: Path) -> None:
    res = invoke(
        "sweep", "--plugin", TOY, "--plugin", FAILING, "--methods", "toy-raise,toy-nan,toy-linear",
        "--noise", "0.5", "--bits", "16", "--preset", "tiny", "--device", "cpu", *SMALL, "--out", str(tmp_path),
    )  # fmt: skip
    assert res.exit_code == 1
    assert "1 ok" in res.stdout and "2 failed" in res.stdout
    assert "toy-raise exploded" in res.output and "NaN in image outputs" in res.output


def test_sweep_config_file_and_cli_override(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        f"methods: toy-linear\nplugins: [{TOY}]\nbits: [16]\nnoise: [0.3]\nseeds: [0, 1]\npreset: tiny\n"
        f"device: cpu\nout: {tmp_path / 'r'}\ndataset_options: {{n: 600, image_dim: 64, text_dim: 200}}\n"
    )
    res = invoke("sweep", "--config", str(cfg), "--seeds", "3", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["total"] == 1 and summary["runs"][0]["seed"] == 3


@pytest.mark.parametrize("backend_args", [["--backend", "local", "--address", "x"]])
def test_sweep_backend_option_errors(tmp_path: Path, backend_args: list[str]) -> None:
    res = invoke("sweep", "--plugin", TOY, "--methods", "toy-linear", *SMALL, "--out", str(tmp_path), *backend_args)
    assert res.exit_code != 0 and "--backend ray" in res.output
