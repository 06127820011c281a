"""Grids, sweep files, resuming, failures, worker processes and SIGKILL safety.

(Runs that die, claims and concurrent sweeps: tests/test_reliability.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAILING, SMALL, TOY

from nrchbench.backends import BACKENDS, RAY_HINT, get_backend
from nrchbench.errors import ConfigError
from nrchbench.grid import expand_grid, load_sweep_file, specs_from_config, split_params
from nrchbench.records import iter_record_paths, load_records, read_record
from nrchbench.sweep import run_sweep

# The test plugins are registered for this module only (other modules never see them).
pytestmark = pytest.mark.usefixtures("toy_plugins")


def grid(methods: str, noise: str = "0.2,0.8", seeds: str = "0,1", **kw):
    return expand_grid(
        methods, "synthetic", "16", noise, seeds, preset="tiny", dataset_options=SMALL, device="cpu", **kw
    )


def test_expand_grid_and_noise_invariant_dedupe() -> None:
    specs = grid("toy-linear,toy-unsup")
    assert len(specs) == 4 + 2  # toy-unsup: one run per seed for both noise levels
    assert len({s.run_id for s in specs}) == 6
    unsup = [s for s in specs if s.method == "toy-unsup"]
    assert all(s.noise_invariant and s.noise_rate is None for s in unsup)
    with pytest.raises(ConfigError, match="seeds is empty"):
        grid("toy-linear", seeds="")


def test_split_params_per_method() -> None:
    p = split_params({"epochs": 3, "toy-linear.ridge": 2.0, "toy-unsup": {"epochs": 1}}, ["toy-linear", "toy-unsup"])
    assert p == {"toy-linear": {"epochs": 3, "ridge": 2.0}, "toy-unsup": {"epochs": 1}}
    with pytest.raises(ConfigError, match="not a parameter of any method"):
        split_params({"nonsense": 1}, ["toy-linear"])
    with pytest.raises(ConfigError, match="not in this sweep"):
        split_params({"toy-raise.epochs": 1}, ["toy-linear"])


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_sweep_file(tmp_path: Path, suffix: str) -> None:
    if suffix == ".toml":
        text = (
            'methods = "toy-linear,toy-unsup"\nbits = [16]\nnoise = [0.2, 0.8]\nseeds = [0]\npreset = "tiny"\n'
            "noise-model = 'nrch'\n[dataset_options]\nn = 600\nimage_dim = 64\ntext_dim = 200\n[params.toy-linear]\nridge = 3.0\n"
        )
    else:
        text = (
            "methods: [toy-linear, toy-unsup]\nbits: 16\nnoise: '0.2,0.8'\nseeds: [0]\npreset: tiny\n"
            "dataset_options: {n: 600, image_dim: 64, text_dim: 200}\nparams: {toy-linear: {ridge: 3.0}}\n"
        )
    f = tmp_path / f"sweep{suffix}"
    f.write_text(text)
    cfg = load_sweep_file(f)
    specs = specs_from_config({**cfg, "device": "cpu"})
    assert len(specs) == 3
    lin = [s for s in specs if s.method == "toy-linear"]
    assert all(s.resolved_params["ridge"] == 3.0 and s.dataset_options == SMALL for s in lin)
    f.write_text(("bogus = 1\n" if suffix == ".toml" else "bogus: 1\n") + text)
    with pytest.raises(ConfigError, match="bogus"):
        load_sweep_file(f)


def test_sweep_resumes_and_force_reruns(tmp_path: Path) -> None:
    specs = grid("toy-linear,toy-unsup", seeds="0")
    events = []
    s1 = run_sweep(specs, out=tmp_path, device="cpu", progress=lambda ev: events.append(ev.kind))
    assert (s1.total, s1.ok, s1.failed, s1.skipped) == (3, 3, 0, 0)
    assert events.count("start") == 3 and events.count("done") == 3
    assert all(r["host"] and r["pid"] and r["pid"] != os.getpid() for r in s1.runs)  # each in a worker process
    assert len(iter_record_paths(tmp_path)) == 3
    s2 = run_sweep(specs, out=tmp_path, device="cpu")
    assert (s2.ok, s2.skipped) == (0, 3)
    s3 = run_sweep(specs[:1], out=tmp_path, device="cpu", force=True)
    assert (s3.ok, s3.skipped) == (1, 0)
    assert len(iter_record_paths(tmp_path)) == 3


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    specs = grid("toy-raise,toy-linear,toy-nan", noise="0.5", seeds="0")
    s = run_sweep(specs, out=tmp_path, device="cpu")
    assert (s.ok, s.failed) == (1, 2)
    errors = {r["method"]: r["error"] for r in s.runs}
    assert errors["toy-raise"] == "RuntimeError: toy-raise exploded on purpose"
    assert errors["toy-nan"].startswith("NaN in image outputs")
    assert {r.status for r in load_records(tmp_path, method=["toy-raise", "toy-nan"])} == {"failed"}
    again = run_sweep(specs, out=tmp_path, device="cpu")  # failed runs are retried, ok ones skipped
    assert (again.skipped, again.failed) == (1, 2)


def test_worker_processes(tmp_path: Path) -> None:
    specs = grid("toy-linear,toy-nan", noise="0.5", seeds="0")
    s = run_sweep(specs, out=tmp_path, device="cpu", jobs=2, plugins=[TOY, FAILING])
    assert (s.ok, s.failed) == (1, 1)
    assert all(r["pid"] != os.getpid() for r in s.runs)
    assert {read_record(p).status for p in iter_record_paths(tmp_path)} == {"ok", "failed"}


def test_backends() -> None:
    with pytest.raises(ConfigError, match="for --backend ray"):
        get_backend("local", jobs=1, address="ray://x:1")
    with pytest.raises(ConfigError, match="expected one of"):
        get_backend("slurm")
    saved = BACKENDS["ray"]
    BACKENDS["ray"] = "nrchbench.backends._no_such_backend:RayBackend"
    try:
        with pytest.raises(ConfigError) as exc:
            get_backend("ray")
        assert str(exc.value) == RAY_HINT
    finally:
        BACKENDS["ray"] = saved


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume(tmp_path: Path) -> None:
    """Kill a sweep subprocess with SIGKILL mid-run; the restart completes every spec once."""
    out = tmp_path / "results"
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(
        'methods = ["toy-linear"]\nbits = [16]\nnoise = [0.2, 0.8]\nseeds = [0, 1]\npreset = "tiny"\n'
        f'out = "{out}"\nplugins = ["{TOY}"]\ndevice = "cpu"\n'
        "[dataset_options]\nn = 600\nimage_dim = 64\ntext_dim = 200\n[params]\nsleep = 0.5\n"
    )
    cmd = [sys.executable, "-m", "nrchbench", "sweep", "--config", str(cfg)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not iter_record_paths(out) and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        assert iter_record_paths(out), "no record appeared in time"
        time.sleep(0.3)  # now in the middle of another run
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = len(iter_record_paths(out))
    assert 1 <= done_before < 4
    # A temp file as a killed writer would leave it (old enough to be stale).
    stale = next(iter(iter_record_paths(out))).parent / ".deadbeefdeadbeef.json.x1y2z3w4.tmp"
    stale.write_text('{"half": ')
    os.utime(stale, (time.time() - 60, time.time() - 60))

    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    paths = iter_record_paths(out)
    assert len(paths) == 4
    assert {read_record(p).status for p in paths} == {"ok"}
    assert len({read_record(p).run_id for p in paths}) == 4
    assert not list(out.rglob("*.tmp"))
    assert not list(out.rglob(".*.claim*"))  # the killed sweep's claims were taken over and released
    summary = json.loads(res.stdout)
    assert summary["skipped"] == done_before and summary["ok"] == 4 - done_before
