"""Shared CLI plumbing: rich console, logging, error handling, plugin import, common options."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler

from nrchbench.errors import NrchbenchError

console = Console(stderr=False)
err_console = Console(stderr=True)


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


def import_plugins(plugins: tuple[str, ...] | list[str]) -> None:
    """Import ``--plugin`` modules (a module name or a path to a ``.py`` file).

    Raises:
        NrchbenchError: if the plugin cannot be imported (with the reason).
    """
    for spec in plugins:
        try:
            if spec.endswith(".py") or Path(spec).is_file():
                path = Path(spec).resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                mod_name = f"nrchbench_plugin_{path.stem}"
                if mod_name in sys.modules:
                    continue
                s = importlib.util.spec_from_file_location(mod_name, path)
                assert s is not None and s.loader is not None
                mod = importlib.util.module_from_spec(s)
                sys.modules[mod_name] = mod
                s.loader.exec_module(mod)
            else:
                importlib.import_module(spec)
        except Exception as exc:
            raise NrchbenchError(f"--plugin {spec!r} could not be imported: {type(exc).__name__}: {exc}") from exc


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


def out_option() -> Decorator:
    """``--out``: the results directory, default ``results``."""
    return click.option("--out", default="results", show_default=True, help="Results directory.")


def param_option(help: str) -> Decorator:
    """``-p/--param KEY=VALUE`` (repeatable) into ``params``."""
    return click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help=help)


def plugin_option() -> Decorator:
    """``--plugin`` (repeatable) into ``plugins``."""
    return click.option("--plugin", "plugins", multiple=True, help="Module or .py file to import first (repeatable).")


def dataset_option_option(help: str) -> Decorator:
    """``-d/--dataset-option KEY=VALUE`` (repeatable) into ``dataset_options``."""
    return click.option("-d", "--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE", help=help)
