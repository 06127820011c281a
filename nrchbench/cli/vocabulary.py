"""The command line's one flag vocabulary: every option of every command, in one table.

A concept has the same long and short flag in every command that takes it (``--method/-m``
is always a method, ``-d`` always a dataset option, ``--noise`` always a noise rate,
``--results`` always the results directory); a command that takes several values of an axis
takes a comma list under the same flag. Old spellings stay accepted as hidden aliases
(``sweep --methods``, ``run --out``, ``noise inspect --rate``), so existing scripts keep
working, but ``--help`` and the docs show only the vocabulary.

Commands declare their options with :func:`flag`, which reads the short flag and the hidden
aliases from :data:`VOCABULARY`; ``tests/test_cli_vocabulary.py`` walks every command and
checks it against this table, and ``docs/CLI.md`` carries :func:`markdown_table`'s output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

__all__ = ["ARGUMENTS", "VOCABULARY", "Flag", "VocabOption", "flag", "lookup", "markdown_table"]

SPEC = ("run", "sweep")
FILTERS = ("table", "plot")


@dataclass(frozen=True)
class Flag:
    """One concept: its long flag, short flag, meaning, the commands that take it, and per
    command the old spellings still accepted (hidden)."""

    long: str
    short: str | None
    meaning: str
    commands: tuple[str, ...]
    legacy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


VOCABULARY: tuple[Flag, ...] = (
    # --- what is run: the grid's axes (a comma list where a command takes several) ---
    Flag("--method", "-m", "method name(s)", (*SPEC, *FILTERS, "compare"), {"sweep": ("--methods",)}),
    Flag(
        "--dataset",
        None,
        "dataset name(s), alias(es) or generic-format directory",
        (*SPEC, *FILTERS, "compare", "noise inspect", "data info"),
        {"sweep": ("--datasets",)},
    ),
    Flag(
        "--dataset-option",
        "-d",
        "dataset loader option KEY=VALUE (repeatable)",
        (*SPEC, "noise inspect", "data info"),
        {"data info": ("-o", "--option")},
    ),
    Flag("--bits", None, "code length(s)", (*SPEC, *FILTERS)),
    Flag(
        "--noise-model",
        None,
        "noise model name(s)",
        (*SPEC, *FILTERS, "compare", "noise inspect"),
        {"noise inspect": ("-m",)},
    ),
    Flag("--noise", None, "noise rate(s)", (*SPEC, *FILTERS, "noise inspect"), {"noise inspect": ("--rate", "-r")}),
    Flag(
        "--seed",
        None,
        "seed(s) of the noise draw and of training",
        (*SPEC, "noise inspect"),
        {"sweep": ("--seeds",), "noise inspect": ("-s",)},
    ),
    Flag(
        "--strategy",
        None,
        "noise-robust training strategy (or strategies; reports: a filter)",
        (*SPEC, *FILTERS),
        {"sweep": ("--strategies",)},
    ),
    Flag(
        "--preset",
        None,
        "hyper-parameter preset (run/sweep: auto, paper, fast, tiny; reports: a filter)",
        (*SPEC, *FILTERS, "compare"),
    ),
    Flag(
        "--split",
        None,
        "split rule: nrch, random or official",
        (*SPEC, *FILTERS, "compare", "noise inspect", "data info"),
    ),
    Flag("--split-seed", None, "seed of the random split rule", ("noise inspect", "data info", "features extract")),
    Flag("--val-size", None, "rows carved from the database into val", (*SPEC, "data info")),
    Flag(
        "--param",
        "-p",
        "method (noise inspect: noise-model) parameter KEY=VALUE (repeatable)",
        (*SPEC, "noise inspect"),
    ),
    Flag("--strategy-param", None, "strategy parameter KEY=VALUE (repeatable)", SPEC),
    Flag("--feature-transform", None, "input transform: zscore, none, scale, l2", SPEC),
    Flag("--select", None, "model selection: last or val", SPEC),
    Flag("--val-every", None, "epochs between validations", SPEC),
    Flag("--zero-relevant", None, "queries without a relevant item: exclude or zero", (*SPEC, "evaluate")),
    Flag("--topk", None, "comma list of k for map@k, precision@k, recall@k", SPEC),
    Flag("--radius", None, "Hamming radius of hamming_precision/recall", SPEC),
    # --- where things are ---
    Flag("--data-root", None, "dataset root directory", (*SPEC, "noise inspect", "data info")),
    Flag(
        "--results",
        None,
        "results directory: where run/sweep write records and where the others read them",
        (*SPEC, "evaluate", *FILTERS, "compare"),
        {"run": ("--out",), "sweep": ("--out",)},
    ),
    Flag("--out-dir", None, "directory the figures are written to", ("plot",)),
    Flag("--output", "-o", "file the output is written to (default: stdout)", ("table", "compare")),
    Flag("--out", None, "dataset directory written", ("features extract",)),
    Flag(
        "--plugin",
        None,
        "module or .py file imported first (repeatable)",
        (*SPEC, "list", "noise inspect", "data info"),
    ),
    Flag("--device", None, "auto, cpu, cuda or cuda:<index>", (*SPEC, "features extract")),
    Flag("--save-codes", None, "keep the packed codes beside the record", SPEC),
    Flag("--json", None, "print JSON on stdout instead of a table", (*SPEC, "evaluate", "noise inspect", "data info")),
    # --- what a report shows ---
    Flag("--metric", None, "metric key (map, map_tie, map@<k>, ...)", (*FILTERS, "compare")),
    Flag("--direction", None, "retrieval direction: i2t, t2i, avg (all)", (*FILTERS, "compare")),
    Flag("--format", None, "output format: csv, latex, markdown", ("table", "compare")),
    Flag("--label", None, "display label METHOD=TEXT (repeatable)", FILTERS),
    Flag("--rows", None, "row axes of the table", ("table",)),
    Flag("--columns", None, "column axes of the table", ("table",)),
    Flag("--ci", None, "95% t-intervals instead of ± std", ("table",)),
    Flag("--robustness", None, "the robustness summary", ("table",)),
    Flag("--versus", None, "mark rows better/worse than a reference row (paired test)", ("table",)),
    Flag("--fit", None, "LaTeX width handling: none, resize, split", ("table",)),
    Flag("--width", None, "LaTeX split width in pt", ("table",)),
    Flag("--reference", None, "'paper' or a reference CSV", ("compare",)),
    Flag("--kind", None, "which plots", ("plot",)),
    Flag("--write", None, "store the recomputed metrics in the record", ("evaluate",)),
    # --- sweep execution ---
    Flag("--config", None, "sweep file (.toml/.yaml)", ("sweep",)),
    Flag("--jobs", "-j", "parallel runs", ("sweep",)),
    Flag("--force", None, "rerun specs that already have an ok record", ("sweep",)),
    Flag("--rerun-stale", None, "rerun specs whose ok record another code version made", ("sweep",)),
    Flag("--dry-run", None, "list the runs without running anything", ("sweep",)),
    Flag("--backend", None, "local or ray", ("sweep",)),
    Flag("--address", None, "Ray cluster address", ("sweep",)),
    Flag("--gpus-per-run", None, "GPUs per run (ray)", ("sweep",)),
    Flag("--cpus-per-run", None, "CPUs per run (ray)", ("sweep",)),
    Flag("--max-retries", None, "retries of a lost run (ray)", ("sweep",)),
    Flag("--run-timeout", None, "seconds before a run is cancelled (ray)", ("sweep",)),
    # --- feature extraction ---
    Flag("--images", None, "image directory or list file", ("features extract",)),
    Flag("--texts", None, "one text line per image, or TSV", ("features extract",)),
    Flag("--labels", None, "labels file", ("features extract",)),
    Flag("--model", None, "model directory or Hugging Face id", ("features extract",)),
    Flag("--text-model", None, "separate text model", ("features extract",)),
    Flag("--batch-size", None, "images per model call", ("features extract",)),
    Flag("--dtype", None, "compute dtype", ("features extract",)),
    Flag("--chunk-size", None, "rows per resumable chunk", ("features extract",)),
    Flag("--query", None, "stored split: query size", ("features extract",)),
    Flag("--train", None, "stored split: train size", ("features extract",)),
    Flag("--image-pooling", None, "pooling of a non-CLIP image model", ("features extract",)),
    Flag("--text-pooling", None, "pooling of a non-CLIP text model", ("features extract",)),
    Flag("--workers", None, "image-decoding threads", ("features extract",)),
    Flag("--ignore-unknown-ids", None, "skip rows whose id is not an image", ("features extract",)),
    Flag("--allow-download", None, "let transformers download missing models", ("features extract",)),
    Flag("--overwrite", None, "discard a previous extraction", ("features extract",)),
    # --- every command ---
    Flag("--verbose", "-v", "more log output (-v info, -vv debug)", ("nrchbench",)),
    Flag("--version", None, "print the version", ("nrchbench",)),
)

#: Positional arguments (command → metavar: meaning).
ARGUMENTS: dict[str, tuple[str, str]] = {
    "list": ("WHAT", "datasets, noise, methods or strategies (default: all)"),
    "evaluate": ("RUN", "a record path or run id"),
    "data info": ("DATASET", "the dataset, as a shorthand for --dataset"),
}

_BY_LONG = {f.long: f for f in VOCABULARY}


def lookup(long: str) -> Flag:
    """The vocabulary entry of ``long`` (a KeyError names the missing flag)."""
    return _BY_LONG[long]


class VocabOption(click.Option):
    """A click option whose old spellings (``legacy``) parse but stay out of ``--help``."""

    def __init__(self, param_decls: list[str], legacy: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.legacy = tuple(legacy)
        super().__init__([*param_decls, *self.legacy], **kwargs)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = [o for o in self.opts if o not in self.legacy]
        opts = self.opts
        self.opts = shown
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def flag(long: str, dest: str | None = None, *, command: str, **kwargs: Any) -> Callable[[Any], Any]:
    """``click.option`` for the vocabulary's ``long`` flag in ``command``: its short flag and the
    command's hidden old spellings come from :data:`VOCABULARY`."""
    f = lookup(long)
    if command not in f.commands:
        raise KeyError(f"{long} is not declared for {command!r} in nrchbench.cli.vocabulary.VOCABULARY")
    decls = [d for d in (f.short, long, dest) if d]
    return click.option(*decls, cls=VocabOption, legacy=f.legacy.get(command, ()), **kwargs)


def markdown_table() -> str:
    """The vocabulary as the Markdown table in ``docs/CLI.md``."""
    lines = ["| flag | short | meaning | commands | also accepted (hidden, old spelling) |", "|---|---|---|---|---|"]
    for f in VOCABULARY:
        old = "; ".join(f"{c}: {', '.join(f'`{o}`' for o in opts)}" for c, opts in f.legacy.items())
        short = f"`{f.short}`" if f.short else ""
        lines.append(f"| `{f.long}` | {short} | {f.meaning} | {', '.join(f.commands)} | {old} |")
    lines += ["", "| argument | command | meaning |", "|---|---|---|"]
    lines += [f"| `{meta}` | {cmd} | {meaning} |" for cmd, (meta, meaning) in ARGUMENTS.items()]
    return "\n".join(lines) + "\n"
