"""Golden records: tiny specs whose records were frozen before the typed-spec / base-class redesign.

The deterministic part of each record (run id, spec, dataset meta, noise report, metrics,
per-epoch history without timings, diagnostics) must stay bit-identical. Fields added since
the goldens were frozen (new spec fields, new metrics) are additions: only the frozen keys are
compared, after the same schema migration every old record gets (and the renames of issue 19). Regenerate only on purpose,
with ``python tests/golden/make_goldens.py``, and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from golden_specs import GOLDEN_SPECS, deterministic_part, run_golden

from nrchbench.records import migrate

GOLDEN = Path(__file__).resolve().parent / "golden"


def _frozen_keys_only(expected: Any, got: Any) -> Any:
    """``got`` restricted to the keys ``expected`` has (recursively, for dicts and lists of dicts)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        return {k: _frozen_keys_only(expected[k], got.get(k)) for k in expected}
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [_frozen_keys_only(e, g) for e, g in zip(expected, got)]
    return got


def _renamed(record: dict[str, Any]) -> dict[str, Any]:
    """The frozen record with the names renamed since (issue 19: the noise model ``nrch`` is
    ``one-swap``, the split rule ``nrch`` is ``contiguous``) where the record repeats them."""
    out = json.loads(json.dumps(record))
    if out["dataset"].get("split_rule") == "nrch":
        out["dataset"]["split_rule"] = "contiguous"
    if (out.get("noise_report") or {}).get("model") == "nrch":
        out["noise_report"]["model"] = "one-swap"
    return out


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_golden_record_is_bit_identical(name: str, request: pytest.FixtureRequest) -> None:
    spec = GOLDEN_SPECS[name]
    data_root = None
    if spec.get("dataset", "synthetic") != "synthetic":
        data_root = str(request.getfixturevalue("shared_data"))
    frozen = json.loads((GOLDEN / f"{name}.json").read_text())
    expected = _renamed(migrate({**frozen, "schema_version": 1}))
    got = json.loads(json.dumps(deterministic_part(run_golden(spec, data_root))))
    for key in frozen:
        assert _frozen_keys_only(expected[key], got[key]) == expected[key], f"{name}: {key} differs from the golden"
