"""Wall time of one 16-run sweep with the local backend and with Ray on this machine.

Usage: ``python benchmarks/sweep_backends.py [--ray-cpus 2] [--jobs 2] [--json out.json]``

The sweep: ``dcmh`` and ``nrch-nogmm`` × noise 0.2/0.8 × seeds 0–3 on a small ``synthetic``
set (``n=600``, 64-d image, 200-word text), preset ``tiny``, 16 bits, on CPU — short runs,
so the backends' own costs show. Each backend writes to a fresh results directory.

Rows:
* ``local --jobs 1``: in this process, one run after another (torch threads = 1).
* ``local --jobs N``: N spawned worker processes.
* ``ray (C cpus)``: a local Ray instance with C CPUs, started and shut down by the sweep
  (its start-up is part of the wall time and also shown alone).

"runs s" is the sum of the runs' own durations (``RunResult.seconds``, measured inside the
worker). "overhead/run" = (wall − start-up) × slots / runs − mean run time: what each run
costs beyond its own work (scheduling, process start, imports, result transfer). The last
line times an empty Ray task round trip on a warm instance. On a machine shared with other
jobs the numbers are noisy; compare rows of one invocation.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nrchbench.spec import expand_grid
from nrchbench.sweep import run_sweep

SMALL = {"n": 600, "image_dim": 64, "text_dim": 200}


def specs() -> list:
    out = expand_grid(
        "dcmh,nrch-nogmm", "synthetic", "16", "0.2,0.8", "0,1,2,3", preset="tiny", dataset_options=SMALL, device="cpu"
    )
    assert len(out) == 16
    return out


def row(name: str, summary: Any, wall: float, slots: int, startup: float = 0.0) -> dict[str, Any]:
    secs = [r["seconds"] for r in summary.runs if isinstance(r.get("seconds"), (int, float))]
    n = len(secs)
    mean = sum(secs) / n if n else float("nan")
    return {
        "backend": name,
        "wall_s": wall,
        "startup_s": startup,
        "ok": summary.ok,
        "failed": summary.failed,
        "runs_s": sum(secs),
        "mean_run_s": mean,
        "overhead_per_run_s": (wall - startup) * slots / n - mean if n else float("nan"),
    }


def time_ray(cpus: int, out: Path, ray_tmp: str) -> tuple[dict[str, Any], float]:
    import ray

    from nrchbench.backends.ray_backend import RayBackend

    # Start-up alone (what the sweep pays first).
    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, _temp_dir=ray_tmp)
    startup = time.perf_counter() - t

    @ray.remote(num_cpus=1)
    def noop() -> int:
        return 0

    ray.get(noop.remote())  # warm a worker
    n = 50
    t = time.perf_counter()
    for _ in range(n):
        ray.get(noop.remote())
    roundtrip = (time.perf_counter() - t) / n
    ray.shutdown()

    import nrchbench.sweep as sweep_mod

    backend = RayBackend(num_cpus=cpus, init_kwargs={"_temp_dir": ray_tmp, "logging_level": logging.WARNING})
    saved = sweep_mod.get_backend
    sweep_mod.get_backend = lambda *a, **k: backend
    try:
        t = time.perf_counter()
        summary = run_sweep(specs(), out=out, backend="ray")
        wall = time.perf_counter() - t
    finally:
        sweep_mod.get_backend = saved
    r = row(f"ray ({cpus} cpu{'s' if cpus > 1 else ''})", summary, wall, cpus, startup)
    r["dataset_loads"] = {k[:12]: v.get("loads") for k, v in backend.cache_stats.items()}
    return r, roundtrip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="local worker processes")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    root = Path(tempfile.mkdtemp(prefix="nrbench"))
    ray_tmp = tempfile.mkdtemp(prefix="nrray", dir="/tmp")
    rows = []
    try:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        t = time.perf_counter()
        s = run_sweep(specs(), out=root / "local1")
        rows.append(row("local --jobs 1", s, time.perf_counter() - t, 1))
        torch.set_num_threads(threads)

        t = time.perf_counter()
        s = run_sweep(specs(), out=root / f"local{args.jobs}", jobs=args.jobs)
        rows.append(row(f"local --jobs {args.jobs}", s, time.perf_counter() - t, args.jobs))

        r, roundtrip = time_ray(args.ray_cpus, root / "ray", ray_tmp)
        rows.append(r)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)

    table = Table(title="16-run sweep (dcmh + nrch-nogmm, synthetic n=600, tiny, CPU)")
    for col in ("backend", "wall s", "start-up s", "ok", "runs s", "mean run s", "overhead/run s"):
        table.add_column(col, justify="right" if col != "backend" else "left")
    for r in rows:
        table.add_row(
            r["backend"],
            f"{r['wall_s']:.1f}",
            f"{r['startup_s']:.1f}",
            f"{r['ok']}/16",
            f"{r['runs_s']:.1f}",
            f"{r['mean_run_s']:.2f}",
            f"{r['overhead_per_run_s']:.2f}",
        )
    console = Console(width=120)
    console.print(table)
    console.print(
        f"empty Ray task round trip (warm): {roundtrip * 1000:.1f} ms; dataset loads per node: {rows[-1]['dataset_loads']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ray_roundtrip_s": roundtrip}, indent=2))


if __name__ == "__main__":
    main()
