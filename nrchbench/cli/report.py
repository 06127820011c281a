"""``nrchbench table``, ``compare`` and ``plot``: thin wrappers over :mod:`nrchbench.report`."""

from __future__ import annotations

from pathlib import Path

import click

from nrchbench.cli.common import UserErrorCommand, console, err_console
from nrchbench.errors import NrchbenchError

_FORMATS = click.Choice(["csv", "latex", "markdown"])
_DIRECTIONS = click.Choice(["i2t", "t2i", "avg", "all"])


def _results_option(f):
    return click.option(
        "--results",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("results"),
        show_default=True,
        help="Directory whose runs/**/*.json records are read (the --out of run/sweep).",
    )(f)


def _filters(f):
    f = click.option("--noise-model", default=None, help="Only this noise model (e.g. nrch).")(f)
    f = click.option("--split", default=None, help="Only this split rule (nrch, random, official).")(f)
    f = click.option("--preset", default=None, help="Only this preset (paper, fast, tiny).")(f)
    f = click.option("--dataset", default=None, help="Only this dataset.")(f)
    return f


def _load(results: Path) -> list[dict]:
    from nrchbench.report.tables import load_records, require_records

    records = load_records(results)
    require_records(records, results)
    return records


def _emit(text: str, output: Path | None, what: str) -> None:
    if output is None:
        console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    err_console.print(f"wrote {what} to {output}", highlight=False)


@click.command(cls=UserErrorCommand)
@_results_option
@_filters
@click.option("--direction", type=_DIRECTIONS, default="avg", show_default=True, help="Retrieval direction.")
@click.option("--metric", default="map", show_default=True, help="map, map_tie, map@<k> or precision@<k>.")
@click.option("--format", "fmt", type=_FORMATS, default="markdown", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to FILE.")
def table(results, dataset, preset, split, noise_model, direction, metric, fmt, output):
    """Leaderboards: rows = methods, columns = bits × noise rate, cells = mean ± std over seeds."""
    from nrchbench.report.tables import leaderboard, render

    records = _load(results)
    boards = leaderboard(
        records,
        dataset=dataset,
        direction=direction,
        metric=metric,
        preset=preset,
        split=split,
        noise_model=noise_model,
    )
    if not boards:
        raise NrchbenchError(
            f"no record in {results / 'runs'} matches --dataset {dataset} --preset {preset} --split {split} "
            f"--noise-model {noise_model}; drop a filter to see all tables"
        )
    _emit(render(boards, fmt), output, f"{len(boards)} table(s)")


@click.command(cls=UserErrorCommand)
@click.option("--reference", default="paper", show_default=True, help="'paper' (NRCH, ACM MM 2024) or a CSV file.")
@_results_option
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--preset", default=None, help="Only this preset.")
@click.option("--split", default=None, help="Only this split rule.")
@click.option("--direction", type=_DIRECTIONS, default="avg", show_default=True, help="Retrieval direction.")
@click.option("--format", "fmt", type=_FORMATS, default="markdown", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to FILE.")
def compare(reference, results, dataset, preset, split, direction, fmt, output):
    """Our mAP beside the published reference, with the differences (ours / paper (Δ))."""
    from nrchbench.report.compare import PAPER_PROTOCOL_NOTE, compare_with_reference, load_reference, render

    records = _load(results)
    comparisons = compare_with_reference(
        records, reference, dataset=dataset, direction=direction, preset=preset, split=split
    )
    if not comparisons:
        ref = load_reference(reference)
        raise NrchbenchError(
            f"no record in {results / 'runs'} shares a dataset, direction and noise model with reference "
            f"{reference!r} (it has datasets {', '.join(sorted(ref['dataset'].unique()))} with noise model(s) "
            f"{', '.join(sorted(ref['noise_model'].unique()))})"
        )
    if fmt == "csv":  # CSV stays machine-readable: the protocol note goes to stderr
        err_console.print(PAPER_PROTOCOL_NOTE, highlight=False, soft_wrap=True)
    _emit(render(comparisons, fmt), output, f"{len(comparisons)} comparison(s)")


@click.command(cls=UserErrorCommand)
@_results_option
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("plots"), show_default=True)
@click.option(
    "--kind",
    type=click.Choice(["all", "noise", "selection", "loss-hist", "pr"]),
    default="all",
    show_default=True,
    help="noise: mAP vs noise rate; selection: separator precision/recall; loss-hist: loss histogram + GMM; pr: PR curves.",
)
@_filters
@click.option("--direction", type=_DIRECTIONS, default="avg", show_default=True, help="Direction of the noise plot.")
@click.option("--metric", default="map", show_default=True, help="Metric of the noise plot.")
def plot(results, out_dir, kind, dataset, preset, split, noise_model, direction, metric):
    """Figures (PNG and PDF) from result records."""
    from nrchbench.report import plots

    records = _load(results)
    common = {"dataset": dataset, "preset": preset, "split": split, "noise_model": noise_model}
    if kind == "all":
        written = plots.plot_all(records, out_dir, direction=direction, metric=metric, **common)
    else:
        fn = {
            "noise": lambda: plots.plot_map_vs_noise(records, out_dir, direction=direction, metric=metric, **common),
            "selection": lambda: plots.plot_selection(records, out_dir, **common),
            "loss-hist": lambda: plots.plot_loss_histogram(records, out_dir, **common),
            "pr": lambda: plots.plot_pr_curves(records, out_dir, **common),
        }[kind]
        written = {kind: fn()}
    total = sum(len(v) for v in written.values())
    if total == 0:
        needs = {
            "noise": "ok records",
            "selection": "history with sel_precision/sel_recall/selected_fraction (a method that selects samples)",
            "loss-hist": "diagnostics.sample_loss_hist (a method that selects samples, e.g. nrch)",
            "pr": "metrics.<dir>.pr_curve",
        }
        raise NrchbenchError(
            f"no plot written: the records in {results / 'runs'} matching the filters have no "
            f"{needs.get(kind, 'plottable data')}"
        )
    for k, paths in written.items():
        note = f"{len(paths)} file(s)" if paths else "nothing to plot"
        console.print(f"{k}: {note}", highlight=False)
    console.print(f"wrote {total} file(s) to {out_dir}", highlight=False)
