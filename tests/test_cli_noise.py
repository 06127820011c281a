"""``nrchbench noise inspect`` through click's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nrchbench.cli import main
from nrchbench.cli import noise as noise_cli
from nrchbench.noise import apply


@pytest.fixture
def fake_labels(monkeypatch):
    """Replace dataset loading by a fixed label matrix and features (the CLI logic is tested, not the loaders)."""
    rng = np.random.default_rng(0)
    y = (rng.random((200, 8)) < 0.3).astype(np.uint8)
    y[:, 0] = 1
    y[:, 1] = 0
    feats = (rng.random((200, 6)), rng.random((200, 4)))

    def fake(*args, features=False, **kwargs):
        return y, (feats if features else None), "fake train"

    monkeypatch.setattr(noise_cli, "train_data", fake)
    return y, feats


def invoke(*args: str):
    return CliRunner().invoke(main, ["noise", "inspect", *args])


def test_inspect_prints_report_table(fake_labels):
    res = invoke("--dataset", "x", "--noise-model", "nrch", "--rate", "0.5", "--seed", "3")
    assert res.exit_code == 0, res.output
    expected = apply("nrch", fake_labels[0], 0.5, 3).report
    assert "one-swap noise at rate 0.5 (seed 3)" in res.output
    for key in ("frac_samples_corrupted", "frac_entries_flipped", "frac_pairs_changed", "cardinality_noisy_mean"):
        assert key in res.output
    assert f"{expected['frac_pairs_changed']:.6g}" in res.output


def test_inspect_json_and_params(fake_labels):
    res = invoke("-d", "x", "-m", "asymmetric", "-r", "0.3", "-p", "pairs=[[0,1],[2,3]]", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["params"]["pairs"] == [[0, 1], [2, 3]] and rep["params"]["mode"] == "given"
    assert rep == apply("asymmetric", fake_labels[0], 0.3, 0, pairs=[[0, 1], [2, 3]]).report
    res = invoke("-d", "x", "-m", "bitflip", "-r", "0.2", "-p", "rho_neg=0.01", "--json")
    assert json.loads(res.output)["params"]["rho_neg"] == 0.01
    res = invoke("-d", "x", "-m", "asymmetric", "-r", "0.2", "-p", "mode=cooccurrence", "--json")
    assert json.loads(res.output)["params"]["mode"] == "cooccurrence"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-m", "nrch", "-r", "1.5"), "noise rate must be in [0, 1], got 1.5"),
        (("-m", "nrhc", "-r", "0.2"), "unknown noise model 'nrhc'; did you mean 'nrch'"),
        (("-m", "nrch", "-r", "0.2", "-p", "oops"), "-p/--param 'oops': expected key=value"),
        (("-m", "nrch", "-r", "0.2", "-p", "bogus=1"), "noise model 'one-swap' has no parameter 'bogus'"),
        (("-m", "asymmetric", "-r", "0.2", "-p", "mode=nope"), "parameter 'mode': input should be 'random' or"),
        (("-m", "instance", "-r", "0.2", "-p", "sharpnes=2"), "no parameter 'sharpnes' (did you mean sharpness?)"),
        (("-m", "pairs", "-r", "0.005"), "cannot mismatch exactly 1 of 200 pairs"),
    ],
)
def test_inspect_errors_are_one_line(fake_labels, args, message):
    res = invoke("-d", "x", *args)
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert "Traceback" not in res.output


def test_inspect_new_models(fake_labels):
    y, feats = fake_labels
    res = invoke("-d", "x", "-m", "instance", "-r", "0.4", "-p", "sharpness=2", "-p", "modality=image", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep == apply("instance", y, 0.4, 0, features=feats, sharpness=2.0, modality="image").report
    assert rep["params"]["sharpness"] == 2.0 and "confusion_mean_corrupted" in rep
    res = invoke("-d", "x", "-m", "pairs", "-r", "0.5")
    assert res.exit_code == 0, res.output
    assert "frac_mismatched_unrelated" in res.output and "frac_pairs_mismatched" in res.output
    rep = json.loads(invoke("-d", "x", "-m", "missing", "-r", "0.5", "-p", "empty_rows=allow", "--json").output)
    assert rep == apply("missing", y, 0.5, 0, empty_rows="allow").report


def test_inspect_on_real_wiki(shared_data):
    res = invoke("-d", "wiki", "--data-root", str(shared_data), "-m", "symmetric", "-r", "0.2", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["n_samples"] == 2173 and rep["n_classes"] == 10
    assert rep["n_corrupted"] == 434 and rep["cardinality_noisy_mean"] == 1.0


@pytest.mark.parametrize("model", ["instance", "pairs"])
def test_inspect_new_models_on_real_wiki(shared_data, model):
    """The real loader path: instance reads the wiki train features, pairs the labels."""
    res = invoke("-d", "wiki", "--data-root", str(shared_data), "-m", model, "-r", "0.5", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["model"] == model and rep["n_samples"] == 2173
    if model == "instance":
        assert rep["classifier_input_dim"] == 138 and rep["n_corrupted"] == 1086
    if model == "pairs":
        assert rep["frac_pairs_mismatched"] == 1086 / 2173 and rep["frac_entries_flipped"] == 0.0


def test_inspect_missing_on_single_label_wiki(shared_data):
    """Single-label data: keep_one could drop nothing, so it is refused; allow empties rows."""
    res = invoke("-d", "wiki", "--data-root", str(shared_data), "-m", "missing", "-r", "0.5")
    assert res.exit_code != 0 and "cannot drop any label" in res.output and "Traceback" not in res.output
    args = ("-d", "wiki", "--data-root", str(shared_data), "-m", "missing", "-r", "0.5", "-p", "empty_rows=allow")
    rep = json.loads(invoke(*args, "--json").output)
    assert rep["n_pos_dropped"] == rep["rows_emptied"] == 1086


def test_inspect_unknown_dataset_is_one_line(tmp_path):
    res = invoke("-d", "no-such-dataset", "--data-root", str(tmp_path), "-m", "nrch", "-r", "0.2")
    assert res.exit_code != 0
    assert "Traceback" not in res.output and "no-such-dataset" in res.output
