"""Names for people: method identities and their labels, metric and direction names.

A *method identity* is what makes two leaderboard rows different configurations: the method's
registry name, its non-default parameters, and the training strategy with its parameters.
Rows, references and plot legends all match on it; the human label ("DCMH (standardize)") is
derived from it and only ever displayed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from nrchbench.errors import ConfigError, NrchbenchError
from nrchbench.jsonutil import canonical_json

__all__ = [
    "DIRECTION_NAMES",
    "config_slug",
    "dataset_name",
    "direction_name",
    "method_defaults",
    "method_label",
    "metric_label",
    "non_default",
    "non_default_strategy",
    "strategy_label",
]

DIRECTION_NAMES = {
    "i2t": "image→text",
    "t2i": "text→image",
    "avg": "mean of image→text and text→image",
}

_METRIC_LABELS = (
    (r"map", "mAP"),
    (r"map_tie", "tie-aware mAP"),
    (r"map@(\d+)", r"mAP@\1"),
    (r"precision@(\d+)", r"P@\1"),
    (r"recall@(\d+)", r"R@\1"),
    (r"hamming_precision@(\d+)", r"P (Hamming ≤ \1)"),
    (r"hamming_recall@(\d+)", r"R (Hamming ≤ \1)"),
)


def metric_label(metric: str) -> str:
    """``map`` → ``mAP``, ``map@50`` → ``mAP@50``, ``precision@100`` → ``P@100``; others unchanged."""
    for pattern, label in _METRIC_LABELS:
        if re.fullmatch(pattern, metric):
            return re.sub(pattern, label, metric)
    return metric


def direction_name(direction: str) -> str:
    return DIRECTION_NAMES.get(direction, direction)


def dataset_name(dataset: str) -> str:
    """A dataset given as a directory is shown by its folder name."""
    return Path(dataset).name if ("/" in dataset or "\\" in dataset) else dataset


@cache
def method_defaults(method: str) -> dict[str, Any] | None:
    """The registered method's default hyper-parameters, or None when it is not importable here.

    Kept across processes while the method's source is unchanged, so that a table does not
    import the method (and torch) every time."""
    from nrchbench.jsonutil import to_jsonable
    from nrchbench.registry import METHODS

    try:
        return METHODS.cached_value(method, "defaults", lambda cls: to_jsonable(dict(cls.defaults)))
    except NrchbenchError:
        return None


def non_default(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the values equal to the method's defaults (all of them if unknown)."""
    defaults = method_defaults(method) or {}
    plain = json.loads(canonical_json(dict(params)))
    return {k: v for k, v in sorted(plain.items()) if k not in defaults or _plain(defaults[k]) != v}


def _plain(v: Any) -> Any:
    return json.loads(canonical_json(v))


#: How the field writes names that are not plain acronyms.
_KNOWN_NAMES = {
    "coteaching": "Co-teaching",
    "gmm-select": "GMM-select",
    "oracle": "Clean-label oracle",
    "mrl": "MRL (hashed)",
}


def _name(method: str) -> str:
    """``dcmh`` → ``DCMH``, ``nrch-nogmm`` → ``NRCH-nogmm``: the field's names are acronyms."""
    if method in _KNOWN_NAMES:
        return _KNOWN_NAMES[method]
    head, sep, tail = method.partition("-")
    return head.upper() + sep + tail


def _params_text(params: Mapping[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        if v is True:
            parts.append(k)
        elif v is False:
            parts.append(f"no {k}")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def method_label(
    method: str,
    params: Mapping[str, Any] | None = None,
    strategy: str = "none",
    strategy_params: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A method identity as people write it: ``DCMH (standardize)``, ``NRCH + ELR (lam=3)``.

    ``labels`` maps a registry name (``nrch-nogmm``) or a full default label to a text of the
    caller's choice (e.g. ``NRCH w/o GMM``).
    """
    labels = labels or {}
    text = labels.get(method, _name(method))
    shown = non_default(method, params or {})
    if shown:
        text += f" ({_params_text(shown)})"
    if strategy and strategy != "none":
        text += " + " + strategy_label(strategy, strategy_params, labels)
    return labels.get(text, text)


def config_slug(
    method: str, params: Mapping[str, Any], strategy: str = "none", strategy_params: Mapping[str, Any] | None = None
) -> str:
    """A method configuration in registry names, for file names and to tell labels apart:
    ``nrch``, ``dcmh-standardize=True``, ``nrch-nodns+gmm-select``, ``nrch-nodns+elr-lam=3``
    (non-default parameters only)."""
    text = "-".join([method, *(f"{k}={v}" for k, v in non_default(method, params).items())])
    if strategy and strategy != "none":
        shown = sorted(non_default_strategy(strategy, strategy_params or {}).items())
        text += "+" + "-".join([strategy, *(f"{k}={v}" for k, v in shown)])
    return text


def strategy_label(
    strategy: str, params: Mapping[str, Any] | None = None, labels: Mapping[str, str] | None = None
) -> str:
    """A training strategy as people write it: ``GMM-select``, ``ELR (lam=3)``; ``none`` for the
    base method as is (a table's strategy axis)."""
    labels = labels or {}
    if not strategy or strategy == "none":
        return labels.get("none", "none")
    text = labels.get(strategy, _name(strategy))
    shown = non_default_strategy(strategy, params or {})
    if shown:
        text += f" ({_params_text(dict(sorted(shown.items())))})"
    return text


def non_default_strategy(strategy: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The strategy parameters that differ from the strategy's defaults (records store all of them)."""
    from nrchbench.errors import RegistryError
    from nrchbench.registry import STRATEGIES

    try:
        defaults = STRATEGIES.get(strategy).Params.defaults()
    except (RegistryError, AttributeError):
        return dict(params)
    return {k: v for k, v in params.items() if defaults.get(k, object()) != v}


def parse_labels(items: Mapping[str, str] | list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["nrch-nogmm=NRCH w/o GMM", ...]`` (CLI ``--label``) → a dict; a dict passes through."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ConfigError(f"--label {item!r}: expected METHOD=TEXT, e.g. --label 'nrch-nogmm=NRCH w/o GMM'")
        out[key.strip()] = text.strip()
    return out
