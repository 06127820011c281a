"""Honest sweep progress (issue 19 item 1): epoch events of every running run, the cost model's
ETA, a clean Ctrl-C; and results that span code versions (item 6): sweeps count and
--rerun-stale reruns the records another code version made, ``run`` says what it replaces.
(The cost model itself: tests/test_eta.py; tables spanning versions: tests/test_provenance.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SMALL, TOY

from nrchbench.cli import main
from nrchbench.grid import expand_grid
from nrchbench.provenance import code_version, current_code_version
from nrchbench.records import iter_record_paths, read_record
from nrchbench.sweep import run_sweep

pytestmark = pytest.mark.usefixtures("toy_plugins")


def grid(noise: str = "0.2,0.8", seeds: str = "0,1", **params):
    return expand_grid(
        "toy-linear", "synthetic", "16", noise, seeds, preset="tiny", dataset_options=SMALL, device="cpu", params=params
    )


def test_every_running_run_reports_its_epochs_and_the_eta_follows(tmp_path: Path) -> None:
    events = []
    s = run_sweep(grid(sleep=0.2), out=tmp_path, device="cpu", jobs=2, plugins=[TOY], progress=events.append)
    assert s.ok == 4
    epochs = [ev for ev in events if ev.kind == "epoch"]
    assert len(epochs) == 4 * 2  # tiny preset: 2 epochs per run, each reported
    assert all(0 <= v.epochs_done <= v.epochs == 2 for ev in epochs for v in ev.running)
    assert all(v.epochs_done >= 1 for ev in epochs for v in ev.running if v.run_id == ev.spec.run_id)
    starts = [ev for ev in events if ev.kind == "start"]
    assert all(any(v.run_id == ev.spec.run_id and v.epochs_done == 0 for v in ev.running) for ev in starts)
    assert max(len(ev.running) for ev in events) == 2  # both workers' runs are shown
    done = [ev for ev in events if ev.kind == "done"]
    assert all(ev.eta_s is not None for ev in done)  # priced from the first finished run on
    assert done[-1].eta_s == 0.0 and done[-1].running == []


def test_the_prior_prices_runs_before_any_finishes(tmp_path: Path) -> None:
    run_sweep(grid(seeds="0", sleep=0.1), out=tmp_path, device="cpu", plugins=[TOY])
    events = []
    run_sweep(grid(seeds="1", sleep=0.1), out=tmp_path, device="cpu", plugins=[TOY], progress=events.append)
    first = next(ev for ev in events if ev.kind == "start")
    assert first.eta_s is not None and first.eta_s > 0  # from the records already in --out


def _sweep_cmd(out: Path, *extra: str, seeds: str = "0,1") -> list[str]:
    small = [a for k, v in SMALL.items() for a in ("-d", f"{k}={v}")]
    return [sys.executable, "-m", "nrchbench", "sweep", "--plugin", TOY, "--methods", "toy-linear", "--bits", "16",
            "--noise", "0.2,0.5,0.8", "--seeds", seeds, "--preset", "tiny", "--device", "cpu", *small,
            "--out", str(out), *extra]  # fmt: skip


def test_ctrl_c_summarises_exits_130_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = _sweep_cmd(out, "-p", "sleep=0.5")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not iter_record_paths(out) and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and iter_record_paths(out), "the sweep ended (or wrote nothing) before Ctrl-C"
        time.sleep(0.3)  # in the middle of the next run
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole group
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = " ".join((stdout + stderr).decode().split())
    assert proc.returncode == 130, text[-2000:]
    assert "rerun the same command to resume" in text and "Aborted" not in text
    done = len(iter_record_paths(out))
    assert f"{done} done (0 before), 0 failed, {6 - done} not run" in text
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.claim*"))
    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["skipped"] == done and len(iter_record_paths(out)) == 6


def _age(path: Path, revision: str) -> None:
    """Make a record look made by another commit (the env is not part of the run id)."""
    data = json.loads(path.read_text())
    data["env"]["git_revision"], data["env"]["git_dirty"] = revision, False
    path.write_text(json.dumps(data))


def test_sweep_counts_stale_records_and_rerun_stale_reruns_only_them(tmp_path: Path) -> None:
    specs = grid(noise="0.2,0.5,0.8", seeds="0")
    assert run_sweep(specs, out=tmp_path, device="cpu", plugins=[TOY]).ok == 3
    paths = sorted(iter_record_paths(tmp_path))
    for p in paths[:2]:
        _age(p, "0" * 40)
    fresh = read_record(paths[2])
    s = run_sweep(specs, out=tmp_path, device="cpu", plugins=[TOY])
    assert (s.ok, s.skipped, s.stale, s.stale_rerun) == (0, 3, 2, 0)
    assert s.stale_versions == {f"{fresh.env.nrchbench}@00000000": 2}

    s = run_sweep(specs, out=tmp_path, device="cpu", plugins=[TOY], rerun_stale=True)
    assert (s.ok, s.skipped, s.stale, s.stale_rerun) == (2, 1, 0, 2)
    now = {p.name: read_record(p) for p in iter_record_paths(tmp_path)}
    assert all(code_version(r.env) == current_code_version() for r in now.values())
    assert now[paths[2].name].created == fresh.created  # the current one was not rerun
    again = run_sweep(specs, out=tmp_path, device="cpu", plugins=[TOY], rerun_stale=True)
    assert (again.ok, again.skipped, again.stale) == (0, 3, 0)


def test_cli_sweep_says_how_many_records_are_stale(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    cmd = _sweep_cmd(tmp_path, seeds="0")
    assert subprocess.run(cmd, capture_output=True, timeout=300, env=env).returncode == 0
    _age(sorted(iter_record_paths(tmp_path))[0], "1" * 40)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "1 skipped record(s) were made by another code version" in text and "--rerun-stale" in text


def test_run_says_it_replaces_a_record_and_its_version(tmp_path: Path) -> None:
    args = ["run", "--plugin", TOY, "-m", "toy-linear", "--preset", "tiny", "--bits", "16", "--device", "cpu"]
    args += [*[a for k, v in SMALL.items() for a in ("-d", f"{k}={v}")], "--out", str(tmp_path)]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0 and "replaced" not in first.output
    (path,) = iter_record_paths(tmp_path)
    _age(path, "2" * 40)
    second = CliRunner().invoke(main, args, catch_exceptions=False)
    assert second.exit_code == 0
    text = " ".join(second.output.split())
    assert f"replaced the existing record of run {path.stem}" in text
    assert "code version 0.1.0@22222222" in text or "@22222222" in text
