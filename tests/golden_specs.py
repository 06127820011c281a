"""The golden specs: tiny runs whose records are frozen in ``tests/golden/`` (see test_golden.py)."""

from __future__ import annotations

from typing import Any

SMALL = {"n": 600, "image_dim": 64, "text_dim": 200}

#: name → keyword arguments of a run spec (synthetic: embedded; wiki: ../shared/data).
GOLDEN_SPECS: dict[str, dict[str, Any]] = {
    "nrch_synth_nrch50": dict(method="nrch", dataset_options=SMALL, noise_model="nrch", noise_rate=0.5),
    "nrchnogmm_synth_nrch50": dict(method="nrch-nogmm", dataset_options=SMALL, noise_model="nrch", noise_rate=0.5),
    "nrchnodns_synth_sym20": dict(method="nrch-nodns", dataset_options=SMALL, noise_model="symmetric", noise_rate=0.2),
    "dcmh_synth_sym50": dict(method="dcmh", dataset_options=SMALL, noise_model="symmetric", noise_rate=0.5),
    "djsrh_synth": dict(method="djsrh", dataset_options=SMALL, noise_model="nrch", noise_rate=0.5),
    "nrch_wiki_sym50": dict(method="nrch", dataset="wiki", noise_model="symmetric", noise_rate=0.5),
    "dcmh_wiki_nrch80": dict(method="dcmh", dataset="wiki", noise_model="nrch", noise_rate=0.8),
}
COMMON: dict[str, Any] = {"dataset": "synthetic", "bits": 16, "seed": 3, "preset": "tiny"}

#: Top-level record keys compared bit for bit (timing, env and ``created`` vary by machine).
COMPARED = ("run_id", "status", "spec", "dataset", "noise_report", "metrics", "history", "diagnostics")


def deterministic_part(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        record = record.to_dict()
    out = {k: record.get(k) for k in COMPARED}
    out["spec"] = {k: v for k, v in out["spec"].items() if k != "device"}
    out["history"] = [{k: v for k, v in h.items() if not k.startswith("time_")} for h in out["history"] or []]
    return out


def run_golden(spec: dict[str, Any], data_root: str | None) -> dict[str, Any]:
    """Run one golden spec on the CPU with one torch thread and return its record."""
    import torch

    from nrchbench.runner import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from nrchbench.spec import resolve_spec

        return run(resolve_spec(**{**COMMON, **spec}, device="cpu"), data_root=data_root)
    finally:
        torch.set_num_threads(threads)
