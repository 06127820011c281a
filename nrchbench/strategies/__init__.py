"""Noise-robust training strategies: an axis of the grid, combinable with supervised methods.

``none`` is the base method as it is (the default: every run id without a strategy is
unchanged). Strategies are registered in :data:`nrchbench.registry.STRATEGIES` and discovered
through the ``nrchbench.strategies`` entry-point group, like every other plugin kind.
"""

from __future__ import annotations

from typing import Any

from nrchbench.errors import ConfigError
from nrchbench.registry import STRATEGIES

__all__ = ["STRATEGIES", "check_strategy"]


def check_strategy(method_cls: Any, method: str, name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The canonical strategy name and its validated parameters for ``method``.

    Raises:
        RegistryError: unknown strategy. ConfigError: parameters of ``none``, bad parameters,
            or a method that cannot take the strategy.
    """
    key = str(name).strip().lower()
    if key == "none":
        if params:
            raise ConfigError(f"--strategy none takes no parameters, got {', '.join(sorted(params))}")
        return "none", {}
    key = STRATEGIES.canonical(key)
    strategy = STRATEGIES.get(key)
    return key, strategy.check(method_cls, method, params)
