"""What a registry can know about an entry point without importing it.

``nrchbench list`` and the report need a plugin's one-line description, its aliases and (for
methods) its default hyper-parameters. Importing a method module imports torch and
scikit-learn — seconds — so these are read another way:

* :func:`static_info` reads the description and aliases from the module's source (``ast``,
  nothing executed): the class's ``description = "..."`` or its docstring, and the literal
  ``REGISTRY.register("name", aliases=(...))`` / ``add_alias`` calls of the module and of the
  packages above it. Whenever the source leaves a doubt (a computed description, a
  registration it cannot read, a base class from outside nrchbench that might carry a
  description), it returns None and the caller imports the module as before.
* :func:`cached` keeps values that only an import can give (a method's defaults) in a JSON
  file under ``$NRCHBENCH_CACHE_DIR`` (default ``~/.cache/nrchbench``), keyed by the entry
  point and a fingerprint of its package's source files (path, size, mtime of every ``.py``),
  so an edited plugin is imported again. A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The variable names under which the built-in registries are conventionally imported.
REGISTRY_NAMES = {"dataset": "DATASETS", "noise model": "NOISE", "method": "METHODS", "strategy": "STRATEGIES"}
_CACHE_VERSION = 1
#: nrchbench's plugin base classes: each declares ``description = ""`` (tests/test_startup.py checks).
_EMPTY_BASES = ("HashingMethod", "NoiseModel", "SampleNoiseModel", "DatasetLoader", "Strategy", "Params")


def module_files(module: str) -> list[Path] | None:
    """The source files importing ``module`` executes: its ``__init__.py`` parents, then itself.

    Found with the import system's finders, importing nothing (not even the parents)."""
    parts = module.split(".")
    files: list[Path] = []
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts) + 1):
            if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
                return None
            files.append(Path(spec.origin))
            if i == len(parts):
                break
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), spec.submodule_search_locations)
    except (ImportError, ValueError, AttributeError):
        return None
    return files


def _literal(node: ast.AST | None) -> Any:
    return ast.literal_eval(node) if node is not None else None


def _registrations(tree: ast.Module, var: str) -> tuple[dict[str, set[str]], bool]:
    """``{name: aliases}`` registered on the registry ``var`` in ``tree``, and whether every
    ``register``/``add_alias`` call there could be read."""
    regs: dict[str, set[str]] = {}
    others = set(REGISTRY_NAMES.values()) - {var}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("register", "add_alias"):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id in others:
            continue  # another registry's business
        if not (isinstance(owner, ast.Name) and owner.id == var):
            return regs, False
        try:
            args = [_literal(a) for a in node.args[:1]]
            kw = {k.arg: _literal(k.value) for k in node.keywords if k.arg in ("aliases", "override")}
            if any(k.arg not in ("aliases", "override") for k in node.keywords):
                return regs, False  # e.g. description=...: only the import knows
            if node.func.attr == "add_alias":
                alias, target = (_literal(a) for a in node.args[:2])
                regs.setdefault(str(target).lower(), set()).add(str(alias).lower())
                continue
        except (ValueError, TypeError, SyntaxError):
            return regs, False
        if not args or not isinstance(args[0], str) or kw.get("override"):
            return regs, False
        regs.setdefault(args[0].lower(), set()).update(str(a).lower() for a in kw.get("aliases") or ())
    return regs, True


def _class_description(tree: ast.Module, name: str, seen: frozenset[str] = frozenset()) -> tuple[bool, str | None]:
    """(found, ``description`` attribute) of class ``name``, following bases in the module;
    found False = undecidable from the source."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    imported = {a.asname or a.name: n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    cls = classes.get(name)
    if cls is None or name in seen:
        return False, None
    for stmt in cls.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None
        target = stmt.target if isinstance(stmt, ast.AnnAssign) else target
        if isinstance(target, ast.Name) and target.id == "description":
            value = stmt.value
            return (
                (True, value.value)
                if isinstance(value, ast.Constant) and isinstance(value.value, str)
                else (False, None)
            )
    for base in cls.bases:
        if not isinstance(base, ast.Name):
            return False, None
        if base.id in classes:
            found, desc = _class_description(tree, base.id, seen | {name})
            if not found:
                return False, None
            if desc:
                return True, desc
        elif base.id == "object":
            continue
        elif base.id not in _EMPTY_BASES or not imported.get(base.id, "").startswith("nrchbench"):
            return False, None  # a base from elsewhere may carry a description: ask the import
    return True, None


def static_info(value: str, kind: str, group_names: set[str], name: str) -> dict[str, Any] | None:
    """``{"description", "aliases"}`` of the entry point ``value`` (``module:Class``) registered
    as ``name``, read from source; None when only an import can tell."""
    module, _, attr = value.partition(":")
    attr = attr.strip()
    files = module_files(module.strip())
    var = REGISTRY_NAMES.get(kind)
    if not files or not attr or "." in attr or var is None:
        return None
    aliases: set[str] = set()
    tree = None
    try:
        for path in files:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            regs, readable = _registrations(tree, var)
            if not readable or set(regs) - group_names:
                return None  # an unreadable call, or a name that only an import registers
            aliases |= regs.get(name, set())
    except (OSError, SyntaxError, ValueError):
        return None
    assert tree is not None
    found, desc = _class_description(tree, attr)
    if not found:
        return None
    if not desc:
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == attr)
        desc = ast.get_docstring(cls) or ""
    return {"description": desc, "aliases": sorted(aliases)}


def fingerprint(module: str) -> str | None:
    """Size and mtime of every ``.py`` of the top-level package of ``module`` (or of the
    module itself when it is a single file), hashed; None when it cannot be located."""
    files = module_files(module)
    if not files:
        return None
    top = files[0]
    paths = sorted(top.parent.rglob("*.py")) if top.name == "__init__.py" else [top]
    h = hashlib.sha256()
    try:
        for p in paths:
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return h.hexdigest()[:20]


def _cache_path() -> Path:
    root = os.environ.get("NRCHBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nrchbench"
    )
    return Path(root) / "plugin_meta.json"


def cached(value: str, field: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` (which imports the entry point ``value``), cached across processes under
    the fingerprint of its source; the value must be JSON."""
    fp = fingerprint(value.partition(":")[0].strip())
    if fp is None:
        return compute()
    key = f"{value.strip()}|{field}|{fp}"
    path = _cache_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") == _CACHE_VERSION and key in data["entries"]:
            return data["entries"][key]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        data = None
    result = json.loads(json.dumps(compute()))
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        data = {"version": _CACHE_VERSION, "entries": {}}
    prefix = f"{value.strip()}|{field}|"
    data["entries"] = {k: v for k, v in data["entries"].items() if not k.startswith(prefix)}
    data["entries"][key] = result
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError) as exc:
        log.debug("plugin metadata cache %s not written: %s", path, exc)
    return result
