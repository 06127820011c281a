"""Retrieval evaluation: codes (sign, pack, Hamming, codes files) and metrics for one direction.

``evaluate(query_codes, db_codes, query_labels, db_labels, ...)`` returns a plain dict whose
keys are documented in :mod:`nrchbench.metrics.ranking`; ``METRICS`` / ``metric_info`` declare
each scalar metric's direction and range.

Modules: :mod:`~nrchbench.metrics.ranking` (the public ``evaluate`` API and its options),
:mod:`~nrchbench.metrics.summary` (per-query sums → metrics: the zero-relevant policy, the
tie-aware AP and other closed forms, curves), :mod:`~nrchbench.metrics.backends` (numba and
torch backends, chunking), :mod:`~nrchbench.metrics.sorting` (numpy backends),
:mod:`~nrchbench.metrics._kernels` (the compiled kernel), :mod:`~nrchbench.metrics.inputs`
(input checks), :mod:`~nrchbench.metrics.info` (metric metadata), :mod:`~nrchbench.metrics.codes`.
"""

from __future__ import annotations

import importlib
from typing import Any

# Submodules load on first use (PEP 562): ``metric_info`` (for tables) never imports torch.
_WHERE = {
    "CODES_FORMAT": "codes",
    "hamming": "codes",
    "hamming_matmul": "codes",
    "load_codes": "codes",
    "pack": "codes",
    "save_codes": "codes",
    "sign_codes": "codes",
    "unpack": "codes",
    "METRICS": "info",
    "MetricInfo": "info",
    "metric_info": "info",
    "BACKENDS": "ranking",
    "DEFAULT_TOPK": "ranking",
    "evaluate": "ranking",
    "evaluate_cross_modal": "ranking",
    "ZERO_RELEVANT": "summary",
    "default_curve_k": "summary",
    "tie_aware_ap": "summary",
}

__all__ = [
    "BACKENDS",
    "CODES_FORMAT",
    "DEFAULT_TOPK",
    "METRICS",
    "ZERO_RELEVANT",
    "MetricInfo",
    "default_curve_k",
    "evaluate",
    "evaluate_cross_modal",
    "hamming",
    "hamming_matmul",
    "load_codes",
    "metric_info",
    "pack",
    "save_codes",
    "sign_codes",
    "tie_aware_ap",
    "unpack",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"nrchbench.metrics.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
