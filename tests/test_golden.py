"""Golden records: tiny specs whose records were frozen before the typed-spec / base-class redesign.

The deterministic part of each record (run id, spec, dataset meta, noise report, metrics,
per-epoch history without timings, diagnostics) must stay bit-identical. Regenerate only on
purpose, with ``python tests/golden/make_goldens.py``, and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden_specs import GOLDEN_SPECS, deterministic_part, run_golden

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_golden_record_is_bit_identical(name: str, request: pytest.FixtureRequest) -> None:
    spec = GOLDEN_SPECS[name]
    data_root = None
    if spec.get("dataset", "synthetic") != "synthetic":
        data_root = str(request.getfixturevalue("shared_data"))
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    got = json.loads(json.dumps(deterministic_part(run_golden(spec, data_root))))
    for key in expected:
        assert got[key] == expected[key], f"{name}: {key} differs from the golden record"
