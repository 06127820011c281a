"""Grids of run specs (for sweeps) and sweep files.

A grid is methods × datasets × bits × noise models × noise rates × seeds × strategies, plus
options shared by every spec; :func:`expand_grid` resolves each point with
:func:`nrchbench.spec.resolve_spec` (so every error surfaces before anything runs) and keeps
one spec per run id (a noise-invariant method runs once for all noise levels).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nrchbench.errors import ConfigError
from nrchbench.spec import RunSpec, resolve_spec

log = logging.getLogger(__name__)

__all__ = ["GRID_AXES", "SPEC_OPTIONS", "expand_grid", "load_sweep_file", "specs_from_config", "split_params"]

#: The grid's axes (sweep option / sweep-file key names).
GRID_AXES = ("methods", "datasets", "bits", "noise_models", "noise", "seeds", "strategies")
#: Options shared by every spec of a grid.
SPEC_OPTIONS = (
    "noise_params",
    "preset",
    "params",
    "split",
    "split_seed",
    "val_size",
    "dataset_options",
    "feature_transform",
    "strategy_params",
    "selection",
    "val_every",
    "zero_relevant",
    "device",
)
#: Singular spellings accepted in sweep files.
_ALIASES = {
    "method": "methods",
    "dataset": "datasets",
    "seed": "seeds",
    "noise_model": "noise_models",
    "strategy": "strategies",
    "plugin": "plugins",
    "param": "params",
    "results": "out",  # the CLI's --results
}


def _as_list(value: Any, cast: Any, what: str) -> list[Any]:
    """A comma string, a scalar or a list → a list of ``cast`` values."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = []
        for v in value:
            items.extend(_as_list(v, lambda x: x, what) if isinstance(v, str) else [v])
    else:
        items = [value]
    try:
        return [cast(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: could not read {value!r} as a list of {getattr(cast, '__name__', cast)}") from None


def _int(v: Any) -> int:
    f = float(v)
    if f != int(f):
        raise ValueError(v)
    return int(f)


def split_params(params: Mapping[str, Any] | None, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Per-method overrides from a sweep's ``params``.

    ``key=value`` applies to every method that has parameter ``key`` (an error if none has
    it); ``method.key=value`` applies to that method only. In a sweep file a nested table
    ``[params.<method>]`` is the same as ``method.key``.
    """
    from nrchbench.methods import get_method_class
    from nrchbench.registry import METHODS

    out: dict[str, dict[str, Any]] = {m: {} for m in methods}
    classes = {m: get_method_class(m) for m in methods}
    canon = {m: METHODS.canonical(m) for m in methods}
    flat: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k2}": v2 for k2, v2 in value.items()})
        else:
            flat[str(key)] = value
    for key, value in flat.items():
        if "." in key:
            mname, pname = key.split(".", 1)
            targets = [m for m in methods if canon[m] == METHODS.canonical(mname)]
            if not targets:
                raise ConfigError(f"parameter {key!r}: method {mname!r} is not in this sweep ({', '.join(methods)})")
            for m in targets:
                out[m][pname] = value
            continue
        targets = [m for m in methods if key in classes[m].defaults]
        if not targets:
            raise ConfigError(
                f"parameter {key!r} is not a parameter of any method in this sweep ({', '.join(methods)}); "
                "use method.key=value for one method"
            )
        for m in targets:
            out[m].setdefault(key, value)
    return out


def expand_grid(
    methods: Any,
    datasets: Any = ("synthetic",),
    bits: Any = (64,),
    noise: Any = (0.8,),
    seeds: Any = (0,),
    *,
    noise_models: Any = ("one-swap",),
    strategies: Any = ("none",),
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> list[RunSpec]:
    """The resolved specs of a grid, one per run id, in grid order.

    Args:
        methods, datasets, bits, noise, seeds, noise_models, strategies: the axes (lists or
            comma strings).
        params: method parameters (see :func:`split_params`).
        **options: the other :func:`~nrchbench.spec.resolve_spec` arguments, shared by every spec.

    Raises:
        ConfigError: an empty axis, an unknown option, or anything a spec cannot resolve.
        RegistryError: an unknown method, dataset, noise model or strategy.

    A (method, strategy) pair the method cannot take (an unsupervised method with a
    strategy) is left out with a warning in the log; the grid fails only if nothing is left.
    """
    unknown = sorted(set(options) - set(SPEC_OPTIONS))
    if unknown:
        raise ConfigError(f"sweep: unknown option(s) {', '.join(unknown)}; expected some of {', '.join(SPEC_OPTIONS)}")
    axes = {
        "methods": _as_list(methods, str, "methods"),
        "datasets": _as_list(datasets, str, "datasets"),
        "bits": _as_list(bits, _int, "bits"),
        "noise_models": _as_list(noise_models, str, "noise models"),
        "noise": _as_list(noise, float, "noise"),
        "seeds": _as_list(seeds, _int, "seeds"),
        "strategies": _as_list(strategies, str, "strategies"),
    }
    for what, values in axes.items():
        if not values:
            raise ConfigError(f"sweep: {what} is empty; give at least one value")
    from nrchbench.methods import get_method_class
    from nrchbench.strategies import check_strategy

    per_method = split_params(params, axes["methods"])
    specs: dict[str, RunSpec] = {}
    refused: list[str] = []
    for m in axes["methods"]:
        for st in axes["strategies"]:
            try:
                check_strategy(get_method_class(m), m, st, dict(options.get("strategy_params") or {}))
            except ConfigError as exc:
                if st == "none":
                    raise
                refused.append(f"{m} + {st}: {exc}")
                log.warning("sweep: %s + %s left out: %s", m, st, exc)
                continue
            for d in axes["datasets"]:
                for b in axes["bits"]:
                    for nm in axes["noise_models"]:
                        for r in axes["noise"]:
                            for s in axes["seeds"]:
                                rs = resolve_spec(m, d, b, nm, r, seed=s, strategy=st, params=per_method[m], **options)
                                specs.setdefault(rs.run_id, rs)
    if not specs:
        raise ConfigError("sweep: no runnable spec in this grid: " + "; ".join(refused))
    return list(specs.values())


def load_sweep_file(path: str | Path, extra_keys: Iterable[str] = ()) -> dict[str, Any]:
    """Read a sweep file (``.toml`` via tomllib, ``.yaml``/``.yml`` via PyYAML).

    The keys are the grid axes, the spec options and ``plugins``, plus ``extra_keys`` (the
    caller's own options, e.g. the CLI's ``out``, ``jobs``, backend options); ``-`` and
    ``_`` are the same and singular spellings (``method``) are accepted. Lists may be arrays
    or comma strings; ``params`` is a table (``key = value`` for every method that has it,
    ``[params.<method>]`` for one). Nothing is imported here: ``plugins`` are only named.

    Raises:
        ConfigError: the file is missing, unreadable, or has unknown keys.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file {str(p)!r} does not exist")
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        elif p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(p.read_text()) or {}
        else:
            raise ConfigError(f"sweep file {str(p)!r}: expected a .toml, .yaml or .yml file")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"sweep file {str(p)!r} could not be parsed: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"sweep file {str(p)!r}: expected a table of options at the top level")
    allowed = {*GRID_AXES, *SPEC_OPTIONS, "plugins", *(k.replace("-", "_") for k in extra_keys)}
    cfg: dict[str, Any] = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        k = _ALIASES.get(k, k)
        if k not in allowed:
            raise ConfigError(
                f"sweep file {str(p)!r}: unknown key {key!r}; expected some of {', '.join(sorted(allowed))}"
            )
        cfg[k] = value
    return cfg


def specs_from_config(cfg: Mapping[str, Any]) -> list[RunSpec]:
    """Expand a sweep configuration (grid axes and spec options; other keys ignored) into specs."""
    if not cfg.get("methods"):
        raise ConfigError("sweep: no methods given (--method or `method` in the sweep file)")
    axes = {k: cfg[k] for k in GRID_AXES if cfg.get(k) is not None}
    options = {k: cfg[k] for k in SPEC_OPTIONS if cfg.get(k) is not None}
    return expand_grid(axes.pop("methods"), **axes, **options)
