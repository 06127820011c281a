"""Run specs, the runner and result records (library level, in process, CPU, tiny data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from conftest import SMALL

from nrchbench.diagnostics import loss_histogram, selection_stats
from nrchbench.errors import ConfigError, DataError, RegistryError, RunFailed
from nrchbench.methods.base import HashingMethod
from nrchbench.records import Record, find_record, load_records, migrate, read_record, record_path, write_record
from nrchbench.registry import METHODS
from nrchbench.runner import evaluate_codes_file, run, run_safe
from nrchbench.spec import RunSpec, compute_run_id, resolve_spec

# The test plugins are registered for this module only (other modules never see them).
pytestmark = pytest.mark.usefixtures("toy_plugins")


def small(method: str = "toy-linear", **kw: Any) -> RunSpec:
    kw = {"bits": 16, "preset": "tiny", "dataset_options": SMALL, "device": "cpu", **kw}
    return resolve_spec(method, **kw)


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
    rs = small()
    assert rs.preset == "tiny" and rs.preset_requested == "tiny"
    assert rs.resolved_params["epochs"] == 2  # defaults ← tiny preset
    assert len(rs.run_id) == 16 and int(rs.run_id, 16) >= 0
    assert rs.run_id == small().run_id  # stable
    assert rs.run_id == compute_run_id(rs.identity())
    assert rs.run_id != small(seed=1).run_id
    # CLI strings are converted: "3" and 3 are the same run
    assert small(params={"epochs": "3"}).run_id == small(params={"epochs": 3}).run_id
    auto = resolve_spec("toy-linear", dataset_options=SMALL, device="cpu")
    assert auto.preset == "fast" and auto.preset_requested == "auto" and auto.split == "contiguous"
    assert resolve_spec("TOY-LINEAR", device="cpu").method == "toy-linear"
    # one type all the way down: the record's spec loads back as the same RunSpec
    assert RunSpec.model_validate(json.loads(rs.model_dump_json())) == rs
    with pytest.raises(Exception, match="frozen"):
        rs.bits = 32  # type: ignore[misc]


def test_schema2_fields_enter_the_run_id_only_when_not_default() -> None:
    base = small(feature_transform="none")
    assert "selection" not in base.identity() and "feature_transform" not in base.identity()
    # zscore, the default since schema 2, is not the hashing default ``none`` (schema-1 records)
    assert small().identity()["feature_transform"] == "zscore"
    assert small(zero_relevant="zero").run_id != base.run_id
    assert small(selection="val", val_size=40).identity()["selection"] == "val"


def test_resolve_errors() -> None:
    with pytest.raises(RegistryError, match="toy-linear"):
        small("toy-linaer")
    with pytest.raises(ConfigError, match="ridge"):
        small(params={"ridg": 1})
    with pytest.raises(ConfigError, match="'ridge'"):
        small(params={"ridge": "abc"})
    with pytest.raises(ConfigError):
        small(noise_rate=1.5)
    with pytest.raises(RegistryError):
        small(noise_model="nope")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"noise_params": {"bogus": 1}}, "bogus"),
        ({"dataset_options": {**SMALL, "nn": 5}}, "nn"),
        ({"bits": 100_000}, "--bits"),
        ({"bits": 0}, "--bits"),
        ({"seed": 1e20}, "--seed"),
        ({"seed": -1}, "--seed"),
        ({"selection": "val"}, "--val-size"),
        ({"selection": "best"}, "--select"),
        ({"zero_relevant": "drop"}, "--zero-relevant"),
        ({"split": "sideways"}, "--split"),
        ({"strategy": "none", "strategy_params": {"x": 1}}, "strategy none"),
    ],
)
def test_everything_is_validated_at_resolve_time(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        small(**kw)


def test_noise_invariant_spec() -> None:
    a = small("toy-unsup", noise_rate=0.2)
    b = small("toy-unsup", noise_rate=0.8, noise_model="symmetric")
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
        rp = resolve_spec("test-per-dataset", params={"c": 4}, preset="fast", device="cpu").resolved_params
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
    rec = run(small(), out=tmp_path, save_codes=True, progress=lambda e, t, logs: epochs.append((e, t)))
    assert isinstance(rec, Record) and rec.status == "ok" and rec.error is None
    assert epochs == [(0, 2), (1, 2)]
    spec = rec.spec
    assert spec.selection == "last" and spec.preset == "tiny" and spec.device == "cpu"
    assert spec.noise_model == "one-swap" and spec.noise_rate == 0.8 and not spec.noise_invariant
    assert rec.evaluation == {"zero_relevant": "exclude", "topk": [50, 100, 1000, 5000], "radius": 2, "curve_k": None}
    assert {"map@50", "recall@1000", "hamming_precision@2", "topk_curve"} <= set(rec.metrics["i2t"])
    d = rec.to_dict()
    assert d["noise_report"]["frac_samples_corrupted"] == pytest.approx(0.8)
    for direction in ("i2t", "t2i"):
        assert 0.0 < rec.metrics[direction]["map"] <= 1.0
        assert rec.metrics[direction]["chance"] == pytest.approx(d["dataset"][f"chance_{direction}"])
    assert rec.metrics["avg"]["map"] == pytest.approx((rec.metrics["i2t"]["map"] + rec.metrics["t2i"]["map"]) / 2)
    h = d["history"]
    assert [e["epoch"] for e in h] == [0, 1]
    assert h[0]["selected_fraction"] == 1.0 and h[0]["sel_precision"] == pytest.approx(0.2)  # all selected, 20% clean
    assert h[0]["sel_recall"] == 1.0 and h[0]["gmm_means"] == [0.2, 0.7] and h[0]["time_fit"] == 0.0
    assert "selected" not in h[0] and "sample_loss" not in h[0] and "gmm" not in h[0]
    hist = d["diagnostics"]["sample_loss_hist"]
    assert hist["epoch"] == 1 and len(hist["clean"]) == 30 and sum(hist["clean"]) + sum(hist["noisy"]) == 250
    assert sum(hist["clean"]) == 50 and hist["gmm"]["weights"] == [0.6, 0.4]
    assert set(d["timing"]) >= {"load", "noise", "fit", "encode", "evaluate", "total"}
    assert d["env"]["torch"] and d["env"]["device"] == "cpu"
    assert d["env"]["torch_threads"] == torch.get_num_threads()
    _numbers_are_numbers(d)
    json.dumps(d, allow_nan=False)

    path = record_path(tmp_path, rec)
    assert path == tmp_path / "runs" / "synthetic" / "toy-linear" / f"{rec.run_id}.json"
    assert read_record(path) == rec
    assert rec.codes == f"{rec.run_id}.codes.npz" and (path.parent / rec.codes).is_file()
    recomputed = evaluate_codes_file(path.parent / rec.codes)
    assert recomputed["i2t"]["map"] == rec.metrics["i2t"]["map"]
    assert recomputed["avg"]["map_tie"] == rec.metrics["avg"]["map_tie"]
    assert find_record(tmp_path, small()) == rec


def test_noise_invariant_run(tmp_path: Path) -> None:
    rec = run(small("toy-unsup"), out=tmp_path)
    assert rec.status == "ok" and rec.noise_report is None
    assert rec.spec.noise_invariant and rec.spec.noise_rate is None


def test_failed_runs_are_recorded(tmp_path: Path) -> None:
    with pytest.raises(RunFailed, match="toy-raise exploded") as exc:
        run(small("toy-raise"), out=tmp_path)
    rec = exc.value.record  # type: ignore[attr-defined]
    assert rec.status == "failed" and "\n" not in rec.error
    assert rec.error == "RuntimeError: toy-raise exploded on purpose"
    assert rec.to_dict()["history"] == [{"epoch": 0, "loss": 1.0}]  # what the run got to
    assert read_record(record_path(tmp_path, rec)).status == "failed"

    nan = run_safe(small("toy-nan"), out=tmp_path)
    assert nan.status == "failed" and nan.error.startswith("NaN in image outputs")


def test_load_records_filters_and_skips_bad_files(tmp_path: Path) -> None:
    ok = run(small(), out=tmp_path)
    ok2 = run(small(seed=1), out=tmp_path)
    bad = run_safe(small("toy-nan"), out=tmp_path)
    d = tmp_path / "runs" / "synthetic" / "toy-linear"
    (d / "0123456789abcdef.json").write_text('{"schema_version": 2, "run_id": "01')  # partial
    (d / "fedcba9876543210.json").write_text(json.dumps({**ok.to_dict(), "run_id": "fedcba9876543210"}))  # id ≠ hash
    (d / "aaaaaaaaaaaaaaaa.json").write_text(json.dumps({**ok.to_dict(), "schema_version": 99}))  # from the future
    (d / ".x.json.abc.tmp").write_text("{")
    ids = {r.run_id for r in load_records(tmp_path)}
    assert ids == {ok.run_id, ok2.run_id, bad.run_id}
    assert [r.run_id for r in load_records(tmp_path, status="ok", seed=1)] == [ok2.run_id]
    assert {r.run_id for r in load_records(tmp_path, method=["toy-nan"])} == {bad.run_id}
    assert load_records(tmp_path, bits=32) == []
    with pytest.raises(DataError, match="run_id"):
        read_record(d / "fedcba9876543210.json")
    with pytest.raises(DataError, match="newer nrchbench"):
        read_record(d / "aaaaaaaaaaaaaaaa.json")
    assert write_record(tmp_path, ok) == record_path(tmp_path, ok)


def test_schema1_records_migrate() -> None:
    """Every committed record is schema 1 and loads as a schema-2 Record with the same run id."""
    results = Path(__file__).resolve().parents[1] / "results"
    paths = sorted(results.glob("*/runs/*/*/*.json"))
    assert paths
    for p in paths[:20]:
        raw = json.loads(p.read_text())
        rec = read_record(p)
        assert raw["schema_version"] == 1 and rec.schema_version == 2
        assert rec.run_id == raw["run_id"] == rec.spec.run_id
        assert rec.spec.selection == "last" and rec.evaluation is None
        assert rec.metrics == raw["metrics"]
    assert migrate({"schema_version": 2, "x": 1}) == {"schema_version": 2, "x": 1}


# ---------------------------------------------------------------------- model selection
def test_val_selection_never_touches_the_query_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The query set's labels are poisoned until the final evaluation: the selection (best
    epoch and every validation score) is unchanged, so it never read them."""
    import nrchbench.datasets as datasets_mod

    spec = small("toy-linear", params={"epochs": 4}, selection="val", val_size=60)
    clean = run(spec)
    assert clean.selection["rule"] == "val" and len(clean.selection["history"]) == 4
    assert clean.spec.identity()["selection"] == "val" and clean.dataset["sizes"]["val"] == 60

    original = datasets_mod.load_dataset

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        ds = original(*args, **kwargs)
        q = ds.splits["query"]
        ds.labels = ds.labels.copy()
        ds.labels[q] = 1 - ds.labels[q]  # every query label flipped
        return ds

    rec = run(spec, loader=poisoned)
    assert rec.selection == clean.selection
    assert rec.metrics["avg"]["map"] != clean.metrics["avg"]["map"]  # the poison did reach the final evaluation


def test_val_selection_restores_the_best_epoch() -> None:
    class Drifting(HashingMethod):
        """Test: good codes at epoch 0, pure noise from epoch 1 on."""

        defaults: ClassVar[dict[str, Any]] = {"epochs": 3}
        presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

        def setup(self, data, rng):
            self.g = rng.torch("noise")
            y = data.labels - data.labels.mean(0)
            self.w1 = torch.linalg.lstsq(data.image - data.image.mean(0), y).solution
            self.w2 = torch.linalg.lstsq(data.text - data.text.mean(0), y).solution
            self.mu1, self.mu2 = data.image.mean(0), data.text.mean(0)
            self.r = torch.randn(data.num_classes, self.bits, generator=self.g)

        def train_epoch(self, epoch, data, rng):
            from nrchbench.methods import EpochLog

            if epoch >= 1:
                self.w1 = torch.randn(self.w1.shape, generator=self.g)
            return EpochLog(epoch, losses={"loss": 0.0})

        def encode_image(self, x):
            return (x - self.mu1) @ self.w1 @ self.r

        def encode_text(self, x):
            return (x - self.mu2) @ self.w2 @ self.r

    METHODS.register("test-drifting", Drifting)
    try:
        rec = run(small("test-drifting", noise_rate=0.0, selection="val", val_size=60))
        assert rec.selection["best_epoch"] == 0
        scores = [h["map"] for h in rec.selection["history"]]
        assert scores[0] == max(scores)
    finally:
        METHODS.unregister("test-drifting")


# ---------------------------------------------------------------------- noise that needs features or corrupts pairs
class _Recorder(HashingMethod):
    """Test: a fixed seeded projection (no dependence on the training data); keeps what it saw."""

    defaults: ClassVar[dict[str, Any]] = {"epochs": 1}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}
    uses_labels = False
    seen: ClassVar[dict[str, Any]] = {}

    def setup(self, data, rng):
        g = rng.torch("proj")
        self.w1 = torch.randn(data.image.shape[1], self.bits, generator=g)
        self.w2 = torch.randn(data.text.shape[1], self.bits, generator=g)
        type(self).seen.update(text=data.text.clone(), labels=data.labels.clone())

    def train_epoch(self, epoch, data, rng):
        from nrchbench.methods import EpochLog

        return EpochLog(epoch, losses={"loss": 0.0})

    def encode_image(self, x):
        return x @ self.w1

    def encode_text(self, x):
        return x @ self.w2


def test_pair_noise_mismatches_training_pairs_only(tmp_path: Path) -> None:
    from nrchbench.datasets import load_dataset
    from nrchbench.metrics.codes import load_codes
    from nrchbench.noise import apply

    METHODS.register("test-recorder", _Recorder)
    try:
        spec = small("test-recorder", noise_model="pairs", noise_rate=0.5, feature_transform="none")
        assert not spec.noise_invariant and spec.noise_model == "pairs"  # label-free, yet pair noise matters
        assert small("test-recorder", noise_rate=0.5).noise_invariant
        rec = run(spec, out=tmp_path / "pairs", save_codes=True)
        seen = _Recorder.seen["text"].numpy()
        ds = load_dataset("synthetic", **SMALL)
        train = ds.splits["train"]
        nl = apply("pairs", ds.labels[train], 0.5, spec.seed)
        assert np.array_equal(seen, ds.text[train][nl.text_index])
        moved = nl.text_index != np.arange(len(train))
        assert moved.sum() == int(0.5 * len(train)) and not np.array_equal(seen[moved], ds.text[train][moved])
        assert float(_Recorder.seen["labels"].abs().sum()) == 0.0  # still never sees labels
        assert rec.noise_report["frac_samples_corrupted"] == pytest.approx(0.5)
        clean = run(
            small("test-recorder", noise_rate=0.5, feature_transform="none"), out=tmp_path / "clean", save_codes=True
        )
        a = load_codes(record_path(tmp_path / "pairs", rec).with_name(rec.codes))
        b = load_codes(record_path(tmp_path / "clean", clean).with_name(clean.codes))
        for key in a:  # query and database pairs are never touched
            assert np.array_equal(a[key], b[key]), key
    finally:
        METHODS.unregister("test-recorder")


def test_instance_noise_gets_the_features() -> None:
    rec = run(small(noise_model="instance", noise_rate=0.3))
    assert rec.status == "ok" and rec.noise_report["frac_samples_corrupted"] == pytest.approx(0.3)
    assert any(k.startswith("classifier") for k in rec.noise_report)
