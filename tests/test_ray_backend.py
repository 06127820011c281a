"""The Ray backend on a real Ray (CPU): a local instance, and a two-node cluster on loopback.

The cluster is two ``ray start --block`` processes on this machine (one CPU each), each in
its own session; the tests stop them by killing exactly the processes of those sessions
(never ``ray stop``, which would stop every Ray on the machine). The nodes are started with
``--node-ip-address 127.0.0.1`` and reached at ``127.0.0.1:PORT``; Ray itself advertises
the machine's own address for them (it rewrites loopback in multi-node mode).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import nrchbench.sweep as sweep_mod  # noqa: E402
from nrchbench.backends import get_backend  # noqa: E402
from nrchbench.backends.ray_backend import RayBackend  # noqa: E402
from nrchbench.cli.common import import_plugins  # noqa: E402
from nrchbench.grid import expand_grid  # noqa: E402
from nrchbench.records import iter_record_paths, load_records, read_record  # noqa: E402
from nrchbench.sweep import run_sweep  # noqa: E402

pytestmark = pytest.mark.ray

PLUGINS = Path(__file__).resolve().parent / "plugins"
TOY = str(PLUGINS / "toy_methods.py")
SMALL = {"n": 600, "image_dim": 64, "text_dim": 200}
START_TIMEOUT = 120.0
# Quick node-death detection in the head's GCS (Ray reads RAY_<config name>).
FAST_HEALTH = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def grid(methods: str = "dcmh,nrch-nogmm", noise: str = "0.2,0.8", seeds: str = "0,1", **kw):
    return expand_grid(
        methods, "synthetic", "16", noise, seeds, preset="tiny", dataset_options=SMALL, device="cpu", **kw
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """Every process whose session id is ``sid`` (the ``ray start`` we launched and its children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            pids.append(int(entry.name))
    return pids


class Node:
    """One ``ray start --block`` in a new session, stopped by killing that session only."""

    def __init__(self, temp_dir: str, head_port: int, head: bool) -> None:
        self.head = head
        ports = [str(_free_port()) for _ in range(4)]
        args = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--block",
            "--num-cpus=1",
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            "--object-store-memory=100000000",
            f"--dashboard-agent-listen-port={ports[0]}",
            f"--dashboard-agent-grpc-port={ports[1]}",
            f"--metrics-export-port={ports[2]}",
            f"--runtime-env-agent-port={ports[3]}",
        ]
        if head:
            args += [
                "--head",
                f"--port={head_port}",
                f"--temp-dir={temp_dir}",
                "--include-dashboard=false",
                f"--ray-client-server-port={_free_port()}",
            ]
        else:
            args += [f"--address=127.0.0.1:{head_port}"]
        self.log = Path(temp_dir) / f"{'head' if head else 'worker'}-{ports[0]}.log"
        env = {**os.environ, **FAST_HEALTH, "RAY_USAGE_STATS_ENABLED": "0"}
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if "Ray runtime started" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.kill()
        pytest.fail(f"ray start did not come up: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        for _ in range(3):
            pids = _session_pids(self.proc.pid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _plugins() -> None:
    import_plugins([TOY])


@pytest.fixture(scope="module", autouse=True)
def _explicit_auth_mode() -> Iterator[None]:
    """One explicit Ray auth mode for the driver and every node these tests start.

    Left unset, Ray (2.5x) turns token auth on for a new local instance and for a ``ray
    start --head`` when ``~/.ray/auth_token`` exists, but not for a ``ray start --address``
    worker node, and the driver process caches the mode it saw first. These clusters live
    for seconds, on this machine only.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        mp.delenv("RAY_ADDRESS", raising=False)
        yield


class Cluster:
    """A head and worker nodes on this machine, one CPU each, all killed at the end."""

    def __init__(self) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="nrray", dir="/tmp")  # short: socket paths must stay < 108 chars
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes = [Node(self.temp_dir, self.port, head=True)]
        self.nodes[0].wait_started()
        self.worker = self.start_worker()

    def start_worker(self) -> Node:
        node = Node(self.temp_dir, self.port, head=False)
        self.nodes.append(node)
        node.wait_started()
        self.worker = node
        return node

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = None
    try:
        c = Cluster()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if c is not None:
            c.close()


def _use(monkeypatch: pytest.MonkeyPatch, backend: RayBackend) -> None:
    """Make the sweep use this backend instance (so the test can read its cache stats)."""
    monkeypatch.setattr(sweep_mod, "get_backend", lambda *a, **k: backend)


def _comparable(rec: dict) -> dict:
    """A record without what legitimately differs between two executions (times, host, date)."""
    history = [{k: v for k, v in h.items() if not k.startswith("time_")} for h in rec["history"]]
    return {k: rec[k] for k in ("run_id", "status", "spec", "dataset", "noise_report", "metrics")} | {
        "history": history
    }


# ---------------------------------------------------------------------------- tests
def test_without_ray_the_hint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from nrchbench.backends import BACKENDS, RAY_HINT
    from nrchbench.errors import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "nrchbench.backends.ray_backend")
    assert BACKENDS["ray"] == "nrchbench.backends.ray_backend:RayBackend"
    with pytest.raises(ConfigError) as exc:
        get_backend("ray")
    assert str(exc.value) == RAY_HINT


def test_options_are_checked() -> None:
    from nrchbench.errors import ConfigError

    assert isinstance(get_backend("ray", jobs=1, address="auto", gpus_per_run=1.0), RayBackend)
    with pytest.raises(ConfigError, match="not both 0"):
        RayBackend(cpus_per_run=0, gpus_per_run=0)
    with pytest.raises(ConfigError, match="--backend ray"):
        get_backend("ray", bogus=1)


def test_local_instance_gives_the_same_records_as_the_local_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 methods × 2 noise × 2 seeds: same records (mAP bit for bit), data loaded once."""
    import torch

    specs = grid()
    assert len(specs) == 8
    out = tmp_path
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray task with one CPU (and a local worker with --jobs 2 here)
    try:
        local = run_sweep(specs, out=out / "local")
    finally:
        torch.set_num_threads(threads)
    # records_on_workers=False: every record travels back and the driver writes it
    ray_tmp = tempfile.mkdtemp(prefix="nrray", dir="/tmp")  # short: socket paths must stay < 108 chars
    backend = RayBackend(num_cpus=1, records_on_workers=False, init_kwargs={"_temp_dir": ray_tmp})
    _use(monkeypatch, backend)
    events = []
    try:
        summary = run_sweep(specs, out=out / "ray", backend="ray", progress=events.append)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert local.ok == summary.ok == 8 and summary.failed == 0
    assert [e.kind for e in events].count("start") == [e.kind for e in events].count("done") == 8
    assert not any(e.result.written for e in events if e.kind == "done")
    assert not ray.is_initialized()  # the instance it started is shut down again
    a = {r["run_id"]: _comparable(r) for r in [x.to_dict() for x in load_records(out / "local")]}
    b = {r["run_id"]: _comparable(r) for r in [x.to_dict() for x in load_records(out / "ray")]}
    assert a.keys() == b.keys() == {s.run_id for s in specs}
    for run_id in a:
        assert b[run_id]["metrics"]["avg"]["map"] == a[run_id]["metrics"]["avg"]["map"]
        assert b[run_id] == a[run_id]
    assert all(r["host"] and r["pid"] and r["node"] for r in summary.runs)
    # one node, one dataset: loaded once for the 8 runs
    assert [s["loads"] for s in backend.cache_stats.values()] == [1]
    # the marker file is gone; only records are left
    assert not [p for p in (out / "ray").iterdir() if p.name.startswith(".nrchbench-ray-")]


def test_resume_across_backends_on_two_nodes(tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half the sweep locally, the rest on the 2-node cluster: one record per spec, both nodes used."""
    specs = grid("toy-linear", noise="0.2,0.5,0.8", seeds="0,1", params={"sleep": 0.3})
    assert len(specs) == 6
    out = tmp_path
    first = run_sweep(specs[:3], out=out, plugins=[TOY])
    assert first.ok == 3
    before = {p: p.stat().st_mtime_ns for p in iter_record_paths(out)}
    backend = RayBackend(address=cluster.address, poll_s=0.1)
    _use(monkeypatch, backend)
    events = []
    summary = run_sweep(specs, out=out, backend="ray", plugins=[TOY], progress=events.append)
    submitted = [e.spec.run_id for e in events if e.kind == "start"]
    # per-epoch progress from the workers (3 epochs of ≥ 0.3 s, drained every 0.1 s)
    epochs: dict[str, list[int]] = {rid: [] for rid in submitted}
    for e in (e for e in events if e.kind == "epoch"):
        epochs[e.spec.run_id] += [v.epochs_done for v in e.running if v.run_id == e.spec.run_id]
    assert all(done and done == sorted(done) and max(done) <= 3 for done in epochs.values()), epochs
    assert all(e.result.written for e in events if e.kind == "done")  # same filesystem: workers wrote
    assert summary.skipped == 3 and summary.ok == 3 and summary.failed == 0
    assert sorted(submitted) == sorted(s.run_id for s in specs[3:])  # done specs are never submitted
    paths = iter_record_paths(out)
    assert sorted(p.stem for p in paths) == sorted(s.run_id for s in specs)
    assert all(read_record(p).status == "ok" for p in paths)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished records untouched
    nodes = {r["node"] for r in summary.runs if r["status"] == "ok"}
    assert len(nodes) == 2, summary.runs
    assert len(backend.cache_stats) == 2


@pytest.mark.parametrize("retries", [2, 0])
def test_killing_a_node_mid_sweep_still_records_every_spec(
    tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch, retries: int
) -> None:
    """With retries the lost run reruns on the head (ok); without, it is recorded failed."""
    if cluster.worker.proc.poll() is not None:
        cluster.start_worker()
    worker = cluster.worker
    specs = grid("toy-linear", noise="0.1,0.3,0.5,0.7", seeds="0,1", params={"sleep": 0.5})
    out = tmp_path
    backend = RayBackend(address=cluster.address, max_retries=retries, run_timeout=120, poll_s=0.5)
    _use(monkeypatch, backend)
    killed = threading.Event()

    def on_event(ev) -> None:
        if ev.kind != "done" or killed.is_set():
            return
        head = next(n["NodeID"] for n in ray.nodes() if "node:__internal_head__" in n.get("Resources", {}))
        if ev.result.node and ev.result.node != head:
            # The worker node gets its next run right after this: kill the node mid-run.
            killed.set()
            threading.Timer(0.3, worker.kill).start()

    t0 = time.monotonic()
    summary = run_sweep(specs, out=out, backend="ray", plugins=[TOY], progress=on_event)
    assert killed.is_set()
    assert time.monotonic() - t0 < 150
    records = {r.run_id: r.to_dict() for r in load_records(out)}
    assert set(records) == {s.run_id for s in specs}  # every spec recorded
    assert summary.ok + summary.failed == len(specs)
    failed = [r for r in records.values() if r["status"] != "ok"]
    if retries:
        assert not failed, [r["error"] for r in failed]
    else:
        assert failed and all(r["error"].startswith("lost after 0 retries: ") for r in failed), failed
        # a failed record is rerun by the next sweep (here: locally)
        again = run_sweep(specs, out=out, plugins=[TOY])
        assert again.ok == len(failed) and again.skipped == len(specs) - len(failed)
        assert all(r.status == "ok" for r in load_records(out))
        assert len(iter_record_paths(out)) == len(specs)


def test_ctrl_c_cancels_outstanding_runs(tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = grid("toy-linear", noise="0.2,0.4,0.6,0.8", seeds="0", params={"sleep": 1.0})
    out = tmp_path
    _use(monkeypatch, RayBackend(address=cluster.address, poll_s=0.2))
    done = []

    def on_event(ev) -> None:
        if ev.kind == "done":
            done.append(ev.spec.run_id)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(specs, out=out, backend="ray", plugins=[TOY], progress=on_event)
    assert not ray.is_initialized()
    time.sleep(3.0)  # a run that kept going would have written its record by now
    assert sorted(p.stem for p in iter_record_paths(out)) == sorted(done)
    assert all(read_record(p).status == "ok" for p in iter_record_paths(out))


def test_run_timeout_cancels_and_records_failed(
    tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = grid("toy-linear", noise="0.2", seeds="0", params={"sleep": 20.0})
    out = tmp_path
    _use(monkeypatch, RayBackend(address=cluster.address, run_timeout=3.0, poll_s=0.2))
    t0 = time.monotonic()
    summary = run_sweep(specs, out=out, backend="ray", plugins=[TOY])
    assert time.monotonic() - t0 < 30
    assert summary.failed == 1
    (rec,) = [r.to_dict() for r in load_records(out)]
    assert rec["status"] == "failed" and "run_timeout=3s" in rec["error"]
