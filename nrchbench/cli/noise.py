"""``nrchbench noise``: inspect what a label-noise model does to a dataset's training labels."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from nrchbench.cli.common import UserErrorCommand, console, dataset_option_option, import_plugins
from nrchbench.cli.vocabulary import flag
from nrchbench.params import parse_key_values


@click.group("noise")
def noise() -> None:
    """Inspect noise models (realised-noise report)."""


def train_data(
    dataset: str,
    data_root: str | None,
    split: str | None,
    split_seed: int,
    *,
    features: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[Any, Any, str]:
    """The clean train labels of a dataset, its train features ``(image, text)`` when asked
    (``None`` otherwise), and a short description of where they came from."""
    from nrchbench.datasets import load_dataset

    ds = load_dataset(dataset, data_root=data_root, split=split, split_seed=split_seed, **(options or {}))
    train = ds.splits["train"]
    feats = (ds.image[train], ds.text[train]) if features else None
    rule = ds.meta.get("split_rule", split or "default")
    return ds.labels[train], feats, f"{ds.name} train ({rule} split)"


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
@flag(
    "--dataset",
    command="noise inspect",
    default=None,
    help="Dataset name (nrchbench list datasets) or a generic-format directory.  [required]",
)
@dataset_option_option("Dataset loader option, e.g. -d n=600 (repeatable).", "noise inspect")
@flag(
    "--noise-model",
    command="noise inspect",
    required=True,
    help="Noise model (nrchbench list noise: one-swap, symmetric, asymmetric, bitflip, instance, missing, pairs, plugins).",
)
@flag(
    "--noise",
    "rate",
    command="noise inspect",
    required=True,
    type=float,
    help="Noise rate in [0, 1] (bitflip: rho+; missing: fraction of positives).",
)
@flag("--seed", command="noise inspect", default=0, show_default=True, type=int, help="Noise seed.")
@click.option("--data-root", default=None, help="Directory holding <dataset>/ (else $NRCHBENCH_DATA, else ./datasets).")
@click.option("--split", default=None, help="Split rule: nrch, random or official [default: the dataset's].")
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the random split rule.")
@flag(
    "--param",
    "params",
    command="noise inspect",
    multiple=True,
    metavar="KEY=VALUE",
    help="Noise-model parameter (repeatable).",
)
@click.option("--plugin", "plugins", multiple=True, help="Import a plugin module or .py file first (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
def inspect(
    dataset: str | None,
    dataset_options: tuple[str, ...],
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
    """Apply a noise model to a dataset's training split and print the realised-noise report.

    Models that read features (instance) get the training features of the dataset; pairing
    models (pairs) report the mismatched pairs (the labels are untouched).
    """
    from nrchbench.noise import NOISE, check_params

    dataset, dataset_options = _legacy_dataset(dataset, dataset_options)
    options = parse_key_values(dataset_options, "--dataset-option")
    import_plugins(plugins)
    cls = NOISE.get(noise_model)
    given = check_params(noise_model, parse_key_values(params, "-p/--param"))  # before any data is read
    labels, feats, source = train_data(
        dataset, data_root, split, split_seed, features=cls.needs_features, options=options
    )
    out = cls(**given).apply(labels, rate, seed, features=feats)
    if as_json:
        console.print_json(json.dumps(out.report))
        return
    rep = out.report
    title = f"{rep['model']} noise at rate {rep['rate']:g} (seed {rep['seed']}) on {source}"
    console.print(report_table(rep, title))


def _legacy_dataset(dataset: str | None, options: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """``-d`` used to name the dataset here; it is ``--dataset-option`` now, as everywhere. A
    lone ``-d NAME`` without ``=`` while ``--dataset`` is missing is still read as the dataset."""
    if dataset is not None:
        return dataset, options
    names = [o for o in options if "=" not in o]
    if len(names) == 1:
        return names[0], tuple(o for o in options if o != names[0])
    raise click.UsageError("Missing option '--dataset'.")
