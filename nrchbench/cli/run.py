"""``nrchbench run`` (one run → one record) and ``nrchbench evaluate`` (metrics from saved codes)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
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
from nrchbench.cli.vocabulary import flag
from nrchbench.errors import ConfigError
from nrchbench.params import parse_key_values

DIRECTION_LABELS = (("i2t", "I2T"), ("t2i", "T2I"), ("avg", "avg"))


def _metric_order(keys: list[str]) -> list[str]:
    def rank(k: str) -> tuple[int, int, str]:
        for i, prefix in enumerate(
            ("map", "map_tie", "map@", "precision@", "recall@", "hamming_precision@", "hamming_recall@", "chance")
        ):
            if k == prefix or (prefix.endswith("@") and k.startswith(prefix)):
                num = k.split("@", 1)[1] if "@" in k else "0"
                return (i, int(num) if num.isdigit() else 0, k)
        return (9, 0, k)

    return sorted(keys, key=rank)


def metrics_table(metrics: Mapping[str, Any], history: list[Mapping[str, Any]] | None = None, title: str = "") -> Table:
    """Rows = metrics (map, map_tie, map@k, precision@k, recall@k, within-radius, chance), columns = I2T / T2I / avg."""
    table = Table(title=title or None, title_justify="left")
    table.add_column("metric")
    for _key, label in DIRECTION_LABELS:
        table.add_column(label, justify="right")
    prefixes = ("map@", "precision@", "recall@", "hamming_precision@", "hamming_recall@")
    shown = [k for k in metrics.get("avg", {}) if k in ("map", "map_tie", "chance") or k.startswith(prefixes)]
    for k in _metric_order(shown):
        cells = []
        for d, _label in DIRECTION_LABELS:
            v = metrics.get(d, {}).get(k)
            cells.append(f"{v:.4f}" if isinstance(v, (int, float)) else "–")
        table.add_row(k, *cells)
    last = next((h for h in reversed(history or []) if h.get("sel_precision") is not None), None)
    if last is not None:
        for key, label in (("sel_precision", "selection precision"), ("sel_recall", "selection recall")):
            v = last.get(key)
            table.add_row(label, "", "", f"{v:.4f}" if isinstance(v, (int, float)) else "–")
    return table


class EpochProgress:
    """A rich progress bar over epochs, fed by the runner's ``progress`` callback."""

    def __init__(self, console_: Console, description: str, enabled: bool = True, epochs: int | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[logs]}"),
            console=console_,
            transient=False,
            disable=not enabled,
        )
        self.description = description
        self.task: Any = None
        self.count = 0
        self.epochs = epochs

    def __enter__(self) -> EpochProgress:
        self.progress.__enter__()
        if self.epochs:  # "epoch 0/E" from the start, not a blank line through the first epoch
            self.task = self.progress.add_task(self.description, total=max(self.epochs, 1), logs="")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, epoch: int, total: int, logs: Mapping[str, Any]) -> None:
        self.count += 1
        if self.task is None:
            self.task = self.progress.add_task(self.description, total=max(total, 1), logs="")
        shown = []
        for key, short in (("loss", "loss"), ("selected_fraction", "sel"), ("sel_precision", "prec")):
            v = logs.get(key)
            if isinstance(v, (int, float)):
                shown.append(f"{short}={v:.3g}")
        self.progress.update(
            self.task, completed=min(self.count, max(total, 1)), total=max(total, 1), logs=" ".join(shown)
        )


@click.command(cls=UserErrorCommand)
@flag("--method", command="run", required=True, help="Method registry name (see `nrchbench list methods`).")
@click.option("--dataset", default="synthetic", show_default=True, help="Dataset name, alias or directory.")
@click.option("--noise", "noise", type=float, default=0.8, show_default=True, help="Noise rate.")
@click.option("--noise-model", default="one-swap", show_default=True, help="Noise model (see `nrchbench list noise`).")
@click.option("--bits", type=int, default=64, show_default=True, help="Code length.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise draw and of training.")
@preset_option("Hyper-parameter preset; auto = paper on CUDA, fast on CPU.")
@device_option()
@click.option("--split", default=None, help="Split rule (nrch, random, official); default: the dataset's own.")
@data_root_option()
@results_option("run")
@param_option("Method hyper-parameter (repeatable).", "run")
@plugin_option()
@dataset_option_option("Dataset loader option, e.g. -d n=600 for a small synthetic set (repeatable).", "run")
@click.option(
    "--strategy",
    default="none",
    show_default=True,
    help="Noise-robust training strategy (see `nrchbench list strategies`).",
)
@spec_options()
@click.option("--save-codes", is_flag=True, help="Keep the packed codes beside the record (for `evaluate`).")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON on stdout (and nothing else there).")
def run(
    method: str,
    dataset: str,
    noise: float,
    noise_model: str,
    bits: int,
    seed: int,
    preset: str,
    device: str,
    split: str | None,
    data_root: str | None,
    out: str,
    params: tuple[str, ...],
    plugins: tuple[str, ...],
    dataset_options: tuple[str, ...],
    save_codes: bool,
    as_json: bool,
    **spec_opts: Any,
) -> None:
    """Train one method on one dataset at one noise level, evaluate it and write its record.

    Example: nrchbench run --method nrch --noise 0.5 --bits 32 --preset fast
    """
    from nrchbench.provenance import code_version, short
    from nrchbench.records import find_record, record_path
    from nrchbench.resultsdir import check_writable

    check_writable(out)  # before any work: an unwritable --results is one line, exit 2
    from nrchbench.runner import run_safe
    from nrchbench.spec import resolve_spec

    import_plugins(plugins)
    spec = resolve_spec(
        method,
        dataset,
        bits,
        noise_model,
        noise,
        seed=seed,
        preset=preset,
        params=parse_key_values(params, "--param"),
        split=split,
        dataset_options=parse_key_values(dataset_options, "--dataset-option"),
        device=device,
        **spec_options_values(spec_opts),
    )
    out_console = err_console if as_json else console
    if not as_json:
        console.print(
            f"[bold]{spec.label()}[/] preset={spec.preset} device={spec.device} run_id={spec.run_id}",
            highlight=False,
            soft_wrap=True,
        )
    previous = find_record(out, spec)
    # the file's identity before the run: two runs can end within the second `created` resolves
    before = _stamp(record_path(out, previous)) if previous is not None else None
    epochs = spec.resolved_params.get("epochs")
    enabled = out_console.is_terminal or not as_json
    with EpochProgress(out_console, spec.method, enabled, epochs if isinstance(epochs, int) else None) as bar:
        record = run_safe(
            spec, data_root=data_root, save_codes=save_codes, out=out, progress=bar, record_input_errors=False
        )
    path = record_path(out, record)
    if previous is not None and path.is_file() and _stamp(path) != before:
        old_v, new_v = short(code_version(previous.env)), short(code_version(record.env))
        err_console.print(
            f"replaced the existing record of run {spec.run_id} ({previous.status}, created {previous.created}, "
            f"code version {old_v}" + (")" if old_v == new_v else f"; this run: {new_v})"),
            highlight=False,
            soft_wrap=True,
        )
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
    elif record.status == "ok":
        console.print(
            metrics_table(record.metrics, record.to_dict()["history"], title=f"{spec.method} on {spec.dataset}")
        )
        t = record.timing
        console.print(
            f"fit {t.get('fit', 0):.1f}s, total {t.get('total', 0):.1f}s; record: {path}",
            highlight=False,
            soft_wrap=True,
        )
    if record.status != "ok":
        err_console.print(f"[bold red]Run failed:[/] {record.error} (record: {path})", highlight=False, soft_wrap=True)
        sys.exit(1)


@click.command(cls=UserErrorCommand)
@click.argument("run_ref", metavar="RUN")
@click.option("--results", default="results", show_default=True, help="Results directory to look a run id up in.")
@click.option(
    "--zero-relevant",
    type=click.Choice(["exclude", "zero"]),
    default=None,
    help="Queries without relevant items: exclude them from the means (NRCH) or count them as 0 "
    "(DCMH/DJSRH code). Default: the run's own policy.",
)
@click.option("--write", is_flag=True, help="Store the recomputed metrics in the record.")
@click.option("--json", "as_json", is_flag=True, help="Print the recomputed metrics as JSON on stdout.")
def evaluate(run_ref: str, results: str, zero_relevant: str | None, write: bool, as_json: bool) -> None:
    """Recompute all metrics of RUN (a record path or run id) from its saved codes."""
    from nrchbench.jsonutil import to_jsonable
    from nrchbench.metrics import evaluate_cross_modal, load_codes
    from nrchbench.records import locate_record, read_record
    from nrchbench.utils import atomic_write_json

    path = locate_record(run_ref, results)
    record = read_record(path)
    if not record.codes:
        raise ConfigError(f"run {record.run_id} has no saved codes; rerun it with --save-codes to evaluate it again")
    codes = Path(path).with_name(record.codes)
    evaluation = record.evaluation or {}  # the run's policy and metric options (null in migrated v1 records)
    recorded = evaluation.get("zero_relevant") or record.spec.zero_relevant
    policy = zero_relevant or recorded
    if write and policy != recorded:
        raise ConfigError(
            f"--write: run {record.run_id} was evaluated with zero_relevant={recorded}, and the policy is part "
            f"of a run's identity; drop --write to print the metrics under {policy}, or run the spec with it"
        )
    options = {k: evaluation[k] for k in ("topk", "radius", "curve_k") if k in evaluation}
    metrics = to_jsonable(evaluate_cross_modal(**load_codes(codes), zero_relevant=policy, **options))
    changed = _differences(record.metrics, metrics)
    history = record.to_dict()["history"]
    if write:
        record = record.model_copy(update={"metrics": metrics})
        atomic_write_json(path, record.to_dict())
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    console.print(metrics_table(metrics, history, title=f"{record.run_id} (recomputed from {codes.name})"))
    if changed:
        console.print(f"[yellow]differs from the record in {len(changed)} value(s):[/] {', '.join(changed[:8])}")
    else:
        console.print("identical to the metrics in the record")
    if write:
        console.print(f"updated {path}")


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], tol: float = 1e-9) -> list[str]:
    diffs = []
    for d in ("i2t", "t2i", "avg"):
        for k, v in (new.get(d) or {}).items():
            w = (old.get(d) or {}).get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if not isinstance(w, (int, float)) or abs(float(v) - float(w)) > tol:
                    diffs.append(f"{d}.{k}")
    return diffs


def _stamp(path: Any) -> tuple[int, int] | None:
    """(inode, mtime in ns) of a file, None if absent: an atomic rewrite changes both."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns
