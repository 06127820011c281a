"""Freeze the golden records (run once, on the code *before* a refactor; see tests/test_golden.py).

    python tests/golden/make_goldens.py [--data-root ../shared/data]

Each golden is the deterministic part of a record (run id, spec, dataset meta, noise report,
metrics, history without timings, diagnostics) of a tiny spec, trained with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from golden_specs import GOLDEN_SPECS, deterministic_part, run_golden  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=str(HERE.parents[2] / "shared" / "data"))
    args = ap.parse_args()
    for name, spec in GOLDEN_SPECS.items():
        rec = run_golden(spec, args.data_root)
        (HERE / f"{name}.json").write_text(json.dumps(deterministic_part(rec), indent=1, sort_keys=True) + "\n")
        print(name, rec["run_id"], rec["metrics"]["avg"]["map"])


if __name__ == "__main__":
    main()
