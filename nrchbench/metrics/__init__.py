"""Retrieval evaluation: codes (sign, pack, Hamming, codes files) and metrics for one direction.

``evaluate(query_codes, db_codes, query_labels, db_labels, ...)`` returns a plain dict whose
keys are documented in :mod:`nrchbench.metrics.ranking`; ``METRICS`` / ``metric_info`` declare
each scalar metric's direction and range.
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
from nrchbench.metrics.ranking import METRICS, MetricInfo, evaluate, evaluate_cross_modal, metric_info, tie_aware_ap

__all__ = [
    "CODES_FORMAT",
    "METRICS",
    "MetricInfo",
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
