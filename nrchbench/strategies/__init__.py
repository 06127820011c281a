"""Noise-robust training strategies: an axis of the grid, combinable with supervised methods.

``none`` is the base method as it is (the default: every run id without a strategy is
unchanged). Strategies are registered in :data:`nrchbench.registry.STRATEGIES` and discovered
through the ``nrchbench.strategies`` entry-point group, like every other plugin kind:

* ``gmm-select`` — DivideMix's GMM division of the base's per-sample loss (selection);
* ``coteaching`` — two copies of the base exchanging small-loss samples per batch (selection);
* ``gce``, ``sce`` — robust losses on a label head of the codes;
* ``elr`` — early-learning regularisation on a label head of the codes.

A strategy wraps a method that declares ``supports_strategies`` (see
:mod:`nrchbench.methods.base`); :func:`check_strategy` refuses every other pairing in one line
at resolve time, and :func:`wrap_strategy` is what the runner calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrchbench.errors import ConfigError
from nrchbench.registry import STRATEGIES
from nrchbench.strategies.base import NoStrategy, Strategy, StrategyContext, refusal
from nrchbench.strategies.label_head import ELR, GCE, SCE
from nrchbench.strategies.selection import CoTeaching, GMMSelect

__all__ = [
    "ELR",
    "GCE",
    "SCE",
    "STRATEGIES",
    "CoTeaching",
    "GMMSelect",
    "NoStrategy",
    "Strategy",
    "StrategyContext",
    "check_strategy",
    "refusal",
    "strategy_params_for",
    "wrap_strategy",
]

STRATEGIES.register("none", NoStrategy)


def strategy_params_for(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of strategy ``name`` among ``params``: keys ``<strategy>.<param>`` go to
    that strategy only (so one sweep can set several strategies' parameters), plain keys to
    every strategy.

    Raises:
        RegistryError: a prefix that names no strategy.
    """
    own: dict[str, Any] = {}
    for key, value in params.items():
        prefix, dot, rest = str(key).partition(".")
        if not dot:
            own[key] = value
        elif STRATEGIES.canonical(prefix) == name:
            own[rest] = value
    return own


def check_strategy(method_cls: Any, method: str, name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The canonical strategy name and its validated parameters (all of them, defaults filled
    in: they are part of the run id) for ``method``.

    Raises:
        RegistryError: unknown strategy. ConfigError: parameters of ``none``, bad parameters,
            or a method that cannot take the strategy (one line saying why).
    """
    key = str(name).strip().lower()
    key = "none" if key == "none" else STRATEGIES.canonical(key)
    own = strategy_params_for(key, params)
    if key == "none":
        if own:
            raise ConfigError(
                f"--strategy none takes no parameters, got {', '.join(sorted(own))} "
                "(in a sweep, prefix a strategy's parameters with its name, e.g. gmm-select.warmup=5)"
            )
        return "none", {}
    return key, STRATEGIES.get(key).check(method_cls, method, own)


def wrap_strategy(spec: Any, method: Any) -> Any:
    """The method the runner trains: ``method`` itself for ``none``, else the spec's strategy
    wrapped around it (with the spec's nominal noise rate in its :class:`StrategyContext`)."""
    if spec.strategy == "none":
        return method
    cls = STRATEGIES.get(spec.strategy)
    return cls(method, dict(spec.strategy_params), StrategyContext(noise_rate=spec.noise_rate))
