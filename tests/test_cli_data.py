"""``nrchbench data info`` and ``nrchbench list`` through click's CliRunner."""

from __future__ import annotations

import importlib.metadata as md
import json

import pytest
from click.testing import CliRunner

from nrchbench.cli import main
from nrchbench.registry import DATASETS, _Entry


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_data_info_wiki(runner, shared_data):
    res = runner.invoke(main, ["data", "info", "wiki", "--data-root", str(shared_data)])
    assert res.exit_code == 0, res.output
    assert "2,173" in res.output and "693" in res.output
    assert "query 693 · train 2,173 · database 2,173" in res.output
    assert "0.1084" in res.output  # chance mAP


def test_data_info_synthetic_json_and_options(runner):
    res = runner.invoke(
        main, ["data", "info", "synthetic", "-o", "n=600", "--split", "random", "--split-seed", "2", "--json"]
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["sizes"] == {"query": 50, "train": 250, "database": 550}
    assert info["split_rule"] == "random" and info["split_seed"] == 2 and info["multi_label"]


def test_data_info_errors_are_one_line(runner, tmp_path):
    res = runner.invoke(main, ["data", "info", "mirflickr", "--data-root", str(tmp_path)])
    assert res.exit_code != 0
    assert "mirflickr25k-iall-vgg.mat" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(main, ["data", "info", "synthetic", "--split", "nope"])
    assert res.exit_code != 0 and "unknown split rule 'nope'" in res.output
    res = runner.invoke(main, ["data", "info", "synthetic", "-o", "oops"])
    assert res.exit_code != 0 and "key=value" in res.output


def test_list_datasets(runner):
    res = runner.invoke(main, ["list", "datasets"])
    assert res.exit_code == 0, res.output
    for name in ("synthetic", "mirflickr", "nuswide", "iapr", "coco", "wiki", "nrch-h5", "generic"):
        assert name in res.output
    assert "flickr" in res.output and "wikipedia" in res.output  # aliases column


def test_list_all_survives_a_broken_plugin(runner, monkeypatch):
    ep = md.EntryPoint(name="broken", value="nrchbench_no_such_module:Thing", group="nrchbench.datasets")
    monkeypatch.setattr(DATASETS, "_broken", {})
    monkeypatch.setitem(DATASETS._entries, "broken", _Entry("broken", None, ep, "", "entry point of test"))
    res = runner.invoke(main, ["list"])
    assert res.exit_code == 0, res.output
    assert "broken" in res.output and "failed to import" in res.output
    assert "synthetic" in res.output


def _generic(directory, n=20, **arrays):
    import numpy as np

    rng = np.random.default_rng(0)
    base = {"image": rng.random((n, 4)), "text": rng.random((n, 3)), "labels": np.eye(2)[np.arange(n) % 2]}
    directory.mkdir()
    np.savez(directory / "data.npz", **{**base, **arrays})
    return directory


def _malformed(tmp_path):
    import numpy as np

    yield _generic(tmp_path / "range", query=np.arange(5), train=np.arange(5, 50)), "range/data.npz:train", "outside"
    (tmp_path / "zip").mkdir()
    (tmp_path / "zip" / "data.npz").write_text("hello")
    yield tmp_path / "zip", "zip/data.npz", "not a zip archive"
    yield _generic(tmp_path / "str", image=np.array([["a"] * 4] * 20)), "str/data.npz:image", "expected numbers"
    obj = np.array([[1, 2, "x"]] * 20, dtype=object)
    yield _generic(tmp_path / "obj", text=obj), "obj/data.npz:text", "Python objects"
    yield _generic(tmp_path / "leak", query=np.arange(5), train=np.arange(2, 12)), "leak/data.npz:query", "both"
    yield _generic(tmp_path / "empty", n=0), "empty/data.npz:image", "the dataset has no rows"


def test_data_info_malformed_generic_dataset_is_one_line_exit_2(runner, tmp_path):
    for directory, where, what in _malformed(tmp_path):
        res = runner.invoke(main, ["data", "info", str(directory)])
        assert res.exit_code == 2, (directory.name, res.output)
        assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and where in lines[0] and what in lines[0], (directory.name, res.output)


def test_data_info_bad_option_values_are_refused(runner):
    res = runner.invoke(main, ["data", "info", "synthetic", "-o", "n=abc"])
    assert res.exit_code == 2 and "parameter 'n'" in res.output and "'abc'" in res.output
    res = runner.invoke(main, ["data", "info", "synthetic", "-o", "nn=600"])
    assert res.exit_code == 2 and "did you mean n?" in res.output
