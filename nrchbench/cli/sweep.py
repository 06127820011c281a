"""``nrchbench sweep``: a grid of runs, resumable, on local workers or Ray."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from nrchbench.cli.common import (
    UserErrorCommand,
    console,
    data_root_option,
    dataset_option_option,
    device_option,
    err_console,
    import_plugins,
    param_option,
    plugin_option,
    preset_option,
    results_option,
    spec_options,
    spec_options_values,
)
from nrchbench.cli.sweep_display import SweepDisplay
from nrchbench.cli.vocabulary import flag
from nrchbench.params import parse_key_values
from nrchbench.resultsdir import check_writable

MAX_ROWS = 60


def _opt(ctx: click.Context, cfg: dict[str, Any], name: str, value: Any) -> Any:
    """An option given on the command line wins over the sweep file, which wins over the default."""
    source = ctx.get_parameter_source(name)
    if source is not None and source.name == "COMMANDLINE":
        return value
    return cfg.get(name, value)


@click.command(cls=UserErrorCommand)
@flag("--method", "methods", command="sweep", default=None, help="Comma list of methods, e.g. nrch,dcmh,djsrh.")
@flag("--dataset", "datasets", command="sweep", default="synthetic", show_default=True, help="Comma list of datasets.")
@click.option("--bits", default="64", show_default=True, help="Comma list of code lengths.")
@click.option("--noise", default="0.8", show_default=True, help="Comma list of noise rates.")
@flag("--seed", "seeds", command="sweep", default="0", show_default=True, help="Comma list of seeds.")
@click.option(
    "--noise-model", "noise_models", default="one-swap", show_default=True, help="Comma list of noise models."
)
@flag(
    "--strategy",
    "strategies",
    command="sweep",
    default="none",
    show_default=True,
    help="Comma list of robust-training strategies.",
)
@preset_option()
@device_option()
@click.option("--split", default=None, help="Split rule (nrch, random, official); default: each dataset's own.")
@data_root_option()
@results_option("sweep")
@param_option("Hyper-parameter for every method that has it, or METHOD.KEY=VALUE for one (repeatable).", "sweep")
@plugin_option()
@dataset_option_option("Dataset loader option for every dataset, e.g. -d n=600 (repeatable).", "sweep")
@spec_options()
@click.option("--save-codes", is_flag=True, help="Keep the packed codes beside each record.")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Sweep file (.toml/.yaml).")
@flag("--jobs", command="sweep", type=int, default=1, show_default=True, help="Parallel runs.")
@click.option("--force", is_flag=True, help="Rerun specs that already have an ok record.")
@click.option(
    "--rerun-stale", is_flag=True, help="Rerun specs whose ok record another code version made (PROTOCOL §5)."
)
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
@click.option(
    "--dry-run",
    is_flag=True,
    help="List the runs (and which are done) without running anything; imports no plugin.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def sweep(ctx: click.Context, **opts: Any) -> None:
    """Run a grid of methods × datasets × bits × noise × seeds (resumable).

    Finished runs (a record with status ok under --results) are skipped unless --force; failed
    or missing ones run. A method that does not use labels runs once for all noise levels.
    Each run has its own process: one that dies is recorded failed and the sweep goes on.
    Sweeps started on the same --results (here or on hosts sharing the filesystem) split the work.

    A sweep file is as trusted as a script: its `plugins` key imports Python files, which run
    with your permissions. --dry-run imports none of them.

    Example: nrchbench sweep --method nrch,dcmh --bits 16,32 --noise 0.2,0.5,0.8 --seed 0,1,2 --jobs 2
    """
    from nrchbench.grid import load_sweep_file, specs_from_config

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
    if not merged.get("methods"):
        raise click.UsageError("give --method (comma list) or a --config file with `method`")
    out = err_console if opts["as_json"] else console
    if opts["dry_run"]:
        _dry_run(merged, plugins, out)
        return
    check_writable(merged["out"])
    import_plugins(plugins)
    sw = _make_sweep(merged, specs_from_config(merged), plugins)

    display = SweepDisplay(out, len(sw.specs), enabled=not (opts["as_json"] and not out.is_terminal))
    try:
        with display:
            summary = sw.run(progress=display.on_event)
    except KeyboardInterrupt:
        c = display.counts
        not_run = len(sw.specs) - c["ok"] - c["failed"] - c["skipped"]
        err_console.print(
            f"[bold]interrupted[/]: {c['ok'] + c['skipped']} done ({c['skipped']} before), {c['failed']} failed, "
            f"{not_run} not run; rerun the same command to resume",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(130)

    if opts["as_json"]:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)
    if summary.failed:
        sys.exit(1)


def _make_sweep(merged: dict[str, Any], specs: list[Any], plugins: list[str]) -> Any:
    from nrchbench.sweep import Sweep

    backend_options = {
        k: merged[k]
        for k in ("address", "gpus_per_run", "cpus_per_run", "max_retries", "run_timeout")
        if merged.get(k) not in (None, "")
    }
    return Sweep(
        specs,
        out=merged["out"],
        backend=merged["backend"],
        jobs=int(merged["jobs"]),
        force=bool(merged["force"]),
        rerun_stale=bool(merged.get("rerun_stale")),
        data_root=merged["data_root"],
        device=merged["device"],
        save_codes=bool(merged["save_codes"]),
        plugins=plugins,
        backend_options=backend_options,
    )


def _dry_run(merged: dict[str, Any], plugins: list[str], out: Console) -> None:
    """List the runs without importing any plugin: a method only a plugin would provide is
    listed as needing it (its runs cannot be resolved without importing it)."""
    from nrchbench.claims import Claims
    from nrchbench.errors import RegistryError
    from nrchbench.grid import specs_from_config
    from nrchbench.registry import METHODS

    methods = [m.strip() for m in _items(merged["methods"]) if m.strip()]
    missing = []
    if plugins:
        for m in methods:
            try:
                METHODS.canonical(m)
            except RegistryError:
                missing.append(m)
    known = [m for m in methods if m not in missing]
    params, unchecked = _params_of(merged.get("params") or {}, known) if missing else (merged.get("params"), [])
    try:
        specs = specs_from_config({**merged, "methods": known, "params": params}) if known else []
    except RegistryError as exc:
        if not plugins:
            raise
        raise RegistryError(f"{exc} (--dry-run imports no plugin; a plugin may provide it)") from None
    sw = _make_sweep(merged, specs, plugins)
    pending, skipped = sw.plan()
    done = {s.run_id for s in skipped}
    claims = Claims(sw.out)
    needs = f"needs plugin {', '.join(Path(p).name for p in plugins)}"
    title = f"{len(sw.specs)} run(s): {len(pending)} to run, {len(skipped)} done"
    if missing:
        title += f"; method(s) {', '.join(missing)} {needs} (not imported by --dry-run)"
    table = Table(title=title)
    for col in ("run_id", "method", "dataset", "bits", "noise", "seed", "preset", "state"):
        table.add_column(col)
    for s in sw.specs:
        noise = "invariant" if s.noise_invariant else f"{s.noise_model}@{s.noise_rate:g}"
        state = "done" if s.run_id in done else "to run"
        if s.run_id in sw.stale:  # an ok record another code version made (rerun with --rerun-stale)
            state += f" (made by {sw.stale[s.run_id]})"
        holder = claims.holder(s) if state == "to run" else None
        if holder is not None:
            state = f"running ({holder.describe()})"
        table.add_row(s.run_id, s.method, s.dataset, str(s.bits), noise, str(s.seed), s.preset, state)
    axes = [_items(merged[k]) for k in ("datasets", "bits", "noise_models", "noise", "seeds")]
    for m in missing:
        for d, b, nm, r, seed in itertools.product(*axes):
            table.add_row("—", m, str(d), str(b), f"{nm}@{r}", str(seed), str(merged["preset"]), needs)
    _wide(out).print(table)
    if unchecked:
        out.print(f"not checked (may belong to a plugin's method): {', '.join(unchecked)}", highlight=False)


def _items(value: Any) -> list[Any]:
    """A comma string, a scalar or a list → a list."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [w for v in value for w in _items(v)]
    return [] if value is None else [value]


def _params_of(params: dict[str, Any], methods: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The ``params`` that apply to ``methods`` (resolvable without plugins), and the others' keys."""
    from nrchbench.errors import RegistryError
    from nrchbench.methods import get_method_class
    from nrchbench.registry import METHODS

    def canonical(name: str) -> str | None:
        try:
            return METHODS.canonical(name)
        except RegistryError:
            return None

    canon = {canonical(m) for m in methods}
    defaults = [get_method_class(m).defaults for m in methods]
    kept, unchecked = {}, []
    for key, value in params.items():
        if isinstance(value, dict) or "." in key:
            ok = canonical(key if isinstance(value, dict) else key.split(".", 1)[0]) in canon
        else:
            ok = any(key in d for d in defaults)
        if ok:
            kept[key] = value
        else:
            unchecked.append(key)
    return kept, unchecked


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
        f"{summary.skipped} skipped (already done"
        + (f", {summary.elsewhere} of them by another sweep" if summary.elsewhere else "")
        + f") in {summary.wall_s:.1f}s → {summary.out}",
        highlight=False,
    )
    versions = ", ".join(f"{v} ({n})" for v, n in summary.stale_versions.items())
    if summary.stale:
        console.print(
            f"[yellow]{summary.stale} skipped record(s) were made by another code version[/] ({versions}); "
            "--rerun-stale reruns them",
            highlight=False,
        )
    if summary.stale_rerun:
        console.print(
            f"reran {summary.stale_rerun} record(s) made by another code version ({versions})", highlight=False
        )
