"""What running every spec in a worker process (``--jobs 1``) costs against running it in-process.

Usage: ``python benchmarks/sweep_isolation.py [--runs 8] [--json out.json]``

The specs: ``nrch-nodns`` and ``dcmh`` × noise rates on a small ``synthetic`` set (``n=600``,
64-d image, 200-word text), preset ``tiny``, 16 bits, on CPU — runs of a fraction of a
second, so the isolation's own cost shows.

* **in-process**: ``backends.execute`` in this process, one spec after another (what
  ``--jobs 1`` did before runs were isolated).
* **isolated**: ``run_sweep(..., jobs=1)``: one worker process, started once for the sweep.

Per run, "overhead" = the driver's wall time from ``start`` to ``done`` minus the run's own
duration measured inside the worker (``RunResult.seconds``): pickling the spec and the
record, the pipe, the output relay, the claim file. "worker start" = the wall time before the
first run could begin (spawn + ``import nrchbench, torch`` in the worker). Both modes get one
warm-up run first (numba compiles the metrics on first use, in whichever process evaluates).
On a machine shared with other jobs the numbers are noisy; compare rows of one invocation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nrchbench.backends import RunKwargs, execute
from nrchbench.grid import expand_grid
from nrchbench.sweep import run_sweep

SMALL = {"n": 600, "image_dim": 64, "text_dim": 200}


def make_specs(runs: int) -> list:
    rates = ",".join(f"{0.05 + 0.9 * i / max(1, runs // 2 - 1):.3f}" for i in range(max(1, runs // 2)))
    specs = expand_grid(
        "nrch-nodns,dcmh", "synthetic", "16", rates, "0", preset="tiny", dataset_options=SMALL, device="cpu"
    )
    return specs[:runs]


def in_process(specs: list, out: Path) -> dict[str, Any]:
    kw = RunKwargs(out=str(out), device="cpu")
    execute(specs[0], RunKwargs(out=str(out / "warmup"), device="cpu"))
    t0 = time.perf_counter()
    overhead, own = [], []
    for spec in specs:
        t = time.perf_counter()
        res = execute(spec, kw)
        overhead.append(time.perf_counter() - t - res.seconds)
        own.append(res.seconds)
    return {"wall_s": time.perf_counter() - t0, "own_s": own, "overhead_s": overhead, "startup_s": 0.0}


def isolated(specs: list, out: Path) -> dict[str, Any]:
    starts: dict[str, float] = {}
    overhead, own = [], []
    first: list[float] = []

    def on_event(ev: Any) -> None:
        now = time.perf_counter()
        if ev.kind == "start":
            starts[ev.spec.run_id] = now
        elif ev.kind == "done" and ev.result is not None:
            own.append(ev.result.seconds)
            overhead.append(now - starts[ev.spec.run_id] - ev.result.seconds)

    # warm-up sweep of one spec in its own worker (its compile and start-up are not timed below)
    run_sweep(specs[:1], out=out / "warmup", device="cpu")
    t0 = time.perf_counter()
    summary = run_sweep(specs, out=out, device="cpu", progress=on_event)
    wall = time.perf_counter() - t0
    assert summary.ok == len(specs), summary.runs
    first.append(overhead[0])
    # the first run's overhead holds the worker's start (spawn + imports + the first numba compile)
    return {"wall_s": wall, "own_s": own, "overhead_s": overhead[1:], "startup_s": first[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    specs = make_specs(args.runs)
    tmp = Path(tempfile.mkdtemp(prefix="nrchbench-isolation-"))
    try:
        rows = {"in-process": in_process(specs, tmp / "a"), "isolated (--jobs 1)": isolated(specs, tmp / "b")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = Table(title=f"{len(specs)} tiny runs, one after another")
    for col in ("mode", "wall s", "runs' own s", "worker start s", "overhead/run ms (median)", "max ms"):
        table.add_column(col, justify="right")
    out = {}
    for name, r in rows.items():
        med = statistics.median(r["overhead_s"]) * 1e3
        table.add_row(
            name,
            f"{r['wall_s']:.2f}",
            f"{sum(r['own_s']):.2f}",
            f"{r['startup_s']:.2f}",
            f"{med:.1f}",
            f"{max(r['overhead_s']) * 1e3:.1f}",
        )
        out[name] = {**r, "overhead_ms_median": med}
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
