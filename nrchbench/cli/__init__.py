"""The ``nrchbench`` command line: a thin layer over the library.

Sub-commands live in their own modules and are imported only when invoked, so
``nrchbench --help`` stays fast and never breaks because of one broken part or plugin.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from nrchbench import __version__

# name → ("module:attribute", one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("nrchbench.cli.listing:list_cmd", "List registered datasets, noise models and methods."),
    "data": ("nrchbench.cli.data:data", "Inspect datasets (sizes, splits, chance level)."),
    "noise": ("nrchbench.cli.noise:noise", "Inspect label-noise models (realised-noise report)."),
    "run": ("nrchbench.cli.run:run", "Train one method on one dataset at one noise level and evaluate it."),
    "sweep": ("nrchbench.cli.sweep:sweep", "Run a grid of methods × datasets × bits × noise × seeds (resumable)."),
    "evaluate": ("nrchbench.cli.run:evaluate", "Recompute all metrics of a run from its saved codes."),
    "table": ("nrchbench.cli.report:table", "Leaderboard tables (CSV, LaTeX, Markdown) from result records."),
    "compare": ("nrchbench.cli.report:compare", "Our numbers beside a published reference (the NRCH paper)."),
    "plot": ("nrchbench.cli.report:plot", "Plots (PNG and PDF) from result records."),
    "features": ("nrchbench.cli.features:features", "Extract image/text features with transformers models."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        target, _short = COMMANDS[cmd_name]
        mod_name, attr = target.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            raise click.ClickException(f"command {cmd_name!r} is unavailable: {exc}") from exc
        cmd = getattr(mod, attr)
        self.commands[cmd_name] = cmd
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Describe sub-commands from the table: --help imports none of them.
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nrchbench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """nrchbench: cross-modal hashing under noisy labels, benchmarked reproducibly."""
    from nrchbench.cli.common import setup_logging

    setup_logging(verbose)
    ctx.ensure_object(dict)


def run_main(argv: list[str] | None = None) -> Any:
    """Entry point of the console script: user errors become one line and exit code 2."""
    from nrchbench.cli.common import handle_errors

    with handle_errors():
        return main.main(args=argv, prog_name="nrchbench", standalone_mode=True)
