"""``nrchbench data``: inspect datasets (sizes, dimensionalities, labels, splits, chance level)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from nrchbench.cli.common import UserErrorCommand, console, dataset_option_option, import_plugins
from nrchbench.params import parse_key_values


@click.group("data")
def data() -> None:
    """Inspect datasets (sizes, splits, chance level)."""


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "—"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def info_table(info: dict[str, Any]) -> Table:
    """``dataset_info`` as a two-column rich table."""
    table = Table(title=f"dataset {info['dataset']}", show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right", overflow="fold")
    table.add_row("version", _num(info.get("version")))
    table.add_row("pairs (rows)", _num(info["n"]))
    table.add_row("image dim", _num(info["image_dim"]))
    table.add_row("text dim", _num(info["text_dim"]))
    table.add_row("classes", _num(info["num_classes"]))
    table.add_row("multi-label", _num(info["multi_label"]))
    table.add_row(
        "labels per row (mean, min–max)",
        f"{info['label_cardinality_mean']:.3f}, {info['label_cardinality_min']}–{info['label_cardinality_max']}",
    )
    table.add_row("rows without labels", _num(info["rows_without_labels"]))
    table.add_row("split rule (seed)", f"{info['split_rule']} ({info['split_seed']})")
    for name, size in info["sizes"].items():
        table.add_row(f"  {name}", _num(size))
    table.add_row("split checksum", _num(info.get("split_checksum")))
    table.add_row("chance mAP (query vs database)", _num(info["chance_map"]))
    if info.get("num_queries_no_relevant"):
        table.add_row("queries without relevant items", _num(info["num_queries_no_relevant"]))
    return table


@data.command("info", cls=UserErrorCommand)
@click.argument("dataset_arg", metavar="[DATASET]", required=False)
@click.option("--dataset", default=None, help="Dataset name or alias (nrchbench list datasets), or a directory.")
@click.option("--data-root", default=None, help="Directory holding <dataset>/ (else $NRCHBENCH_DATA, else ./datasets).")
@click.option("--split", default=None, help="Split rule: nrch, random or official (default: the dataset's own).")
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the random rule and of val.")
@click.option("--val-size", default=0, show_default=True, type=int, help="Rows carved from the database into val.")
@dataset_option_option("Dataset loader option, e.g. -d n=600 (repeatable).", "data info")
@click.option("--plugin", "plugins", multiple=True, help="Import a plugin module or .py file first (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table.")
def info(
    dataset_arg: str | None,
    dataset: str | None,
    data_root: str | None,
    split: str | None,
    split_seed: int,
    val_size: int,
    dataset_options: tuple[str, ...],
    plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Sizes, dimensionalities, label cardinality, split sizes and chance-level mAP of DATASET.

    DATASET (or --dataset) is a registered name or alias (nrchbench list datasets) or a
    directory in the generic format.
    """
    from nrchbench.datasets import dataset_info, load_dataset

    if dataset_arg is not None and dataset is not None and dataset_arg != dataset:
        raise click.UsageError(f"two datasets given: {dataset_arg!r} and --dataset {dataset!r}; give one")
    dataset = dataset or dataset_arg
    if dataset is None:
        raise click.UsageError("Missing the dataset: nrchbench data info DATASET (or --dataset DATASET).")
    import_plugins(plugins)
    opts = parse_key_values(dataset_options, "--dataset-option")
    ds = load_dataset(dataset, data_root=data_root, split=split, split_seed=split_seed, val_size=val_size, **opts)
    summary = dataset_info(ds)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    console.print(info_table(summary))
    sizes = " · ".join(f"{k} {v:,}" for k, v in summary["sizes"].items())
    console.print(f"{summary['dataset']} ({summary['split_rule']} split): {sizes}", highlight=False)
