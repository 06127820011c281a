"""Code versions (PROTOCOL §5): what a record's version is, and tables whose records span several."""

from __future__ import annotations

import logging
from pathlib import Path

from click.testing import CliRunner
from test_report import make_record, write_records

from nrchbench.cli import main
from nrchbench.environment import environment
from nrchbench.provenance import code_version, current_code_version, short, versions_note
from nrchbench.report import leaderboard

OLD = "a" * 40
NEW = "b" * 40


def test_code_version_is_package_commit_and_dirtiness():
    assert code_version({"nrchbench": "0.1.0", "git_revision": OLD}) == "0.1.0@aaaaaaaaaaaa"
    assert code_version({"nrchbench": "0.1.0", "git_revision": OLD, "git_dirty": True}) == "0.1.0@aaaaaaaaaaaa+dirty"
    assert code_version({"nrchbench": "0.1.0", "git_revision": None}) == "0.1.0"  # an installed wheel
    assert short("0.1.0@aaaaaaaaaaaa+dirty") == "0.1.0@aaaaaaaa+dirty" and short("0.2.0") == "0.2.0"


def test_a_new_record_carries_the_current_code_version():
    import torch

    assert code_version(environment(torch.device("cpu"))) == current_code_version()


def test_versions_note_only_when_versions_differ():
    assert versions_note([("v1", "2026-01-01"), ("v1", "2026-01-02")]) is None
    note = versions_note([("0.1.0@aaaa", "2026-01-01"), ("0.1.0@bbbb", "2026-02-01"), ("0.1.0@bbbb", "2026-02-02")])
    assert note is not None and "span 2 code versions: 0.1.0@bbbb (2), 0.1.0@aaaa (1)" in note  # newest first


def _grid(revisions):
    """nrch and dcmh × 3 seeds at one (bits, rate); ``revisions(method, seed)`` → git revision."""
    recs = []
    for method in ("nrch", "dcmh"):
        for seed in range(3):
            rec = make_record(method, 16, 0.5, seed)
            env = {**rec.env.model_dump(), "git_revision": revisions(method, seed)}
            recs.append(rec.model_copy(update={"env": type(rec.env)(**env)}))
    return recs


def test_table_notes_a_grid_that_spans_two_code_versions(tmp_path: Path, caplog):
    one = leaderboard(_grid(lambda m, s: OLD))
    assert not any("code version" in n for t in one for n in t.notes())
    with caplog.at_level(logging.WARNING, logger="nrchbench.report"):
        (board,) = leaderboard(_grid(lambda m, s: NEW if (m, s) == ("dcmh", 2) else OLD), metric="map")
    note = [n for n in board.notes() if "code version" in n]
    assert note == [
        "The records of this table span 2 code versions: 0.1.0@aaaaaaaa (5), 0.1.0@bbbbbbbb (1) record(s); "
        "rerun the older ones (sweep --rerun-stale) to compare like with like."
    ]
    assert any("span 2 code versions" in r.getMessage() for r in caplog.records)

    root = write_records(tmp_path, _grid(lambda m, s: NEW if m == "dcmh" else OLD))
    res = CliRunner().invoke(main, ["table", "--results", str(root)], catch_exceptions=False)
    assert res.exit_code == 0
    assert "span 2 code versions" in " ".join(res.output.split())


def test_commits_that_change_no_record_making_code_are_one_version():
    """9e7caab changed tests only and 1b71880 the report only: records made at either are one version."""
    from nrchbench.provenance import source_commit

    tests_only, report_only = "9e7caab31978de54b9c8f22c9d0bed385ab071f7", "1b718801796add16a5c62edca99d7786abb71692"
    if source_commit(tests_only) == tests_only:
        import pytest

        pytest.skip("no git history of this repository (a wheel or a shallow clone)")
    env = {"nrchbench": "0.1.0"}
    assert code_version({**env, "git_revision": tests_only}) == code_version({**env, "git_revision": report_only})
    assert source_commit("f" * 40) == "f" * 40  # a commit this clone lacks stands for itself
