"""Third-party methods: ``--plugin`` files/modules, entry points, and the shipped example plugin."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nrchbench.cli import main
from nrchbench.cli.common import import_plugins
from nrchbench.errors import NrchbenchError
from nrchbench.records import parse_record
from nrchbench.runner import run_safe
from nrchbench.spec import resolve_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO / "examples" / "plugin-method"
EXAMPLE_DIST = "nrchbench-example-lrh"
SMALL = {"n": 600, "image_dim": 64, "text_dim": 200}
SMALL_ARGS = ["-d", "n=600", "-d", "image_dim=64", "-d", "text_dim=200"]


def _installed() -> bool:
    try:
        md.distribution(EXAMPLE_DIST)
    except md.PackageNotFoundError:
        return False
    return True


def test_plugin_import_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(NrchbenchError, match="could not be imported: FileNotFoundError"):
        import_plugins([str(tmp_path / "nope.py")])
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise ValueError('broken on purpose')\n")
    with pytest.raises(NrchbenchError, match="ValueError: broken on purpose"):
        import_plugins([str(broken)])
    with pytest.raises(NrchbenchError, match="could not be imported"):
        import_plugins(["no_such_module_for_nrchbench"])


def test_example_plugin_as_a_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--plugin nrchbench_lrh`` with the example's folder on the path (no install needed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    import_plugins(["nrchbench_lrh"])
    spec = resolve_spec(
        "lrh", bits=16, noise_rate=0.5, preset="tiny", dataset_options=SMALL, params={"epochs": 3}, device="cpu"
    )
    rec = run_safe(spec, out=tmp_path)
    assert rec.status == "ok", rec.error
    assert rec.spec.resolved_params == {"epochs": 3, "ridge": 10.0, "keep": 0.5, "warmup": 1}
    last = rec.to_dict()["history"][-1]
    assert last["selected_fraction"] == pytest.approx(0.5)
    # the small-loss separator keeps more clean pairs than chance (half the pairs are clean)
    assert last["sel_precision"] > 0.5
    assert rec.metrics["avg"]["map"] > rec.metrics["avg"]["chance"]
    assert "sample_loss_hist" in rec.diagnostics


def test_entry_point_discovery_without_plugin_flag(tmp_path: Path) -> None:
    """A distribution declaring ``nrchbench.methods`` is found with no ``--plugin`` at all."""
    site = tmp_path / "site"
    dist_info = site / "nrchbench_example_fake-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: nrchbench-example-fake\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[nrchbench.methods]\nlrh = nrchbench_lrh:LabelRegressionHashing\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE_DIR), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "nrchbench", "run", "--method", "lrh", "--bits", "16", "--preset", "tiny"]
    cmd += ["--device", "cpu", *SMALL_ARGS, "--out", str(tmp_path / "out"), "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    rec = json.loads(res.stdout)
    assert rec["status"] == "ok" and rec["spec"]["method"] == "lrh"


def test_example_plugin_installed(tmp_path: Path) -> None:
    """With ``pip install ./examples/plugin-method`` (CI does it): listed and runnable by name."""
    if not _installed():
        pytest.skip(f"{EXAMPLE_DIST} is not installed: pip install -e examples/plugin-method")
    eps = [ep for ep in md.distribution(EXAMPLE_DIST).entry_points if ep.group == "nrchbench.methods"]
    assert [ep.name for ep in eps] == ["lrh"]
    runner = CliRunner()
    res = runner.invoke(main, ["list", "methods"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "lrh" in res.stdout
    args = ["run", "--method", "lrh", "--bits", "16", "--preset", "tiny", "--device", "cpu", *SMALL_ARGS]
    res = runner.invoke(main, [*args, "--out", str(tmp_path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["status"] == "ok"
    parse_record(rec)
