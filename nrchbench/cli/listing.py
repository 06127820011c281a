"""``nrchbench list``: what the registries hold (built-ins and installed plugins)."""

from __future__ import annotations

import importlib
import warnings

import click
from rich.table import Table

from nrchbench.cli.common import console, err_console, import_plugins

# what the user may type → (canonical kind, package that registers the built-ins)
_KINDS = {
    "datasets": "datasets",
    "dataset": "datasets",
    "noise": "noise",
    "noise-models": "noise",
    "methods": "methods",
    "method": "methods",
    "strategies": "strategies",
    "strategy": "strategies",
}
_PACKAGES = {
    "datasets": "nrchbench.datasets",
    "noise": "nrchbench.noise",
    "methods": "nrchbench.methods",
    "strategies": "nrchbench.strategies",
}
_TITLES = {"datasets": "datasets", "noise": "noise models", "methods": "methods", "strategies": "strategies"}


def registry_rows(kind: str) -> list[dict[str, str]]:
    """``Registry.describe()`` rows for one kind; import failures become warnings, never errors.

    The built-ins are entry points of the installed distribution, described from their source
    without importing them (torch stays out); without that metadata (nrchbench not installed)
    the package is imported so that its decorators register them."""
    from nrchbench import registry

    reg = {
        "datasets": registry.DATASETS,
        "noise": registry.NOISE,
        "methods": registry.METHODS,
        "strategies": registry.STRATEGIES,
    }[kind]
    if not reg.names():
        try:
            importlib.import_module(_PACKAGES[kind])
        except Exception as exc:  # a broken part must not break the listing of the others
            warnings.warn(f"{_PACKAGES[kind]} failed to import: {type(exc).__name__}: {exc}", stacklevel=2)
    return reg.describe()


def rows_table(kind: str, rows: list[dict[str, str]]) -> Table:
    table = Table(title=_TITLES[kind], show_header=True, header_style="bold", title_justify="left")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("aliases")
    table.add_column("description", overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["aliases"], row["description"])
    if not rows:
        table.add_row("—", "", "(none registered)")
    return table


@click.command("list")
@click.argument("what", required=False, type=click.Choice(sorted(_KINDS), case_sensitive=False))
@click.option("--plugin", "plugins", multiple=True, help="Import a plugin module or .py file first (repeatable).")
def list_cmd(what: str | None, plugins: tuple[str, ...]) -> None:
    """List registered datasets, noise models, methods and strategies (WHAT: one of them; default all)."""
    from nrchbench.cli.common import handle_errors

    with handle_errors():
        import_plugins(plugins)
    kinds = [_KINDS[what.lower()]] if what else ["datasets", "noise", "methods", "strategies"]
    for kind in kinds:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = registry_rows(kind)
        for w in caught:
            err_console.print(f"[yellow]Warning:[/] {w.message}", highlight=False, soft_wrap=True)
        console.print(rows_table(kind, rows))
