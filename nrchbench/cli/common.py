"""Shared CLI plumbing: rich console, logging, error handling, plugin import."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

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
