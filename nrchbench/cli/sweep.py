"""``nrchbench sweep``: a grid of runs, resumable, on local workers or Ray."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nrchbench.cli.common import (
    UserErrorCommand,
    console,
    data_root_option,
    dataset_option_option,
    device_option,
    err_console,
    import_plugins,
    out_option,
    param_option,
    plugin_option,
    preset_option,
    spec_options,
    spec_options_values,
)
from nrchbench.params import parse_key_values

MAX_ROWS = 60


def _opt(ctx: click.Context, cfg: dict[str, Any], name: str, value: Any) -> Any:
    """An option given on the command line wins over the sweep file, which wins over the default."""
    source = ctx.get_parameter_source(name)
    if source is not None and source.name == "COMMANDLINE":
        return value
    return cfg.get(name, value)


@click.command(cls=UserErrorCommand)
@click.option("--methods", default=None, help="Comma list of methods, e.g. nrch,dcmh,djsrh.")
@click.option("--datasets", default="synthetic", show_default=True, help="Comma list of datasets.")
@click.option("--bits", default="64", show_default=True, help="Comma list of code lengths.")
@click.option("--noise", default="0.8", show_default=True, help="Comma list of noise rates.")
@click.option("--seeds", default="0", show_default=True, help="Comma list of seeds.")
@click.option(
    "--noise-model", "noise_models", default="one-swap", show_default=True, help="Comma list of noise models."
)
@click.option("--strategies", default="none", show_default=True, help="Comma list of robust-training strategies.")
@preset_option()
@device_option()
@click.option("--split", default=None, help="Split rule (nrch, random, official); default: each dataset's own.")
@data_root_option()
@out_option()
@param_option("Hyper-parameter for every method that has it, or METHOD.KEY=VALUE for one (repeatable).")
@plugin_option()
@dataset_option_option("Dataset loader option for every dataset, e.g. -d n=600 (repeatable).")
@spec_options()
@click.option("--save-codes", is_flag=True, help="Keep the packed codes beside each record.")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Sweep file (.toml/.yaml).")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Parallel runs.")
@click.option("--force", is_flag=True, help="Rerun specs that already have an ok record.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (--backend ray).")
@click.option("--gpus-per-run", type=float, default=None, help="GPUs per run (--backend ray).")
@click.option("--cpus-per-run", type=float, default=None, help="CPUs per run (--backend ray).")
@click.option(
    "--max-retries", type=int, default=None, help="Retries of a run whose worker or node died (--backend ray; 2)."
)
@click.option(
    "--run-timeout",
    type=float,
    default=None,
    help="Seconds before a run is cancelled and recorded failed (--backend ray).",
)
@click.option("--dry-run", is_flag=True, help="List the runs (and which are done) without running anything.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def sweep(ctx: click.Context, **opts: Any) -> None:
    """Run a grid of methods × datasets × bits × noise × seeds (resumable).

    Finished runs (a record with status ok under --out) are skipped unless --force; failed
    or missing ones run. A method that does not use labels runs once for all noise levels.

    Example: nrchbench sweep --methods nrch,dcmh --bits 16,32 --noise 0.2,0.5,0.8 --seeds 0,1,2 --jobs 2
    """
    from nrchbench.grid import load_sweep_file, specs_from_config
    from nrchbench.sweep import Sweep

    cli_keys = [k for k in opts if k not in ("config", "as_json", "dry_run")]
    cfg: dict[str, Any] = load_sweep_file(opts["config"], extra_keys=cli_keys) if opts["config"] else {}
    names = [k for k in cli_keys if k not in ("params", "plugins", "dataset_options", "strategy_params")]
    merged = {k: _opt(ctx, cfg, k, opts[k]) for k in names}
    merged.update(spec_options_values({k: merged[k] for k in merged if k in opts}))
    merged["params"] = {**dict(cfg.get("params") or {}), **parse_key_values(opts["params"], "--param")}
    merged["strategy_params"] = {
        **dict(cfg.get("strategy_params") or {}),
        **parse_key_values(opts["strategy_params"], "--strategy-param"),
    }
    merged["dataset_options"] = {
        **dict(cfg.get("dataset_options") or {}),
        **parse_key_values(opts["dataset_options"], "--dataset-option"),
    }
    for key in ("noise_params", "split_seed"):
        if key in cfg:
            merged[key] = cfg[key]
    plugins = [
        *([cfg["plugins"]] if isinstance(cfg.get("plugins"), str) else cfg.get("plugins") or []),
        *opts["plugins"],
    ]
    import_plugins(plugins)
    if not merged.get("methods"):
        raise click.UsageError("give --methods (comma list) or a --config file with `methods`")

    specs = specs_from_config(merged)
    backend_options = {
        k: merged[k]
        for k in ("address", "gpus_per_run", "cpus_per_run", "max_retries", "run_timeout")
        if merged.get(k) not in (None, "")
    }
    sw = Sweep(
        specs,
        out=merged["out"],
        backend=merged["backend"],
        jobs=int(merged["jobs"]),
        force=bool(merged["force"]),
        data_root=merged["data_root"],
        device=merged["device"],
        save_codes=bool(merged["save_codes"]),
        plugins=plugins,
        backend_options=backend_options,
    )
    out = err_console if opts["as_json"] else console
    if opts["dry_run"]:
        pending, skipped = sw.plan()
        done = {s.run_id for s in skipped}
        table = Table(title=f"{len(sw.specs)} run(s): {len(pending)} to run, {len(skipped)} done")
        for col in ("run_id", "method", "dataset", "bits", "noise", "seed", "preset", "state"):
            table.add_column(col)
        for s in sw.specs:
            noise = "invariant" if s.noise_invariant else f"{s.noise_model}@{s.noise_rate:g}"
            state = "done" if s.run_id in done else "to run"
            table.add_row(s.run_id, s.method, s.dataset, str(s.bits), noise, str(s.seed), s.preset, state)
        _wide(out).print(table)
        return

    progress = Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        disable=opts["as_json"] and not out.is_terminal,
    )
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    with progress:
        task = progress.add_task("sweep", total=len(sw.specs), status="")

        def on_event(ev: Any) -> None:
            if ev.kind == "skip":
                counts["skipped"] += 1
            elif ev.kind == "done" and ev.result is not None:
                counts["ok" if ev.result.status == "ok" else "failed"] += 1
                if ev.result.status != "ok":
                    progress.console.print(f"[red]failed[/] {ev.spec.label()}: {ev.result.error}", highlight=False)
            status = f"ok {counts['ok']} · failed {counts['failed']} · skipped {counts['skipped']}"
            if ev.kind == "start":
                status += f" · running {ev.spec.label()}"
            progress.update(task, completed=ev.done, status=status)

        summary = sw.run(progress=on_event)

    if opts["as_json"]:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)
    if summary.failed:
        sys.exit(1)


def _wide(con: Console) -> Console:
    """The console itself on a terminal; elsewhere (logs, CI) one that does not squeeze tables to 80 columns."""
    if con.is_terminal:
        return con
    return Console(file=con.file, width=200, no_color=con.no_color, highlight=False)


def _print_summary(summary: Any) -> None:
    rows = summary.runs
    if len(rows) > MAX_ROWS:
        rows = [r for r in rows if r["status"] == "failed"][:MAX_ROWS]
    if rows:
        table = Table(title="runs", title_justify="left")
        for col in ("run", "method", "dataset", "bits", "noise", "seed", "status", "s", "where"):
            table.add_column(col, no_wrap=True)
        table.add_column("error", overflow="fold")
        for r in rows:
            noise = "invariant" if r["noise_rate"] is None else f"{r['noise_rate']:g}"
            where = f"{r['host']}:{r['pid']}" if r.get("host") else ""
            style = {"ok": "green", "failed": "red"}.get(r["status"], "dim")
            secs = f"{r['seconds']:.1f}" if isinstance(r.get("seconds"), (int, float)) else ""
            table.add_row(
                r["run_id"][:8],
                r["method"],
                r["dataset"],
                str(r["bits"]),
                noise,
                str(r["seed"]),
                f"[{style}]{r['status']}[/]",
                secs,
                where,
                r.get("error") or "",
            )
        # Logs and CI output are not 80 columns wide: do not squeeze the table there.
        _wide(console).print(table)
    console.print(
        f"[bold]{summary.total}[/] run(s): [green]{summary.ok} ok[/], [red]{summary.failed} failed[/], "
        f"{summary.skipped} skipped (already done) in {summary.wall_s:.1f}s → {summary.out}",
        highlight=False,
    )
