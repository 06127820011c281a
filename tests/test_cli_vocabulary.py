"""One flag vocabulary (issue 19 item 4): every option of every command is checked against the
one table in :mod:`nrchbench.cli.vocabulary`, and docs/CLI.md carries that table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nrchbench.cli import main
from nrchbench.cli.vocabulary import ARGUMENTS, VOCABULARY, VocabOption, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(main)

    def walk(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, name
                yield from walk(sub, f"{path} {name}".strip() if path != "nrchbench" else name)

    yield from walk(main, "nrchbench")


COMMANDS = dict(_commands())
BY_LONG = {f.long: f for f in VOCABULARY}


def _options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option)]


def test_the_table_is_one_vocabulary() -> None:
    longs = [f.long for f in VOCABULARY]
    assert len(longs) == len(set(longs)), "a long flag appears twice in the table"
    shorts = [f.short for f in VOCABULARY if f.short]
    assert len(shorts) == len(set(shorts)), "a short flag means two things"
    for f in VOCABULARY:
        assert set(f.legacy) <= set(f.commands), f"{f.long}: old spellings for a command that lacks it"
        for cmd in f.commands:
            assert cmd in COMMANDS, f"{f.long}: unknown command {cmd!r}"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_option_follows_the_table(path: str) -> None:
    cmd = COMMANDS[path]
    for opt in _options(cmd):
        legacy = set(opt.legacy) if isinstance(opt, VocabOption) else set()
        shown = [o for o in [*opt.opts, *opt.secondary_opts] if o not in legacy]
        longs = [o for o in shown if o.startswith("--")]
        assert len(longs) == 1, f"{path}: option {opt.name} shows {shown}: one long flag expected"
        f = BY_LONG.get(longs[0])
        assert f is not None, f"{path} {longs[0]}: not in nrchbench.cli.vocabulary.VOCABULARY"
        assert path in f.commands, f"{path} {longs[0]}: the table does not list {path!r} for it"
        short = [o for o in shown if not o.startswith("--")]
        assert short == ([f.short] if f.short else []), f"{path} {longs[0]}: short flag {short}, table {f.short}"
        assert legacy == set(f.legacy.get(path, ())), f"{path} {longs[0]}: hidden aliases {legacy}"


@pytest.mark.parametrize("f", VOCABULARY, ids=lambda f: f.long)
def test_every_command_the_table_names_has_the_flag(f) -> None:
    for path in f.commands:
        flags = {o for opt in _options(COMMANDS[path]) for o in opt.opts}
        assert f.long in flags, f"{path} lacks {f.long}"


def test_arguments_follow_the_table() -> None:
    for path, cmd in COMMANDS.items():
        args = [p for p in cmd.params if isinstance(p, click.Argument)]
        if path in ARGUMENTS:
            assert len(args) == 1, path
        else:
            assert not args, f"{path} takes an argument the table does not list"


def test_help_shows_no_old_spelling() -> None:
    runner = CliRunner()
    for path in ("run", "sweep", "noise inspect", "data info"):
        out = runner.invoke(main, [*path.split(), "--help"], terminal_width=200).output
        for f in VOCABULARY:
            for old in f.legacy.get(path, ()):
                assert f"{old} " not in out and f"{old}," not in out, f"{path} --help shows {old}"


def test_docs_carry_the_table() -> None:
    doc = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "docs/CLI.md is out of date: paste nrchbench.cli.vocabulary.markdown_table()"


def test_old_spellings_still_parse() -> None:
    """Scripts written against the old flags keep working (dry run / help-free checks)."""
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "sweep",
            "--methods",
            "nrch",
            "--seeds",
            "0,1",
            "--datasets",
            "synthetic",
            "--strategies",
            "none",
            "--out",
            "somewhere",
            "--dry-run",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.output.count("nrch") >= 2
    res2 = runner.invoke(main, ["sweep", "-m", "nrch", "--seed", "0,1", "--dataset", "synthetic", "--dry-run"])
    assert res2.exit_code == 0, res2.output
    assert res.output.replace("somewhere", "results") == res2.output.replace("somewhere", "results")


def test_old_noise_and_data_spellings_give_the_same_output() -> None:
    runner = CliRunner()
    old = ["noise", "inspect", "-d", "synthetic", "-d", "n=600", "-m", "symmetric", "-r", "0.5", "-s", "1", "--json"]
    new = ["noise", "inspect", "--dataset", "synthetic", "-d", "n=600", "--noise-model", "symmetric"]
    new += ["--noise", "0.5", "--seed", "1", "--json"]
    a, b = runner.invoke(main, old), runner.invoke(main, new)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert a.output == b.output and '"rate": 0.5' in a.output
    a = runner.invoke(main, ["data", "info", "synthetic", "-o", "n=600", "--json"])
    b = runner.invoke(main, ["data", "info", "--dataset", "synthetic", "-d", "n=600", "--json"])
    assert a.exit_code == 0 and a.output == b.output and '"n": 600' in a.output, a.output + b.output
    c = runner.invoke(main, ["data", "info", "synthetic", "--dataset", "wiki"])
    assert c.exit_code == 2 and "two datasets" in c.output


def test_compare_takes_method_and_metric(tmp_path: Path) -> None:
    import io

    import pandas as pd
    from test_report import SEEDS, make_record, write_records

    recs = [make_record(m, 16, 0.5, s) for m in ("nrch", "dcmh") for s in SEEDS]
    results = write_records(tmp_path / "results", recs)
    ref = tmp_path / "mine.csv"
    ref.write_text(
        "# source: my lab's rerun\n"
        "dataset,method,direction,noise_model,noise_rate,bits,value,metric\n"
        "mirflickr,nrch,avg,nrch,0.5,16,0.6,map\nmirflickr,dcmh,avg,nrch,0.5,16,0.5,map\n"
        "mirflickr,nrch,avg,nrch,0.5,16,0.7,map_tie\n"
    )
    runner = CliRunner()
    base = ["compare", "--reference", str(ref), "--results", str(results), "--format", "csv"]
    everything = pd.read_csv(io.StringIO(runner.invoke(main, base).stdout))
    assert set(zip(everything["metric"], everything["method"])) == {
        ("map", "nrch"),
        ("map", "dcmh"),
        ("map_tie", "nrch"),
        ("map_tie", "dcmh"),
    }
    res = runner.invoke(main, [*base, "--metric", "map_tie", "-m", "nrch", "--noise-model", "one-swap"])
    assert res.exit_code == 0, res.output
    one = pd.read_csv(io.StringIO(res.stdout))
    assert list(zip(one["metric"], one["method"], one["reference"])) == [("map_tie", "nrch", 0.7)]
    bad = runner.invoke(main, [*base, "--metric", "map@50"])
    assert bad.exit_code == 2 and "has numbers for map, map_tie only" in bad.output
