"""``nrchbench table``, ``compare`` and ``plot``: thin wrappers over :mod:`nrchbench.report`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from nrchbench.cli.common import UserErrorCommand, console, err_console
from nrchbench.cli.vocabulary import flag
from nrchbench.errors import ConfigError, NrchbenchError

_FORMATS = click.Choice(["csv", "latex", "markdown"])
_DIRECTIONS = click.Choice(["i2t", "t2i", "avg", "all"])


def _results_option(f):
    return click.option(
        "--results",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("results"),
        show_default=True,
        help="Results directory whose runs/**/*.json records are read (the --results of run/sweep).",
    )(f)


def _filters(f):
    f = flag(
        "--strategy",
        "strategies",
        command=f.__name__,
        default=None,
        help="Only these training strategies, e.g. none,gmm-select (none: the base methods as they are).",
    )(f)
    f = click.option("--noise", "noise_rates", default=None, help="Only these noise rates, e.g. 0.2,0.8.")(f)
    f = click.option("--bits", default=None, help="Only these code lengths, e.g. 16,64.")(f)
    f = flag("--method", "methods", command=f.__name__, default=None, help="Only these methods, e.g. nrch,dcmh.")(f)
    f = click.option("--noise-model", default=None, help="Only this noise model (e.g. nrch).")(f)
    f = click.option("--split", default=None, help="Only this split rule (nrch, random, official).")(f)
    f = click.option("--preset", default=None, help="Only this preset (paper, fast, tiny).")(f)
    f = click.option("--dataset", default=None, help="Only this dataset.")(f)
    return f


def _list(value: str | None, cast, what: str) -> list | None:
    if value is None:
        return None
    try:
        return [cast(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} {value!r}: expected a comma-separated list, e.g. {what} 16,64") from None


def _selection(*, dataset, preset, split, noise_model, methods, bits, noise_rates, strategies) -> dict:
    """The record filters of ``_filters``' options, lists parsed."""
    return {
        "dataset": dataset,
        "preset": preset,
        "split": split,
        "noise_model": noise_model,
        "methods": _list(methods, str.strip, "--method"),
        "bits": _list(bits, int, "--bits"),
        "noise_rates": _list(noise_rates, float, "--noise"),
        "strategies": _list(strategies, str.strip, "--strategy"),
    }


def _load(results: Path) -> list:
    from nrchbench.records import load_records

    records = load_records(results)
    if not records:
        raise NrchbenchError(
            f"no result records found in {results / 'runs'}/**/*.json; run `nrchbench run` or `nrchbench sweep` "
            "first, or point --results at the directory they wrote"
        )
    return records


def _nothing(results: Path, selection: dict) -> NrchbenchError:
    flags = {"methods": "--method", "noise_rates": "--noise", "strategies": "--strategy"}
    given = " ".join(
        f"{flags.get(k, '--' + k.replace('_', '-'))} {','.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in selection.items()
        if v is not None
    )
    return NrchbenchError(f"no record in {results / 'runs'} matches {given}; drop a filter to see all tables")


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
@click.option(
    "--metric", default="map", show_default=True, help="map, map_tie, map@<k>, precision@<k>, recall@<k>, ..."
)
@click.option("--format", "fmt", type=_FORMATS, default="markdown", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to FILE.")
@click.option(
    "--rows",
    default="method",
    show_default=True,
    help="Row axes: method, strategy, bits, noise (naming strategy splits 'DCMH + ELR' into method DCMH, strategy ELR).",
)
@click.option(
    "--columns",
    default="bits,noise",
    show_default=True,
    help="Column axes; an axis in neither --rows nor --columns gives one table per value "
    "(--columns noise: one table per code length; --columns strategy: base methods × strategies, "
    "one table per code length and noise rate).",
)
@click.option("--ci", is_flag=True, help="95% t-intervals over seeds instead of ± std.")
@click.option("--robustness", is_flag=True, help="The robustness summary (AUC over noise rates, relative drop).")
@click.option(
    "--versus",
    default=None,
    metavar="REF",
    help="Mark rows ↑/↓ where a two-sided paired t-test over seeds finds them better/worse than REF: a row label "
    "('NRCH-nodns + GMM-select'), a method name, or 'base' (each row against its own base without a strategy).",
)
@click.option(
    "--fit",
    type=click.Choice(["none", "resize", "split"]),
    default="none",
    show_default=True,
    help="LaTeX: resize to \\linewidth (needs graphicx) or split into tables that fit --width.",
)
@click.option("--width", type=float, default=345.0, show_default=True, help="LaTeX --fit split width in pt.")
@click.option("--label", "labels", multiple=True, help="Display label: METHOD=TEXT (repeatable).")
def table(
    results,
    direction,
    metric,
    fmt,
    output,
    rows,
    columns,
    ci,
    robustness,
    versus,
    fit,
    width,
    labels,
    **filters,
):
    """Leaderboards: rows = method configurations, columns = bits × noise rate, cells = mean ± std
    over seeds; bold only what a paired test over seeds finds best (with 3 or more seeds)."""
    from nrchbench.report import leaderboard, render
    from nrchbench.report.robustness import robustness as summarise

    selection = _selection(**filters)
    boards = leaderboard(
        _load(results), metric=metric, direction=direction, results_dir=results, labels=labels, **selection
    )
    if not boards:
        raise _nothing(results, selection)
    if versus is not None:
        if robustness:
            raise ConfigError("--versus marks a leaderboard's cells; drop --robustness or --versus")
        from nrchbench.report.versus import against_each

        boards = against_each(boards, versus)
    tables = boards
    if robustness:
        tables = [r for r in map(summarise, boards) if r is not None]
        if not tables:
            raise NrchbenchError("no robustness summary: no code length has records at two or more noise rates")
    text = render(tables, fmt, rows=rows, columns=columns, ci=ci, fit=fit, width=width)
    _emit(text, output, f"{len(tables)} table(s)")


@click.command(cls=UserErrorCommand)
@click.option(
    "--reference",
    default="paper",
    show_default=True,
    help="'paper' (NRCH, ACM MM 2024) or a reference CSV whose '# key: value' header states its source and "
    "conventions (metric, selection, zero_relevant, params, ...; see nrchbench.report.compare).",
)
@_results_option
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--preset", default=None, help="Only this preset.")
@click.option("--split", default=None, help="Only this split rule.")
@click.option("--noise-model", default=None, help="Only this noise model (e.g. one-swap).")
@flag("--method", "methods", command="compare", default=None, help="Only these methods of ours, e.g. nrch,dcmh.")
@click.option(
    "--metric", default=None, help="Only this metric of the reference's (map, map_tie, map@50, ...) [default: all]."
)
@click.option("--direction", type=_DIRECTIONS, default="avg", show_default=True, help="Retrieval direction.")
@click.option("--format", "fmt", type=_FORMATS, default="markdown", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to FILE.")
def compare(reference, results, dataset, preset, split, noise_model, methods, metric, direction, fmt, output):
    """Our numbers beside a reference's, like with like (ours / reference (Δ)), each convention stated."""
    from dataclasses import replace

    from nrchbench.registry import METHODS
    from nrchbench.report import compare_with_reference, load_reference, render

    ref = load_reference(reference)
    if metric is not None:
        known = sorted(ref.table["metric"].unique())
        if metric not in known:
            raise ConfigError(f"--metric {metric!r}: reference {ref.name!r} has numbers for {', '.join(known)} only")
        ref = replace(ref, table=ref.table[ref.table["metric"] == metric])
    records = _load(results)
    if methods is not None:
        wanted = {METHODS.canonical(m) for m in _list(methods, str.strip, "--method") or []}
        records = [r for r in records if r.spec.method in wanted]
    comparisons = compare_with_reference(
        records,
        ref,
        dataset=dataset,
        direction=direction,
        preset=preset,
        split=split,
        noise_model=noise_model,
        results_dir=results,
    )
    if not comparisons:
        t = ref.table
        raise NrchbenchError(
            f"no record in {results / 'runs'} matches a row of reference {ref.name!r} on dataset, direction, noise "
            f"model, method and grid (it has datasets {', '.join(sorted(t['dataset'].unique()))}, methods "
            f"{', '.join(sorted(t['method'].unique()))}, noise model(s) {', '.join(sorted(t['noise_model'].unique()))})"
        )
    if fmt == "csv":  # CSV stays machine-readable: the source goes to stderr
        err_console.print(f"reference: {ref.source}", highlight=False, soft_wrap=True)
    _emit(render(comparisons, fmt), output, f"{len(comparisons)} comparison(s)")


@click.command(cls=UserErrorCommand)
@_results_option
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("plots"), show_default=True)
@click.option(
    "--kind",
    type=click.Choice(["all", "noise", "selection", "loss-hist", "pr"]),
    default="all",
    show_default=True,
    help="noise: metric vs noise rate; selection: separator precision/recall; loss-hist: loss histogram + GMM; "
    "pr: PR curves. Files go to OUT_DIR/<dataset>/.",
)
@_filters
@click.option("--direction", type=_DIRECTIONS, default="avg", show_default=True, help="Direction of the noise plot.")
@click.option("--metric", default="map", show_default=True, help="Metric of the noise plot.")
@click.option("--label", "labels", multiple=True, help="Display label: METHOD=TEXT (repeatable).")
def plot(results, out_dir, kind, direction, metric, labels, **filters):
    """Figures (PNG and PDF) from result records, sized for a paper column."""
    from nrchbench.report import plots

    selection = _selection(**filters)
    kinds = ["noise", "selection", "loss-hist", "pr"] if kind == "all" else [kind]
    with err_console.status(f"reading the records in {results}…"):
        records = _load(results)
    written: dict[str, list] = {}
    for i, k in enumerate(kinds, 1):  # one kind at a time, each reported as it is written
        t0 = time.perf_counter()
        with err_console.status(f"plotting {k} ({i}/{len(kinds)}) from {len(records)} record(s)…"):
            written.update(
                plots.plot_kinds(
                    records,
                    out_dir,
                    [k],
                    direction=direction,
                    metric=metric,
                    results_dir=results,
                    labels=labels,
                    **selection,
                )
            )
        n = len(written[k])
        secs = time.perf_counter() - t0
        console.print(f"{k}: {f'{n} file(s)' if n else 'nothing to plot'} ({secs:.1f}s)", highlight=False)
    total = sum(len(v) for v in written.values())
    if total == 0:
        raise NrchbenchError(
            f"no plot written: the records in {results / 'runs'} matching the filters have no "
            + "; no ".join(plots.NEEDS[k] for k in kinds)
        )
    console.print(f"wrote {total} file(s) to {out_dir}", highlight=False)
