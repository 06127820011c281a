"""Issue 18: runs that die, unwritable results, foreign temp files, concurrent sweeps, plugins that
take a built-in's name or hide a NaN loss, values refused at resolve time, and sweep files that
run code. Each test reproduces the problem as reported (it fails on the code before the fix).

The sweeps whose runs die are subprocesses: before the fix, a run killed by SIGKILL took its
whole process — here that would be pytest — down with it.
"""

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
from conftest import PLUGINS, SMALL, TOY, forget_toy_plugins

from nrchbench.cli import main
from nrchbench.errors import NrchbenchError, RegistryError
from nrchbench.grid import expand_grid
from nrchbench.records import clean_stale_tmp, iter_record_paths, load_records, read_record
from nrchbench.sweep import run_sweep

DYING = str(PLUGINS / "dying_methods.py")
DYING_NAMES = ("toy-sigkill", "toy-exit", "toy-segv", "toy-nanloss", "toy-nanfit")
SMALL_ARGS = ["-d", "n=600", "-d", "image_dim=64", "-d", "text_dim=200"]
TINY = ["--bits", "16", "--preset", "tiny", "--device", "cpu", *SMALL_ARGS]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    from nrchbench.plugins import import_plugins
    from nrchbench.registry import METHODS

    import_plugins([TOY, DYING])
    yield
    forget_toy_plugins()
    for name in DYING_NAMES:
        METHODS.unregister(name)
    sys.modules.pop("nrchbench_plugin_dying_methods", None)


def grid(methods: str, noise: str = "0.5", seeds: str = "0", **kw):
    return expand_grid(
        methods, "synthetic", "16", noise, seeds, preset="tiny", dataset_options=SMALL, device="cpu", **kw
    )


def nb(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``nrchbench ARGS`` in a fresh process."""
    cmd = [sys.executable, "-m", "nrchbench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=cwd)


def claim_files(out: Path) -> list[Path]:
    """Claim files (and half-done takeovers) on disk under ``out``."""
    return sorted(out.rglob(".*.claim*")) if out.exists() else []


def comparable(rec: dict) -> dict:
    """A record without what differs between two executions (times, host, pid, date)."""
    history = [{k: v for k, v in h.items() if not k.startswith("time_")} for h in rec["history"]]
    env = {k: v for k, v in rec["env"].items() if k not in ("hostname",)}
    return {k: rec[k] for k in ("run_id", "status", "error", "spec", "dataset", "noise_report", "metrics")} | {
        "history": history,
        "env": env,
    }


# ---------------------------------------------------------------------------- item 3: isolation
def test_runs_that_die_are_recorded_failed_and_the_jobs_1_sweep_goes_on(tmp_path: Path) -> None:
    """A real SIGKILL, os._exit(3) and a segfault inside a --jobs 1 sweep (the default)."""
    out = tmp_path / "out"
    args = ["sweep", "--plugin", TOY, "--plugin", DYING, "--methods", "toy-sigkill,toy-linear,toy-exit,toy-segv"]
    res = nb(*args, "--noise", "0.5", *TINY, "--out", str(out), "--json")
    assert res.returncode == 1, (res.returncode, res.stderr[-3000:])  # runs failed; the sweep itself did not
    summary = json.loads(res.stdout)
    assert (summary["ok"], summary["failed"]) == (1, 3)
    records = {r.spec.method: r for r in load_records(out)}
    assert set(records) == {"toy-sigkill", "toy-linear", "toy-exit", "toy-segv"}
    assert records["toy-linear"].status == "ok"
    kill, exit_, segv = records["toy-sigkill"], records["toy-exit"], records["toy-segv"]
    assert kill.status == exit_.status == segv.status == "failed"
    assert "killed by SIGKILL" in kill.error and "last output: toy-sigkill: about to be killed" in kill.error
    assert "exited with code 3" in exit_.error and "toy-exit: calling os._exit(3)" in exit_.error
    assert "SIGSEGV" in segv.error and "Fatal Python error: Segmentation fault" in segv.error
    assert kill.diagnostics["died"]["signal"] == "SIGKILL" and kill.diagnostics["died"]["output"]
    assert not claim_files(out) and not list(out.rglob("*.tmp"))


def test_a_death_costs_no_other_run_in_flight(tmp_path: Path) -> None:
    """--jobs 2: the run beside the killed one finishes ok (a broken pool used to lose it too)."""
    specs = grid("toy-sigkill,toy-linear", params={"toy-linear.sleep": 1.0, "toy-sigkill.sleep": 0.3})
    summary = run_sweep(specs, out=tmp_path, jobs=2, device="cpu")
    status = {r["method"]: (r["status"], r["error"]) for r in summary.runs}
    assert status["toy-linear"] == ("ok", None)
    assert status["toy-sigkill"][0] == "failed" and "SIGKILL" in status["toy-sigkill"][1]


def test_isolated_records_are_identical_to_in_process_runs(tmp_path: Path) -> None:
    """The same spec in a worker process (--jobs 1) and in this process: the same record, thread count included."""
    import torch

    from nrchbench.runner import run_safe

    specs = grid("toy-linear,nrch-nodns")
    threads = torch.get_num_threads()
    summary = run_sweep(specs, out=tmp_path / "sweep", device="cpu")
    assert summary.ok == 2 and all(r["pid"] != os.getpid() for r in summary.runs)
    for spec in specs:
        here = run_safe(spec, out=tmp_path / "here").to_dict()
        (there,) = [r.to_dict() for r in load_records(tmp_path / "sweep", run_id=spec.run_id)]
        assert there["env"]["torch_threads"] == here["env"]["torch_threads"] == threads
        assert comparable(there) == comparable(here)


# ---------------------------------------------------------------------------- item 4: unwritable --out
def _unwritable(tmp_path: Path) -> list[str]:
    plain = tmp_path / "a-file"
    plain.write_text("not a directory\n")
    outs = [str(plain), str(plain / "sub"), "/proc/nrchbench-results"]
    if os.geteuid() != 0:  # root writes into read-only directories
        ro = tmp_path / "read-only"
        ro.mkdir(mode=0o555)
        outs.append(str(ro))
    return outs


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_unwritable_out_is_one_line_before_any_work(tmp_path: Path, command: str) -> None:
    """toy-sigkill would kill an in-process run: exit 2 and one line prove nothing started."""
    method = ["--method", "toy-sigkill"] if command == "run" else ["--methods", "toy-sigkill"]
    for out in _unwritable(tmp_path):
        res = nb(command, "--plugin", DYING, *method, *TINY, "--out", out, timeout=120)
        assert res.returncode == 2, (out, res.returncode, res.stderr[-2000:])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "--results" in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert (tmp_path / "a-file").read_text() == "not a directory\n"


# ---------------------------------------------------------------------------- item 5: temp files
def test_stale_tmp_cleanup_deletes_only_its_own_files_and_never_follows_symlinks(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "synthetic" / "nrch").mkdir(parents=True)
    foreign = [elsewhere / "important.tmp", elsewhere / "synthetic" / "nrch" / ".0123456789abcdef.json.ab12cd34.tmp"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "runs").symlink_to(elsewhere, target_is_directory=True)  # a symlinked runs/
    for f in foreign:
        f.write_text("someone else's")
    old = time.time() - 3600
    for f in foreign:
        os.utime(f, (old, old))
    assert clean_stale_tmp(out) == 0
    assert all(f.exists() for f in foreign)

    # A real runs/: the writer's own stale temp files go, anything else stays, links are not entered.
    real = tmp_path / "real"
    method_dir = real / "runs" / "synthetic" / "nrch"
    method_dir.mkdir(parents=True)
    own = [method_dir / ".0123456789abcdef.json.ab12cd34.tmp", method_dir / ".0123456789abcdef.codes.npz.x_9yz0q1.tmp"]
    keep = [method_dir / "notes.tmp", method_dir / "0123456789abcdef.json.tmp", real / "runs" / "important.tmp"]
    for f in own + keep:
        f.write_text("x")
        os.utime(f, (old, old))
    (method_dir.parent / "linked").symlink_to(elsewhere / "synthetic" / "nrch", target_is_directory=True)
    fresh = method_dir / ".fedcba9876543210.json.qwertyui.tmp"  # a live writer's: too young
    fresh.write_text("x")
    assert clean_stale_tmp(real) == 2
    assert not any(f.exists() for f in own)
    assert all(f.exists() for f in [*keep, fresh, *foreign])


# ---------------------------------------------------------------------------- item 6: claims
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_claims_are_exclusive_released_and_stale_ones_taken_over(tmp_path: Path) -> None:
    from nrchbench.claims import Claims, claim_path, read_claim

    (spec,) = grid("toy-linear")
    a, b = Claims(tmp_path, timeout_s=30, heartbeat_s=5), Claims(tmp_path, timeout_s=30, heartbeat_s=5)
    assert a.acquire(spec) and a.acquire(spec)  # idempotent for its holder
    assert not b.acquire(spec)  # O_EXCL: exactly one holder
    owner = read_claim(claim_path(tmp_path, spec)).owner
    assert owner["pid"] == os.getpid() and owner["token"] == a.token and owner["start"] is not None
    before = claim_path(tmp_path, spec).stat().st_mtime_ns
    time.sleep(0.02)
    a.beat()
    assert claim_path(tmp_path, spec).stat().st_mtime_ns > before  # the heartbeat
    a.release(spec)
    assert not claim_path(tmp_path, spec).exists()
    assert b.acquire(spec)
    b.release(spec)

    path = claim_path(tmp_path, spec)
    # a claim of a dead process on this host: taken over at once
    path.write_text(json.dumps({"host": a.host, "pid": _dead_pid(), "start": None, "token": "x" * 16}))
    assert a.acquire(spec) and read_claim(path).owner["token"] == a.token
    a.release(spec)
    # another host's claim with a fresh heartbeat is respected, an old heartbeat is stale
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "start": None, "token": "y" * 16}))
    assert not a.acquire(spec) and a.holder(spec) is not None
    os.utime(path, (time.time() - 60, time.time() - 60))
    assert a.holder(spec) is None and a.acquire(spec)
    # a holder whose claim was taken over does not delete the new owner's claim
    os.utime(path, (time.time() - 60, time.time() - 60))
    assert b.acquire(spec)
    a.release(spec)
    assert read_claim(path).owner["token"] == b.token
    b.release(spec)
    assert not claim_files(tmp_path)
    # a killed sweep's claim on a spec nobody claims again is cleaned up by the next sweep
    path.write_text(json.dumps({"host": a.host, "pid": _dead_pid(), "start": None, "token": "z" * 16}))
    live = claim_path(tmp_path, grid("toy-linear", seeds="1")[0])
    live.write_text(json.dumps({"host": "elsewhere", "pid": 1, "start": None, "token": "w" * 16}))
    assert a.clean_stale() == 1 and claim_files(tmp_path) == [live]


@pytest.mark.slow
def test_two_concurrent_sweeps_on_one_directory_run_each_spec_once(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    args = ["sweep", "--plugin", TOY, "--methods", "toy-linear", "--noise", "0.1,0.3,0.5,0.7", "--seeds", "0,1"]
    args += [*TINY, "-p", "sleep=0.4", "--out", str(out), "--json"]
    cmd = [sys.executable, "-m", "nrchbench", *args]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in "ab"]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in results]
    a, b = (json.loads(o) for o, _ in results)
    ran = [{r["run_id"] for r in s["runs"] if r["status"] == "ok"} for s in (a, b)]
    assert a["ok"] + b["ok"] == 8 and not ran[0] & ran[1]  # each spec exactly once, by one of them
    assert a["elsewhere"] + b["elsewhere"] == 8  # and each knows the other did the rest
    assert len(iter_record_paths(out)) == 8 and {read_record(p).status for p in iter_record_paths(out)} == {"ok"}
    assert not claim_files(out)


@pytest.mark.slow
def test_a_killed_sweeps_claims_are_taken_over(tmp_path: Path) -> None:
    """SIGKILL only the driver: its worker dies with it and the next sweep takes its claim over."""
    out = tmp_path / "out"
    args = ["sweep", "--plugin", TOY, "--methods", "toy-linear", "--noise", "0.2,0.8", *TINY, "-p", "sleep=2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nrchbench", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not claim_files(out) and proc.poll() is None:
        time.sleep(0.05)
    assert claim_files(out), "no claim appeared in time"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert claim_files(out)  # left behind by the killed sweep
    res = nb(*args, "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    assert {read_record(p).status for p in iter_record_paths(out)} == {"ok"} and len(iter_record_paths(out)) == 2
    assert not claim_files(out)


# ---------------------------------------------------------------------------- item 7
def test_a_plugin_cannot_take_a_builtin_name_unless_it_overrides(tmp_path: Path) -> None:
    from nrchbench.plugins import import_plugins
    from nrchbench.registry import METHODS

    taker = tmp_path / "taker.py"
    taker.write_text(
        "from nrchbench.registry import METHODS\n"
        "from nrchbench.methods.base import HashingMethod\n"
        "@METHODS.register('nrch')\n"
        "class Fake(HashingMethod):\n"
        "    presets = {'paper': {}, 'fast': {}, 'tiny': {}}\n"
    )
    res = nb("run", "--plugin", str(taker), "--method", "nrch", *TINY, "--out", str(tmp_path / "o"), timeout=120)
    assert res.returncode == 2 and "duplicate method name 'nrch'" in res.stderr and "override=True" in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
    with pytest.raises(NrchbenchError, match="duplicate method name 'nrch'"):
        import_plugins([str(taker)])

    builtin = METHODS.get("nrch")
    over = tmp_path / "overrider.py"
    over.write_text(taker.read_text().replace("register('nrch')", "register('nrch', override=True)"))
    import_plugins([str(over)])
    try:
        assert METHODS.get("nrch").__module__ == "nrchbench_plugin_overrider"
        assert "override of" in {r["name"]: r for r in METHODS.describe()}["nrch"]["source"]
    finally:
        METHODS.unregister("nrch")  # gives the name back to the built-in's entry point
        sys.modules.pop("nrchbench_plugin_overrider", None)
    assert METHODS.get("nrch") is builtin


def test_a_lazy_entry_point_keeps_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the fix, a decorator registering a name whose entry point was not imported yet took it."""
    import importlib.metadata as md

    from nrchbench.registry import Registry

    group = "nrchbench.test-lazy"
    eps = [md.EntryPoint(name="odict", value="collections:OrderedDict", group=group)]
    monkeypatch.setattr(md, "entry_points", lambda group=None: [e for e in eps if e.group == group])
    reg = Registry("method", group)
    with pytest.raises(RegistryError, match="already registered by collections:OrderedDict"):
        reg.register("odict", dict)
    import collections

    reg.register("odict", collections.OrderedDict)  # the entry point's own object: fine
    assert reg.get("odict") is collections.OrderedDict
    reg.register("odict", dict, override=True)
    assert reg.get("odict") is dict


@pytest.mark.parametrize("method", ["toy-nanfit", "toy-nanloss"])
def test_a_nan_loss_with_finite_codes_is_recorded_failed(tmp_path: Path, method: str) -> None:
    from nrchbench.runner import run_safe

    (spec,) = grid(method)
    rec = run_safe(spec, out=tmp_path)
    assert rec.status == "failed" and rec.error.startswith("NaN in ") and "training loss" in rec.error
    assert read_record(next(iter(iter_record_paths(tmp_path)))).status == "failed"


BAD_VALUES = [
    (["-p", "lr=-1"], "lr"),
    (["-d", "n=abc"], "'n'"),
    (["--bits", "100000"], "--bits"),
]


@pytest.mark.parametrize(("args", "word"), [*BAD_VALUES, (["--seed", "1e20"], "seed")])
def test_run_refuses_bad_values_at_resolve_time(tmp_path: Path, args: list[str], word: str) -> None:
    res = CliRunner().invoke(main, ["run", "--method", "nrch", *TINY, *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and word in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
@pytest.mark.parametrize(("args", "word"), [*BAD_VALUES, (["--seeds", "1e20"], "--seed")])
def test_sweep_refuses_bad_values_at_resolve_time(tmp_path: Path, args: list[str], word: str, dry_run) -> None:
    res = CliRunner().invoke(main, ["sweep", "--methods", "nrch", *TINY, *args, "--out", str(tmp_path / "o"), *dry_run])
    assert res.exit_code == 2 and word in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_a_sweep_file_dataset_option_typo_is_refused_by_dry_run(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('methods = "nrch"\nbits = [16]\npreset = "tiny"\n[dataset_options]\nn = 600\nimage_dims = 64\n')
    res = CliRunner().invoke(main, ["sweep", "--config", str(cfg), "--dry-run", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "image_dims" in res.output and "image_dim" in res.output, res.output


def test_ray_address_without_a_head_is_one_line_fast(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    t0 = time.monotonic()
    res = nb(
        "sweep", "--methods", "nrch", *TINY, "--out", str(tmp_path), "--backend", "ray", "--address", "127.0.0.1:1"
    )
    assert time.monotonic() - t0 < 90
    assert res.returncode == 2 and "127.0.0.1:1" in res.stderr, res.stderr[-2000:]
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1


# ---------------------------------------------------------------------------- item 8: sweep files run code
def test_dry_run_imports_no_plugin(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    plugin = tmp_path / "side_effect.py"
    plugin.write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from nrchbench.registry import METHODS\n"
        "from nrchbench.methods.base import HashingMethod\n"
        "@METHODS.register('toy-side-effect')\n"
        "class SideEffect(HashingMethod):\n"
        "    defaults = {'epochs': 1}\n"
        "    presets = {'paper': {}, 'fast': {}, 'tiny': {}}\n"
    )
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        f'methods = "toy-side-effect,nrch-nodns"\nplugins = ["{plugin}"]\nbits = [16]\nnoise = [0.5]\n'
        'preset = "tiny"\n[dataset_options]\nn = 600\n[params]\n"toy-side-effect.epochs" = 1\n'
    )
    res = nb("sweep", "--config", str(cfg), "--dry-run", "--out", str(tmp_path / "o"), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not marker.exists()  # nothing was imported
    assert "needs plugin side_effect.py" in res.stdout and "nrch-nodns" in res.stdout and "to run" in res.stdout
    help_text = CliRunner().invoke(main, ["sweep", "--help"]).output
    assert "as trusted as a script" in help_text and "imports none" in help_text
