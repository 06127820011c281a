"""Hashing methods: the registry, the interface and a factory.

Built-ins (``nrch``, ``nrch-nogmm``, ``nrch-nodns``, ``dcmh``, ``djsrh``) are declared in the
``nrchbench.methods`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

from typing import Any

from nrchbench.methods.base import PRESETS, EpochCallback, EpochLog, HashingMethod, Mixture, Rng, TrainData
from nrchbench.registry import METHODS

__all__ = [
    "METHODS",
    "PRESETS",
    "EpochCallback",
    "EpochLog",
    "HashingMethod",
    "Mixture",
    "Rng",
    "TrainData",
    "create_method",
    "get_method_class",
]


def get_method_class(name: str) -> type[HashingMethod]:
    """The class registered under ``name`` (aliases and plugins resolved)."""
    return METHODS.get(name)


def create_method(
    name: str, bits: int = 64, preset: str | None = None, *, dataset: str | None = None, **overrides: Any
) -> HashingMethod:
    """Create a method by registry name with a preset and parameter overrides.

    Args:
        name: registry key, e.g. ``"nrch"``.
        bits: code length.
        preset: ``"paper"``, ``"fast"``, ``"tiny"`` or None (the defaults = paper).
        dataset: apply the method's per-dataset defaults of this dataset (below the preset).
        **overrides: hyper-parameters that replace the preset's values.

    Raises:
        RegistryError: unknown method (with the closest names).
        ConfigError: unknown preset or parameter, or a bad value.
    """
    cls = get_method_class(name)
    _, params = cls.resolve_params(preset, overrides, dataset=dataset)
    return cls(bits=bits, **params)
