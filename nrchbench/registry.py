"""One registry type, used for datasets, noise models and methods.

Registration is by decorator (``@METHODS.register("nrch")``) or through an entry-point
group (``nrchbench.methods``, ``nrchbench.datasets``, ``nrchbench.noise``). The built-ins
are declared in ``pyproject.toml`` exactly as a third-party plugin would declare its own,
and their modules also use the decorator; registering the *same* object twice under the
same name is a no-op.

A name belongs to whoever declared it first — an entry point counts from the moment it is
discovered, imported or not. Registering a *different* object under a taken name is an
error (one line: whose the name is, who claims it), so a plugin can never silently replace
a built-in or another plugin. Replacing one on purpose is explicit::

    @METHODS.register("nrch", override=True)   # logged as a warning; ``nrchbench list`` shows it
    class MyNRCH(HashingMethod): ...

An overridden entry point is never imported afterwards, and its own module's registration
(if something imports that module anyway) leaves the override in place.

Entry points are discovered lazily: nothing is imported until a name is looked up or the
whole registry is listed, so a broken plugin never breaks ``nrchbench --help``. A plugin
that fails to import is reported with a warning and left out.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nrchbench.errors import RegistryError

log = logging.getLogger(__name__)

T = TypeVar("T")


class PluginImportWarning(UserWarning):
    """A plugin declared through an entry point could not be imported."""


@dataclass
class _Entry:
    name: str
    obj: Any = None
    entry_point: md.EntryPoint | None = None
    description: str = ""
    source: str = "decorator"  # "decorator", "entry point <dist>", "plugin file"

    @property
    def loaded(self) -> bool:
        return self.obj is not None


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry(Generic[T]):
    """A named collection of plugins of one kind.

    Args:
        kind: Human name of the things registered ("dataset", "noise model", "method").
        group: Entry-point group scanned for third-party plugins.
        aliases: Built-in alias → canonical name map (e.g. ``{"flickr": "mirflickr"}``).
    """

    def __init__(self, kind: str, group: str, aliases: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, _Entry] = {}
        self._aliases: dict[str, str] = dict(aliases or {})
        self._discovered = False
        self._broken: dict[str, str] = {}
        self._overridden: dict[str, md.EntryPoint] = {}  # name -> the entry point an override replaced
        self._loading: str | None = None  # the entry point being imported now

    # ------------------------------------------------------------------ registration
    def register(
        self,
        name: str | None = None,
        obj: T | None = None,
        *,
        aliases: tuple[str, ...] | list[str] = (),
        description: str | None = None,
        override: bool = False,
    ) -> Any:
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``.

        Args:
            override: replace what is registered under ``name`` (a built-in included), with
                a warning in the log. Without it a taken name is an error.

        Raises:
            RegistryError: if ``name`` (or an alias) is taken by a different object.
        """

        def deco(o: T) -> T:
            key = name or getattr(o, "name", None) or getattr(o, "__name__", None)
            if not key:
                raise RegistryError(f"cannot register {o!r} as a {self.kind}: no name given")
            self._add(str(key), o, description, tuple(aliases), override)
            return o

        if obj is not None:
            return deco(obj)
        return deco

    def _add(self, key: str, o: Any, description: str | None, aliases: tuple[str, ...], override: bool = False) -> None:
        key = key.lower()
        self.discover()  # entry points own their names from the start, imported or not
        existing = self._entries.get(key)
        desc = (
            description
            if description is not None
            else _first_line(getattr(o, "description", None) or getattr(o, "__doc__", None))
        )
        if existing is not None and existing.obj is not o:
            if key in self._overridden and _declares(self._overridden[key], o):
                return  # the overridden original registering itself: the override stays
            if not override and existing.obj is None and existing.entry_point is not None:
                if self._loading == key or _declares(existing.entry_point, o):
                    # A lazy entry point whose module is registering itself now.
                    existing.obj = o
                    existing.description = desc or existing.description
                    for a in aliases:
                        self.add_alias(a, key)
                    return
            if not override:
                owner = _describe(existing.obj) if existing.obj is not None else existing.entry_point.value  # type: ignore[union-attr]
                raise RegistryError(
                    f"duplicate {self.kind} name {key!r}: already registered by {owner} ({existing.source}), "
                    f"now claimed by {_describe(o)}; rename one of them, or register with override=True "
                    "to replace it on purpose"
                )
            replaced = _describe(existing.obj) if existing.obj is not None else existing.entry_point.value  # type: ignore[union-attr]
            if existing.entry_point is not None:
                self._overridden[key] = existing.entry_point
            log.warning("%s %r: %s replaces %s (override=True)", self.kind, key, _describe(o), replaced)
            self._entries[key] = _Entry(key, o, None, desc, f"override of {replaced}")
        elif existing is None:
            if key in self._aliases:
                raise RegistryError(
                    f"{self.kind} name {key!r} is already an alias of {self._aliases[key]!r}; choose another name"
                )
            self._entries[key] = _Entry(key, o, None, desc)
        for a in aliases:
            self.add_alias(a, key)

    def add_alias(self, alias: str, target: str) -> None:
        """Make ``alias`` resolve to ``target``; raises if the alias is taken."""
        alias, target = alias.lower(), target.lower()
        if alias in self._entries and alias != target:
            raise RegistryError(f"{self.kind} alias {alias!r} clashes with a registered name")
        prev = self._aliases.get(alias)
        if prev is not None and prev != target:
            raise RegistryError(f"{self.kind} alias {alias!r} already points to {prev!r}")
        self._aliases[alias] = target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests and by plugin reloading); an override is undone,
        giving the name back to the entry point it replaced."""
        key = name.lower()
        self._entries.pop(key, None)
        ep = self._overridden.pop(key, None)
        if ep is not None:
            dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
            self._entries[key] = _Entry(key, None, ep, "", f"entry point of {dist}")

    # ------------------------------------------------------------------ discovery
    def discover(self) -> None:
        """Read the entry-point group once (cheap: imports nothing)."""
        if self._discovered:
            return
        self._discovered = True
        seen: dict[str, str] = {}
        for ep in md.entry_points(group=self.group):
            key = ep.name.lower()
            if key in seen and seen[key] != ep.value:
                raise RegistryError(
                    f"duplicate {self.kind} name {key!r} in entry-point group {self.group!r}: "
                    f"{seen[key]} and {ep.value}; uninstall or rename one of them"
                )
            seen[key] = ep.value
            if key in self._entries:
                continue
            dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
            self._entries[key] = _Entry(key, None, ep, "", f"entry point of {dist}")

    def _load(self, entry: _Entry) -> bool:
        if entry.loaded:
            return True
        assert entry.entry_point is not None
        self._loading = entry.name
        try:
            obj = entry.entry_point.load()
        except Exception as exc:  # a broken plugin must never break the CLI
            msg = f"{type(exc).__name__}: {exc}"
            self._broken[entry.name] = msg
            self._entries.pop(entry.name, None)
            warnings.warn(
                f"{self.kind} plugin {entry.name!r} ({entry.entry_point.value}) failed to import and is skipped: {msg}",
                PluginImportWarning,
                stacklevel=3,
            )
            return False
        finally:
            self._loading = None
        if entry.name in self._entries and not self._entries[entry.name].loaded:
            self._entries[entry.name].obj = obj
            self._entries[entry.name].description = _first_line(
                getattr(obj, "description", None) or getattr(obj, "__doc__", None)
            )
        return True

    def load_all(self) -> None:
        """Import every discovered plugin (failures warn and are skipped)."""
        self.discover()
        for entry in list(self._entries.values()):
            self._load(entry)

    # ------------------------------------------------------------------ lookup
    def canonical(self, name: str) -> str:
        """Resolve aliases and case; raise a helpful error for unknown names."""
        self.discover()
        key = str(name).lower().strip()
        key = self._aliases.get(key, key)
        if key in self._entries:
            return key
        # Aliases may be declared by plugin modules: import everything and retry.
        self.load_all()
        key = self._aliases.get(key, key)
        if key in self._entries:
            return key
        if key in self._broken:
            raise RegistryError(f"{self.kind} {name!r} is installed but failed to import: {self._broken[key]}")
        choices = sorted(set(self._entries) | set(self._aliases))
        close = difflib.get_close_matches(key, choices, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise RegistryError(f"unknown {self.kind} {name!r}; {hint}available: {', '.join(sorted(self._entries))}")

    def get(self, name: str) -> T:
        """Return the object registered under ``name`` (or an alias of it)."""
        key = self.canonical(name)
        entry = self._entries[key]
        if not self._load(entry):
            raise RegistryError(f"{self.kind} {name!r} failed to import: {self._broken[key]}")
        return entry.obj

    def names(self) -> list[str]:
        """All canonical names (imports nothing)."""
        self.discover()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, object) for every plugin that imports."""
        self.load_all()
        for key in sorted(self._entries):
            yield key, self._entries[key].obj

    def describe(self) -> list[dict[str, str]]:
        """Rows for ``nrchbench list``: name, aliases, description, source.

        An entry point not imported yet is described from its source
        (:func:`nrchbench.plugin_meta.static_info`) and imported only when that cannot tell."""
        from nrchbench.plugin_meta import static_info

        self.discover()
        group = {k for k, e in self._entries.items() if e.entry_point is not None}
        for entry in list(self._entries.values()):
            if entry.loaded:
                continue
            info = static_info(entry.entry_point.value, self.kind, group, entry.name)  # type: ignore[union-attr]
            if info is None:
                self._load(entry)
                continue
            entry.description = _first_line(info["description"])
            for a in info["aliases"]:
                self.add_alias(a, entry.name)
        rows = []
        for key in sorted(self._entries):
            e = self._entries[key]
            rows.append(
                {
                    "name": key,
                    "aliases": ", ".join(sorted(a for a, t in self._aliases.items() if t == key)),
                    "description": e.description,
                    "source": e.source,
                }
            )
        return rows

    def cached_value(self, name: str, field: str, compute: Callable[[Any], Any]) -> Any:
        """``compute(obj)`` for the plugin registered under ``name``, kept across processes
        (:func:`nrchbench.plugin_meta.cached`) while its source is unchanged, so that reading it
        again does not import the plugin (and torch); the value must be JSON."""
        from nrchbench.plugin_meta import cached

        entry = self._entries[self.canonical(name)]
        if entry.entry_point is None:  # a decorator or --plugin registration: imported already
            return compute(self.get(name))
        return cached(entry.entry_point.value, field, lambda: compute(self.get(name)))

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        try:
            self.canonical(str(name))
        except RegistryError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, names={self.names()})"


def _declares(ep: md.EntryPoint, o: Any) -> bool:
    """Whether ``o`` is (or comes from the package of) what the entry point ``ep`` points at."""
    ep_module = ep.value.split(":", 1)[0].strip()
    module = str(getattr(o, "__module__", "") or "")
    if f"{module}:{getattr(o, '__qualname__', '')}" == ep.value.replace(" ", ""):
        return True
    return bool(module) and module.split(".")[0] == ep_module.split(".")[0]


def _describe(o: Any) -> str:
    mod = getattr(o, "__module__", None)
    qn = getattr(o, "__qualname__", None)
    return f"{mod}.{qn}" if mod and qn else repr(o)


Factory = Callable[..., Any]

DATASETS: Registry[Any] = Registry(
    "dataset",
    "nrchbench.datasets",
    aliases={
        "flickr": "mirflickr",
        "mirflickr25k": "mirflickr",
        "mir-flickr": "mirflickr",
        "nus-wide": "nuswide",
        "nus": "nuswide",
        "ms-coco": "coco",
        "mscoco": "coco",
        "iapr-tc12": "iapr",
        "iaprtc12": "iapr",
        "wikipedia": "wiki",
    },
)
NOISE: Registry[Any] = Registry("noise model", "nrchbench.noise", aliases={"nrch": "one-swap"})
METHODS: Registry[Any] = Registry("method", "nrchbench.methods")
STRATEGIES: Registry[Any] = Registry("strategy", "nrchbench.strategies")
