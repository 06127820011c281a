"""``nrchbench noise``: inspect what a label-noise model does to a dataset's training labels."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from nrchbench.cli.common import UserErrorCommand, console, import_plugins
from nrchbench.errors import ConfigError


@click.group("noise")
def noise() -> None:
    """Inspect label-noise models (realised-noise report)."""


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` strings → dict; values are JSON when they parse (numbers, lists, null), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p/--param expects key=value, got {item!r} (e.g. -p rho_neg=0.01)")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def train_labels(dataset: str, data_root: str | None, split: str | None, split_seed: int) -> tuple[Any, str]:
    """The clean train labels of a dataset and a short description of where they came from."""
    from nrchbench.datasets import load_dataset

    ds = load_dataset(dataset, data_root=data_root, split=split, split_seed=split_seed)
    labels = ds.labels[ds.splits["train"]]
    rule = ds.meta.get("split_rule", split or "default")
    return labels, f"{ds.name} train ({rule} split)"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def report_table(report: dict[str, Any], title: str) -> Table:
    """The realised-noise report as a two-column rich table (parameters expanded)."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right", overflow="fold")
    for key, value in report.items():
        if key == "params":
            for pk, pv in value.items():
                table.add_row(f"param {pk}", _fmt(pv))
        elif key == "frac_pairs_changed" and report.get("pairs_estimated"):
            se = report.get("frac_pairs_changed_se", 0.0)
            table.add_row(key, f"{value:.6g} ± {se:.2g} (estimated)")
        else:
            table.add_row(key, _fmt(value))
    return table


@noise.command("inspect", cls=UserErrorCommand)
@click.option(
    "--dataset", "-d", required=True, help="Dataset name (nrchbench list datasets) or a generic-format directory."
)
@click.option(
    "--noise-model", "-m", required=True, help="Noise model (nrch, symmetric, asymmetric, bitflip or a plugin)."
)
@click.option("--rate", "-r", required=True, type=float, help="Noise rate in [0, 1] (bitflip: rho+).")
@click.option("--seed", "-s", default=0, show_default=True, type=int, help="Noise seed.")
@click.option("--data-root", default=None, help="Directory holding <dataset>/ (else $NRCHBENCH_DATA, else ./datasets).")
@click.option("--split", default=None, help="Split rule: nrch, random or official [default: the dataset's].")
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the random split rule.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Noise-model parameter (repeatable).")
@click.option("--plugin", "plugins", multiple=True, help="Import a plugin module or .py file first (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
def inspect(
    dataset: str,
    noise_model: str,
    rate: float,
    seed: int,
    data_root: str | None,
    split: str | None,
    split_seed: int,
    params: tuple[str, ...],
    plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Apply a noise model to a dataset's train labels and print the realised-noise report."""
    from nrchbench.noise import apply

    import_plugins(plugins)
    kwargs = parse_params(params)
    labels, source = train_labels(dataset, data_root, split, split_seed)
    out = apply(noise_model, labels, rate, seed, **kwargs)
    if as_json:
        console.print_json(json.dumps(out.report))
        return
    rep = out.report
    title = f"{rep['model']} noise at rate {rep['rate']:g} (seed {rep['seed']}) on {source}"
    console.print(report_table(rep, title))
