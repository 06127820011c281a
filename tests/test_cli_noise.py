"""``nrchbench noise inspect`` through click's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nrchbench.cli import main
from nrchbench.cli import noise as noise_cli
from nrchbench.errors import ConfigError
from nrchbench.noise import apply


@pytest.fixture
def fake_labels(monkeypatch):
    """Replace dataset loading by a fixed label matrix (the CLI logic is tested, not the loaders)."""
    rng = np.random.default_rng(0)
    y = (rng.random((200, 8)) < 0.3).astype(np.uint8)
    y[:, 0] = 1
    y[:, 1] = 0
    monkeypatch.setattr(noise_cli, "train_labels", lambda *a, **k: (y, "fake train"))
    return y


def invoke(*args: str):
    return CliRunner().invoke(main, ["noise", "inspect", *args])


def test_inspect_prints_report_table(fake_labels):
    res = invoke("--dataset", "x", "--noise-model", "nrch", "--rate", "0.5", "--seed", "3")
    assert res.exit_code == 0, res.output
    expected = apply("nrch", fake_labels, 0.5, 3).report
    assert "nrch noise at rate 0.5 (seed 3)" in res.output
    for key in ("frac_samples_corrupted", "frac_entries_flipped", "frac_pairs_changed", "cardinality_noisy_mean"):
        assert key in res.output
    assert f"{expected['frac_pairs_changed']:.6g}" in res.output


def test_inspect_json_and_params(fake_labels):
    res = invoke("-d", "x", "-m", "asymmetric", "-r", "0.3", "-p", "pairs=[[0,1],[2,3]]", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["params"]["pairs"] == [[0, 1], [2, 3]] and rep["params"]["mode"] == "given"
    assert rep == apply("asymmetric", fake_labels, 0.3, 0, pairs=[[0, 1], [2, 3]]).report
    res = invoke("-d", "x", "-m", "bitflip", "-r", "0.2", "-p", "rho_neg=0.01", "--json")
    assert json.loads(res.output)["params"]["rho_neg"] == 0.01
    res = invoke("-d", "x", "-m", "asymmetric", "-r", "0.2", "-p", "mode=cooccurrence", "--json")
    assert json.loads(res.output)["params"]["mode"] == "cooccurrence"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-m", "nrch", "-r", "1.5"), "noise rate must be in [0, 1], got 1.5"),
        (("-m", "nrhc", "-r", "0.2"), "unknown noise model 'nrhc'; did you mean 'nrch'"),
        (("-m", "nrch", "-r", "0.2", "-p", "oops"), "-p/--param expects key=value"),
        (("-m", "nrch", "-r", "0.2", "-p", "bogus=1"), "unknown parameter(s) 'bogus'"),
        (("-m", "asymmetric", "-r", "0.2", "-p", "mode=nope"), "unknown mode 'nope'"),
    ],
)
def test_inspect_errors_are_one_line(fake_labels, args, message):
    res = invoke("-d", "x", *args)
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert "Traceback" not in res.output


def test_parse_params():
    assert noise_cli.parse_params(("a=1", "b=x", "c=null", "d=[1,2]")) == {"a": 1, "b": "x", "c": None, "d": [1, 2]}
    with pytest.raises(ConfigError):
        noise_cli.parse_params(("=1",))


def test_inspect_on_real_wiki(shared_data):
    res = invoke("-d", "wiki", "--data-root", str(shared_data), "-m", "symmetric", "-r", "0.2", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["n_samples"] == 2173 and rep["n_classes"] == 10
    assert rep["n_corrupted"] == 434 and rep["cardinality_noisy_mean"] == 1.0


def test_inspect_unknown_dataset_is_one_line(tmp_path):
    res = invoke("-d", "no-such-dataset", "--data-root", str(tmp_path), "-m", "nrch", "-r", "0.2")
    assert res.exit_code != 0
    assert "Traceback" not in res.output and "no-such-dataset" in res.output
