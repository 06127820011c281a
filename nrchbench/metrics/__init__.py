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

from nrchbench.metrics.codes import (
    CODES_FORMAT,
    hamming,
    hamming_matmul,
    load_codes,
    pack,
    save_codes,
    sign_codes,
    unpack,
)
from nrchbench.metrics.info import METRICS, MetricInfo, metric_info
from nrchbench.metrics.ranking import BACKENDS, DEFAULT_TOPK, evaluate, evaluate_cross_modal
from nrchbench.metrics.summary import ZERO_RELEVANT, default_curve_k, tie_aware_ap

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
