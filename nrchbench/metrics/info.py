"""What each scalar metric key of :func:`nrchbench.metrics.evaluate` means: direction and range.

Parametrised keys are declared once as a pattern (``map@<k>``: k a positive integer;
``hamming_precision@<r>``: r a non-negative integer) and :func:`metric_info` resolves any
concrete key (``map@50``, ``hamming_recall@0``) to it.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, replace

from nrchbench.errors import RegistryError

__all__ = ["METRICS", "MetricInfo", "metric_info"]


@dataclass(frozen=True)
class MetricInfo:
    """Declared meaning of one scalar metric key.

    Attributes:
        key: the key in the :func:`~nrchbench.metrics.evaluate` dict (``map@100`` for a
            parametrised one; its pattern ``map@<k>`` in :data:`METRICS`).
        higher_is_better: True for scores; None for descriptive numbers (counts, chance).
        range: (low, high) of possible values.
        description: one line.
    """

    key: str
    higher_is_better: bool | None
    range: tuple[float, float]
    description: str


METRICS: dict[str, MetricInfo] = {
    m.key: m
    for m in (
        MetricInfo("map", True, (0.0, 1.0), "mAP@all, ties ranked by ascending database index"),
        MetricInfo("map_tie", True, (0.0, 1.0), "tie-aware mAP@all (expected AP over random order within ties)"),
        MetricInfo("map@<k>", True, (0.0, 1.0), "AP over the top k, normalised by relevant items in the top k"),
        MetricInfo("precision@<k>", True, (0.0, 1.0), "fraction of relevant items among the top min(k, db size)"),
        MetricInfo("recall@<k>", True, (0.0, 1.0), "fraction of a query's relevant items ranked in the top k"),
        MetricInfo(
            "hamming_precision@<r>", True, (0.0, 1.0), "precision within Hamming radius r (0 if nothing retrieved)"
        ),
        MetricInfo("hamming_recall@<r>", True, (0.0, 1.0), "recall within Hamming radius r"),
        MetricInfo("chance", None, (0.0, 1.0), "mean fraction of relevant database items (random-ranking mAP)"),
        MetricInfo("num_queries", None, (0.0, math.inf), "queries evaluated"),
        MetricInfo("num_queries_no_relevant", None, (0.0, math.inf), "queries without any relevant item"),
        MetricInfo("bits", None, (1.0, math.inf), "code length"),
        MetricInfo("db_size", None, (1.0, math.inf), "database items"),
    )
}

# pattern key → its parameter's smallest value (k ≥ 1 ranks, r ≥ 0 Hamming radius)
_PATTERNS = {key: {"k": 1, "r": 0}[key[-2]] for key in METRICS if key.endswith(">")}


def metric_info(key: str) -> MetricInfo:
    """Metadata for a metric key, parametrised keys included (``map@100``, ``hamming_precision@2``).

    Raises:
        RegistryError: unknown key (the message lists the closest known keys).
    """
    if key in METRICS:
        return METRICS[key]
    match = re.fullmatch(r"([a-z_]+)@(\d+)", key)
    if match:
        for pattern, low in _PATTERNS.items():
            if pattern.startswith(match[1] + "@<") and int(match[2]) >= low:
                return replace(METRICS[pattern], key=key)
    close = difflib.get_close_matches(key, list(METRICS), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise RegistryError(f"unknown metric {key!r}: {hint}known: {', '.join(METRICS)} (k ≥ 1, r ≥ 0 integers)")
