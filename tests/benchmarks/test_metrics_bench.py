"""pytest-benchmark for ``metrics.evaluate`` (skipped by default; run with ``--benchmark-only``).

Cases as in ``benchmarks/metrics_speed.py``: (a) MIRFlickr scale (2,000 × 18,015, 24 classes,
64 bits), ``map`` + ``map_tie`` alone and every default key, checked against the NRCH
per-query loop and the DCMH/DeepHash-style loop for the new keys on a subset of queries;
(b) NUS-WIDE scale (2,100 × 188,321, 21 classes, 128 bits), every default key.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nrchbench.metrics import evaluate

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "metrics_speed.py"
_spec = importlib.util.spec_from_file_location("metrics_speed", _SCRIPT)
speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speed)


@pytest.fixture(scope="module")
def mirflickr():
    return speed.make_data(2000, 18_015, 24, 64, 3.8)


@pytest.fixture(scope="module")
def nuswide():
    return speed.make_data(2100, 188_321, 21, 128, 2.4, seed=1)


@pytest.mark.parametrize("keys", ["map_only", "all"])
@pytest.mark.parametrize("backend", ["numba", "counting"])
def test_bench_mirflickr_scale(benchmark, mirflickr, backend, keys):
    options = {"backend": backend} | (speed.MAP_ONLY if keys == "map_only" else {})
    evaluate(*(x[:10] for x in mirflickr), **options)  # compile / load the kernel first
    res = benchmark.pedantic(evaluate, args=mirflickr, kwargs=options, rounds=3, iterations=1)
    q, ql = mirflickr[0][:200], mirflickr[2][:200]
    db, dl = mirflickr[1], mirflickr[3]
    sub = evaluate(q, db, ql, dl, backend=backend)
    assert sub["map"] == pytest.approx(speed.nrch_calc_map_k(q, db, ql, dl), abs=1e-6)
    if keys == "all":
        assert speed.max_abs_diff(sub, speed.loop_new_metrics(q, db, ql, dl)) < 1e-9
    assert 0 < res["chance"] < res["map"] <= 1


def test_bench_nuswide_scale(benchmark, nuswide):
    res = benchmark.pedantic(evaluate, args=nuswide, rounds=1, iterations=1)
    assert res["num_queries"] == 2100 and res["db_size"] == 188_321 and res["topk_curve"]["k"][-1] == 188_321
