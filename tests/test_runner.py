"""Run specs, the runner and result records (library level, in process, CPU, tiny data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from conftest import SMALL

from nrchbench.errors import ConfigError, DataError, RegistryError, RunFailed
from nrchbench.methods.base import HashingMethod
from nrchbench.records import (
    find_record,
    load_records,
    read_record,
    record_path,
    record_problems,
    validate_record,
    write_record,
)
from nrchbench.registry import METHODS
from nrchbench.runner import evaluate_codes_file, loss_histogram, run, run_safe, selection_stats
from nrchbench.spec import RunSpec, compute_run_id

# The test plugins are registered for this module only (other modules never see them).
pytestmark = pytest.mark.usefixtures("toy_plugins")


def small(method: str = "toy-linear", **kw: Any) -> RunSpec:
    return RunSpec(method=method, dataset="synthetic", bits=16, preset="tiny", dataset_options=SMALL, **kw)


def _numbers_are_numbers(obj: Any, where: str = "") -> None:
    """No number stored as a string anywhere (PROTOCOL §5)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _numbers_are_numbers(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _numbers_are_numbers(v, f"{where}[{i}]")
    elif isinstance(obj, str):
        try:
            float(obj)
        except ValueError:
            return
        if where.endswith((".run_id", "version", ".split_checksum")) or "checksum" in where or "revision" in where:
            return
        pytest.fail(f"number stored as a string at {where}: {obj!r}")


# ---------------------------------------------------------------------- specs
def test_resolve_preset_names_and_run_id() -> None:
    rs = small().resolve("cpu")
    assert rs.preset == "tiny" and rs.preset_requested == "tiny"
    assert rs.resolved_params["epochs"] == 2  # defaults ← tiny preset
    assert len(rs.run_id) == 16 and int(rs.run_id, 16) >= 0
    assert rs.run_id == small().resolve("cpu").run_id  # stable
    assert rs.run_id == compute_run_id(rs.to_dict())
    assert rs.run_id != small(seed=1).resolve("cpu").run_id
    # CLI strings are coerced: "3" and 3 are the same run
    assert small(params={"epochs": "3"}).resolve("cpu").run_id == small(params={"epochs": 3}).resolve("cpu").run_id
    auto = RunSpec("toy-linear", dataset_options=SMALL).resolve("cpu")
    assert auto.preset == "fast" and auto.preset_requested == "auto" and auto.split == "nrch"
    assert RunSpec("TOY-LINEAR").resolve("cpu").method == "toy-linear"


def test_resolve_errors() -> None:
    with pytest.raises(RegistryError, match="toy-linear"):
        RunSpec("toy-linaer").resolve("cpu")
    with pytest.raises(ConfigError, match="ridge"):
        small(params={"ridg": 1}).resolve("cpu")
    with pytest.raises(ConfigError):
        small(noise_rate=1.5).resolve("cpu")
    with pytest.raises(RegistryError):
        small(noise_model="nope").resolve("cpu")


def test_noise_invariant_spec() -> None:
    a = small("toy-unsup", noise_rate=0.2).resolve("cpu")
    b = small("toy-unsup", noise_rate=0.8, noise_model="symmetric").resolve("cpu")
    assert a.noise_invariant and a.noise_model is None and a.noise_rate is None and a.noise_params == {}
    assert a.run_id == b.run_id


def test_dataset_params_hook_order() -> None:
    class PerDataset(HashingMethod):
        """Test: per-dataset defaults."""

        defaults: ClassVar[dict[str, Any]] = {"a": 1, "b": 1, "c": 1}
        presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {"b": 3}, "tiny": {"b": 3}}

        @classmethod
        def dataset_params(cls, dataset: str) -> dict[str, Any]:
            return {"a": 2, "b": 2, "c": 2} if dataset == "synthetic" else {}

    METHODS.register("test-per-dataset", PerDataset)
    try:
        rp = RunSpec("test-per-dataset", params={"c": 4}, preset="fast").resolve("cpu").resolved_params
        assert rp == {"a": 2, "b": 3, "c": 4}  # defaults ← dataset ← preset ← user
    finally:
        METHODS.unregister("test-per-dataset")


# ---------------------------------------------------------------------- diagnostics oracles
def test_selection_stats_oracle() -> None:
    sel = np.array([1, 1, 0, 0, 1, 0], bool)
    clean = np.array([1, 0, 1, 0, 1, 1], bool)
    s = selection_stats(sel, clean)
    assert s == {"selected_fraction": 0.5, "sel_precision": 2 / 3, "sel_recall": 2 / 4}
    assert selection_stats(np.zeros(3, bool), np.ones(3, bool))["sel_precision"] is None


def test_loss_histogram() -> None:
    h = loss_histogram(np.array([0.0, 0.1, 0.5, 1.0]), np.array([1, 1, 0, 0], bool))
    assert len(h["edges"]) == 31 and h["edges"][0] == 0.0 and h["edges"][-1] == 1.0
    assert sum(h["clean"]) == 2 and sum(h["noisy"]) == 2
    h = loss_histogram(np.array([2.0, 4.0]), np.array([1, 0], bool))
    assert h["edges"][0] == 2.0 and h["edges"][-1] == 4.0


# ---------------------------------------------------------------------- runs
def test_run_writes_a_valid_record_with_codes(tmp_path: Path) -> None:
    epochs = []
    rec = run(small(), out=tmp_path, save_codes=True, device="cpu", progress=lambda e, t, logs: epochs.append((e, t)))
    assert record_problems(rec) == []
    assert rec["status"] == "ok" and rec["error"] is None
    assert epochs == [(0, 2), (1, 2)]
    spec = rec["spec"]
    assert spec["selection"] == "last-epoch" and spec["preset"] == "tiny" and spec["device"] == "cpu"
    assert spec["noise_model"] == "nrch" and spec["noise_rate"] == 0.8 and not spec["noise_invariant"]
    assert rec["noise_report"]["frac_samples_corrupted"] == pytest.approx(0.8)
    for d in ("i2t", "t2i"):
        assert 0.0 < rec["metrics"][d]["map"] <= 1.0
        assert rec["metrics"][d]["chance"] == pytest.approx(rec["dataset"][f"chance_{d}"])
    assert rec["metrics"]["avg"]["map"] == pytest.approx(
        (rec["metrics"]["i2t"]["map"] + rec["metrics"]["t2i"]["map"]) / 2
    )
    h = rec["history"]
    assert [e["epoch"] for e in h] == [0, 1]
    assert h[0]["selected_fraction"] == 1.0 and h[0]["sel_precision"] == pytest.approx(0.2)  # all selected, 20% clean
    assert h[0]["sel_recall"] == 1.0 and h[0]["gmm_means"] == [0.2, 0.7]
    assert "selected" not in h[0] and "sample_loss" not in h[0] and "gmm" not in h[0]
    hist = rec["diagnostics"]["sample_loss_hist"]
    assert hist["epoch"] == 1 and len(hist["clean"]) == 30 and sum(hist["clean"]) + sum(hist["noisy"]) == 250
    assert sum(hist["clean"]) == 50 and hist["gmm"]["weights"] == [0.6, 0.4]
    assert set(rec["timing"]) >= {"load", "noise", "fit", "encode", "evaluate", "total"}
    assert rec["env"]["torch"] and rec["env"]["device"] == "cpu"
    assert rec["env"]["torch_threads"] == torch.get_num_threads()
    _numbers_are_numbers(rec)
    json.dumps(rec, allow_nan=False)

    path = record_path(tmp_path, rec)
    assert path == tmp_path / "runs" / "synthetic" / "toy-linear" / f"{rec['run_id']}.json"
    assert read_record(path) == rec
    assert rec["codes"] == f"{rec['run_id']}.codes.npz" and (path.parent / rec["codes"]).is_file()
    recomputed = evaluate_codes_file(path.parent / rec["codes"])
    assert recomputed["i2t"]["map"] == rec["metrics"]["i2t"]["map"]
    assert recomputed["avg"]["map_tie"] == rec["metrics"]["avg"]["map_tie"]
    assert find_record(tmp_path, small()) == rec


def test_noise_invariant_run(tmp_path: Path) -> None:
    rec = run(small("toy-unsup"), out=tmp_path)
    assert rec["status"] == "ok" and rec["noise_report"] is None
    assert rec["spec"]["noise_invariant"] and rec["spec"]["noise_rate"] is None


def test_failed_runs_are_recorded(tmp_path: Path) -> None:
    with pytest.raises(RunFailed, match="toy-raise exploded") as exc:
        run(small("toy-raise"), out=tmp_path)
    rec = exc.value.record  # type: ignore[attr-defined]
    assert rec["status"] == "failed" and "\n" not in rec["error"]
    assert rec["error"] == "RuntimeError: toy-raise exploded on purpose"
    assert rec["history"] == [{"epoch": 0, "loss": 1.0}]  # what the run got to
    assert read_record(record_path(tmp_path, rec))["status"] == "failed"

    nan = run_safe(small("toy-nan"), out=tmp_path)
    assert nan["status"] == "failed" and nan["error"].startswith("NaN in image outputs")
    assert nan["history"][0]["loss"] is None  # NaN loss → null, never an invalid JSON number
    assert validate_record(nan) is None


def test_load_records_filters_and_skips_bad_files(tmp_path: Path) -> None:
    ok = run(small(), out=tmp_path)
    ok2 = run(small(seed=1), out=tmp_path)
    bad = run_safe(small("toy-nan"), out=tmp_path)
    d = tmp_path / "runs" / "synthetic" / "toy-linear"
    (d / "0123456789abcdef.json").write_text('{"schema_version": 1, "run_id": "01')  # partial
    (d / "fedcba9876543210.json").write_text(json.dumps({**ok, "run_id": "fedcba9876543210"}))  # id ≠ hash
    (d / ".x.json.abc.tmp").write_text("{")
    ids = {r["run_id"] for r in load_records(tmp_path)}
    assert ids == {ok["run_id"], ok2["run_id"], bad["run_id"]}
    assert [r["run_id"] for r in load_records(tmp_path, status="ok", seed=1)] == [ok2["run_id"]]
    assert {r["run_id"] for r in load_records(tmp_path, method=["toy-nan"])} == {bad["run_id"]}
    assert load_records(tmp_path, bits=32) == []
    with pytest.raises(DataError, match="run_id"):
        validate_record({**ok, "run_id": "fedcba9876543210"})
    with pytest.raises(DataError):
        write_record(tmp_path, {"run_id": "x"})
