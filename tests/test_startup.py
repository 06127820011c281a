"""Start-up cost (issue 19 item 9): what ``list``, ``--help`` and ``table`` import, not how long
they take (timings live in benchmarks). torch, scikit-learn, numba, matplotlib, ray and
transformers stay out of the commands that only list or read records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nrchbench import registry

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "numba", "matplotlib", "ray", "transformers")

PROBE = """
import json, sys
from nrchbench.cli import main
try:
    main.main(args=sys.argv[1:], prog_name="nrchbench", standalone_mode=False)
except SystemExit:
    pass
print("\\nMODULES=" + json.dumps(sorted(m for m in sys.modules if "." not in m)))
"""


def _imports(args: list[str], tmp_path: Path) -> set[str]:
    env = {**os.environ, "NRCHBENCH_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["list", "methods"],
        ["table", "--help"],
        ["run", "--help"],
        ["sweep", "--help"],
        ["plot", "--help"],
        ["features", "extract", "--help"],
    ],
)
def test_listing_and_help_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    loaded = _imports(args, tmp_path)
    assert not loaded & set(HEAVY), f"nrchbench {' '.join(args)} imported {sorted(loaded & set(HEAVY))}"


def test_import_cli_is_light() -> None:
    res = subprocess.run(
        [sys.executable, "-c", "import sys, nrchbench.cli; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    loaded = {m.split(".")[0] for m in res.stdout.split()}
    assert not loaded & {*HEAVY, "pandas", "scipy", "numpy", "pydantic"}


def test_table_imports_no_torch_once_defaults_are_cached(tmp_path: Path) -> None:
    """The first table may import the methods once to learn their defaults; the next does not."""
    results = ROOT / "results" / "wiki-as-given"
    if not results.is_dir():
        pytest.skip("results/wiki-as-given is not in this checkout")
    args = ["table", "--results", str(results), "--dataset", "wiki"]
    _imports(args, tmp_path)  # fills the cache
    loaded = _imports(args, tmp_path)
    assert not loaded & set(HEAVY), f"nrchbench table imported {sorted(loaded & set(HEAVY))}"


@pytest.mark.parametrize("reg", [registry.DATASETS, registry.NOISE, registry.METHODS, registry.STRATEGIES])
def test_listing_from_source_equals_listing_after_import(reg: registry.Registry) -> None:
    """The rows read from the entry points' source are the rows their import gives."""
    static = registry.Registry(reg.kind, reg.group, aliases=reg.aliases())
    rows = static.describe()
    assert not any(e.loaded for e in static._entries.values()), "the static listing imported a plugin"
    assert rows, "no entry points: is nrchbench installed (pip install -e .)?"
    reg.load_all()  # the modules' decorators register into the global registry
    imported = {r["name"]: r for r in reg.describe()}
    assert [(r["name"], r["aliases"], r["description"]) for r in rows] == [
        (r["name"], imported[r["name"]]["aliases"], imported[r["name"]]["description"]) for r in rows
    ]


def test_method_defaults_cache_follows_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nrchbench import plugin_meta

    monkeypatch.setenv("NRCHBENCH_CACHE_DIR", str(tmp_path))
    calls = []
    value = "nrchbench.methods.dcmh:DCMH"

    def compute() -> dict:
        calls.append(1)
        return {"lr": 0.1, "sizes": (1, 2)}

    assert plugin_meta.cached(value, "defaults", compute) == {"lr": 0.1, "sizes": [1, 2]}
    assert plugin_meta.cached(value, "defaults", compute) == {"lr": 0.1, "sizes": [1, 2]}
    assert len(calls) == 1
    monkeypatch.setattr(plugin_meta, "fingerprint", lambda module: "edited")
    plugin_meta.cached(value, "defaults", compute)
    assert len(calls) == 2
    (tmp_path / "plugin_meta.json").write_text("not json")
    assert plugin_meta.cached(value, "defaults", compute)["lr"] == 0.1


def test_the_plugin_base_classes_have_no_description() -> None:
    """What ``plugin_meta`` assumes of the bases it does not read."""
    import importlib

    from nrchbench import plugin_meta

    where = {
        "HashingMethod": "nrchbench.methods.base",
        "NoiseModel": "nrchbench.noise.base",
        "SampleNoiseModel": "nrchbench.noise.base",
        "DatasetLoader": "nrchbench.datasets.base",
        "Strategy": "nrchbench.strategies.base",
        "Params": "nrchbench.params",
    }
    for name in plugin_meta._EMPTY_BASES:
        cls = getattr(importlib.import_module(where[name]), name)
        assert not getattr(cls, "description", ""), name
