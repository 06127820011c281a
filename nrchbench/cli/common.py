"""Shared CLI plumbing: rich console, logging, error handling, plugin import, common options."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler

from nrchbench.cli.vocabulary import flag
from nrchbench.errors import NrchbenchError
from nrchbench.plugins import import_plugins

console = Console(stderr=False)
err_console = Console(stderr=True)

__all__ = ["console", "err_console", "handle_errors", "import_plugins", "setup_logging"]


def setup_logging(verbose: int = 0) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger("nrchbench")
    root.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        root.addHandler(RichHandler(console=err_console, show_path=False, markup=False))
    root.propagate = False


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn :class:`NrchbenchError` into ``Error: <one line>`` on stderr and exit code 2."""
    try:
        yield
    except NrchbenchError as exc:
        err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


class UserError(click.ClickException):
    """A :class:`NrchbenchError` as click shows it: ``Error: <one line>``, exit code 2."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UserErrorCommand(click.Command):
    """A click command that renders :class:`NrchbenchError` as one line (for CliRunner too)."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except NrchbenchError as exc:
            raise UserError(str(exc), exc.exit_code) from exc


# --------------------------------------------------------------------------- options
# Options that ``run`` and ``sweep`` (and ``features extract``) share. Each factory returns a
# fresh click decorator; where the commands word the help differently it is an argument.
Decorator = Callable[[Any], Any]


def preset_option(help: str | None = None) -> Decorator:
    """``--preset`` auto|paper|fast|tiny, default auto."""
    return click.option(
        "--preset",
        type=click.Choice(["auto", "paper", "fast", "tiny"]),
        default="auto",
        show_default=True,
        help=help,
    )


def device_option() -> Decorator:
    """``--device``, default auto."""
    return click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:<index>.")


def data_root_option() -> Decorator:
    """``--data-root``, default None (then $NRCHBENCH_DATA, else ./datasets)."""
    return click.option("--data-root", default=None, help="Dataset root (default: $NRCHBENCH_DATA, else ./datasets).")


def results_option(command: str) -> Decorator:
    """``--results`` (old spelling ``--out``, hidden) into ``out``: the results directory written."""
    return flag(
        "--results",
        "out",
        command=command,
        default="results",
        show_default=True,
        help="Results directory the record(s) go to (runs/<dataset>/<method>/<run_id>.json); read it with "
        "`nrchbench table --results DIR`.",
    )


def param_option(help: str, command: str) -> Decorator:
    """``-p/--param KEY=VALUE`` (repeatable) into ``params``."""
    return flag("--param", "params", command=command, multiple=True, metavar="KEY=VALUE", help=help)


def plugin_option() -> Decorator:
    """``--plugin`` (repeatable) into ``plugins``."""
    return click.option("--plugin", "plugins", multiple=True, help="Module or .py file to import first (repeatable).")


def dataset_option_option(help: str, command: str) -> Decorator:
    """``-d/--dataset-option KEY=VALUE`` (repeatable) into ``dataset_options``."""
    return flag("--dataset-option", "dataset_options", command=command, multiple=True, metavar="KEY=VALUE", help=help)


def spec_options() -> Decorator:
    """The protocol options every run spec takes beyond the grid: feature transform, model
    selection, validation split, zero-relevant policy, robust-training strategy."""

    def deco(f: Any) -> Any:
        opts = [
            click.option(
                "--feature-transform",
                default="zscore",
                show_default=True,
                help="Input transform of both modalities, statistics from the training split: zscore, none (as given), scale, l2.",
            ),
            click.option(
                "--select",
                "selection",
                type=click.Choice(["last", "val"]),
                default="last",
                show_default=True,
                help="Model selection: the last epoch, or the best epoch on the val split (needs --val-size).",
            ),
            click.option(
                "--val-size", type=int, default=0, show_default=True, help="Rows carved from the database into val."
            ),
            click.option("--val-every", type=int, default=1, show_default=True, help="Epochs between validations."),
            click.option(
                "--zero-relevant",
                type=click.Choice(["exclude", "zero"]),
                default="exclude",
                show_default=True,
                help="Queries without a relevant item: excluded from the means (NRCH) or counted as 0 (DCMH).",
            ),
            click.option(
                "--topk",
                default=None,
                help="Comma list of k for map@k, precision@k, recall@k [default: 50,100,1000,5000, or the dataset's].",
            ),
            click.option(
                "--radius", type=int, default=2, show_default=True, help="Hamming radius of hamming_precision/recall."
            ),
            click.option(
                "--strategy-param",
                "strategy_params",
                multiple=True,
                metavar="KEY=VALUE",
                help="Parameter of the robust-training strategy (repeatable).",
            ),
        ]
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco


def spec_options_values(opts: dict[str, Any]) -> dict[str, Any]:
    """The :func:`spec_options` values as :func:`nrchbench.spec.resolve_spec` arguments."""
    from nrchbench.params import parse_key_values

    out = {
        k: opts[k]
        for k in (
            "feature_transform",
            "selection",
            "val_size",
            "val_every",
            "zero_relevant",
            "strategy",
            "topk",
            "radius",
        )
        if k in opts
    }
    if "strategy_params" in opts:
        out["strategy_params"] = parse_key_values(opts["strategy_params"], "--strategy-param")
    return out
