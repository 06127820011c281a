"""The one registry type: decorator, entry points, aliases, duplicates, unknown names."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import warnings

import pytest

from nrchbench.errors import RegistryError
from nrchbench.registry import DATASETS, METHODS, NOISE, PluginImportWarning, Registry


def test_decorator_and_lookup():
    reg = Registry("thing", "nrchbench.test-none")

    @reg.register("alpha", aliases=("a",))
    class Alpha:
        """An alpha thing.

        More text."""

    assert reg.get("alpha") is Alpha
    assert reg.get("A") is Alpha  # alias, case-insensitive
    assert reg.names() == ["alpha"]
    assert reg.describe()[0]["description"] == "An alpha thing."
    assert reg.describe()[0]["aliases"] == "a"


def test_same_object_twice_is_noop_different_object_raises():
    reg = Registry("thing", "nrchbench.test-none")

    class A:
        pass

    class B:
        pass

    reg.register("x", A)
    reg.register("x", A)
    with pytest.raises(RegistryError, match="duplicate thing name 'x'"):
        reg.register("x", B)


def test_unknown_name_suggests_closest_and_lists_all():
    reg = Registry("method", "nrchbench.test-none")
    for n in ("nrch", "nrch-nogmm", "dcmh"):
        reg.register(n, type(n, (), {}))
    with pytest.raises(RegistryError) as exc:
        reg.get("nrhc")
    msg = str(exc.value)
    assert "did you mean 'nrch'" in msg
    assert "available: dcmh, nrch, nrch-nogmm" in msg
    assert "\n" not in msg


def test_alias_clash_raises():
    reg = Registry("thing", "nrchbench.test-none", aliases={"b": "a"})
    reg.register("a", object())
    with pytest.raises(RegistryError):
        reg.add_alias("b", "c")


def _fake_ep(name: str, value: str, group: str) -> md.EntryPoint:
    return md.EntryPoint(name=name, value=value, group=group)


def test_entry_point_lazy_load_and_broken_plugin_warns(monkeypatch):
    group = "nrchbench.test-group"
    eps = [
        _fake_ep("good", "collections:OrderedDict", group),
        _fake_ep("broken", "nrchbench_no_such_module_xyz:Thing", group),
    ]
    monkeypatch.setattr(md, "entry_points", lambda group=None: [e for e in eps if e.group == group])
    reg = Registry("method", group)
    assert reg.names() == ["broken", "good"]  # discovery imports nothing
    import collections

    assert reg.get("good") is collections.OrderedDict
    with pytest.warns(PluginImportWarning, match="broken"):
        names = [n for n, _ in reg.items()]
    assert names == ["good"]
    with pytest.raises(RegistryError, match="failed to import"):
        reg.get("broken")


def test_conflicting_entry_points_raise(monkeypatch):
    group = "nrchbench.test-dup"
    eps = [_fake_ep("x", "collections:OrderedDict", group), _fake_ep("x", "collections:Counter", group)]
    monkeypatch.setattr(md, "entry_points", lambda group=None: [e for e in eps if e.group == group])
    with pytest.raises(RegistryError, match="duplicate"):
        Registry("method", group).names()


def test_builtin_aliases():
    assert DATASETS.canonical("flickr") == "mirflickr"
    assert DATASETS.canonical("nus-wide") == "nuswide"
    assert DATASETS.canonical("ms-coco") == "coco"
    assert DATASETS.canonical("iapr-tc12") == "iapr"
    assert DATASETS.canonical("wikipedia") == "wiki"


def test_builtins_declared_as_entry_points():
    """Built-ins are declared exactly as third-party plugins are."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginImportWarning)
        assert {"nrch", "nrch-nogmm", "nrch-nodns", "dcmh", "djsrh"} <= set(METHODS.names())
        assert {"one-swap", "symmetric", "asymmetric", "bitflip"} <= set(NOISE.names())
        assert {"synthetic", "mirflickr", "nuswide", "iapr", "coco", "wiki", "generic", "nrch-h5"} <= set(
            DATASETS.names()
        )


def test_help_works_with_a_broken_plugin(tmp_path):
    """A plugin that fails to import never breaks `nrchbench --help`."""
    dist = tmp_path / "brokenplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nrchbench.methods]\nbroken = brokenplugin_missing:Broken\n")
    env_path = str(tmp_path)
    code = f"import sys; sys.path.insert(0, {env_path!r}); from nrchbench.cli import main; main(['--help'])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "run" in r.stdout
    code = (
        f"import sys; sys.path.insert(0, {env_path!r}); from nrchbench.registry import METHODS; print(METHODS.names())"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "broken" in r.stdout
