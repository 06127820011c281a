"""``nrchbench features``: turn raw images and texts into a dataset the suite can benchmark."""

from __future__ import annotations

import click

from nrchbench.cli.common import UserErrorCommand, console, device_option, err_console


@click.group("features")
def features() -> None:
    """Extract image/text features with transformers models."""


@features.command("extract", cls=UserErrorCommand)
@click.option(
    "--images", required=True, help="Directory of images (recursive, natural sort) or a list file (one path per line)."
)
@click.option(
    "--texts",
    required=True,
    type=click.Path(dir_okay=False),
    help="One caption/tag line per image, or TSV 'image_id<TAB>text'.",
)
@click.option(
    "--labels",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV/TSV 'image_id,label1;label2' (or one row per pair), a 0/1 matrix (.txt/.csv/.npy).",
)
@click.option(
    "--model", required=True, help="Local model directory or Hugging Face id (CLIP-family gives both towers)."
)
@click.option(
    "--text-model", default=None, help="Separate text model (e.g. BERT); the image tower then comes from --model."
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Output dataset directory (data.h5, manifest.json)."
)
@device_option()
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Images per model call.")
@click.option(
    "--dtype",
    type=click.Choice(["float16", "bfloat16", "float32"]),
    default=None,
    help="Compute dtype [default: float16 on CUDA, float32 on CPU]; stored features are float32.",
)
@click.option(
    "--chunk-size",
    default=4096,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows per resumable chunk written to disk.",
)
@click.option(
    "--split-seed", default=None, type=int, help="Seed of the stored random split (with --query/--train; default 0)."
)
@click.option("--query", default=None, type=click.IntRange(min=1), help="Store a split: query size (with --train).")
@click.option(
    "--train",
    default=None,
    type=click.IntRange(min=1),
    help="Store a split: train size (train ⊂ database = all non-query rows).",
)
@click.option(
    "--image-pooling",
    type=click.Choice(["auto", "pooler", "cls", "mean"]),
    default="auto",
    show_default=True,
    help="Pooling of a non-CLIP image model (auto: pooler_output, else CLS).",
)
@click.option(
    "--text-pooling",
    type=click.Choice(["auto", "mean", "cls", "pooler"]),
    default="auto",
    show_default=True,
    help="Pooling of a non-CLIP text model (auto: mean over the attention mask).",
)
@click.option(
    "--workers", default=None, type=click.IntRange(min=1), help="Threads decoding images [default: min(8, CPUs)]."
)
@click.option("--ignore-unknown-ids", is_flag=True, help="Skip text/label rows whose id is not among the images.")
@click.option(
    "--allow-download", is_flag=True, help="Let transformers download missing models (default: offline only)."
)
@click.option("--overwrite", is_flag=True, help="Discard a previous extraction in --out instead of resuming it.")
def extract(
    images: str,
    texts: str,
    labels: str,
    model: str,
    text_model: str | None,
    out: str,
    device: str,
    batch_size: int,
    dtype: str | None,
    chunk_size: int,
    split_seed: int | None,
    query: int | None,
    train: int | None,
    image_pooling: str,
    text_pooling: str,
    workers: int | None,
    ignore_unknown_ids: bool,
    allow_download: bool,
    overwrite: bool,
) -> None:
    """Encode paired images and texts; write a dataset that `--dataset OUT` loads.

    An interrupted extraction resumes from its last finished chunk when rerun with the
    same arguments.
    """
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from nrchbench.features import extract_features

    bar = Progress(
        TextColumn("[bold]extract[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
    )
    task = bar.add_task("extract", total=None, rate="")
    state = {"t0": 0.0, "start": 0}

    def progress(done: int, total: int, stage: str) -> None:
        # The bar appears once inputs and models are loaded, so early errors stay one line.
        if stage == "start":
            state["t0"], state["start"] = time.perf_counter(), done
            bar.reset(task, total=total, completed=done)  # elapsed/ETA from here, not from model loading
            bar.start()
            return
        dt = time.perf_counter() - state["t0"]
        rate = (done - state["start"]) / dt if dt > 0 else 0.0
        bar.update(task, completed=done, rate=f"{rate:.1f} img/s")

    _quiet_transformers()
    try:
        result = extract_features(
            images,
            texts,
            labels,
            model,
            out,
            text_model=text_model,
            device=device,
            batch_size=batch_size,
            dtype=dtype,
            chunk_size=chunk_size,
            split_seed=split_seed,
            query=query,
            train=train,
            image_pooling=image_pooling,
            text_pooling=text_pooling,
            ignore_unknown_ids=ignore_unknown_ids,
            allow_download=allow_download,
            overwrite=overwrite,
            workers=workers,
            progress=progress,
        )
    except KeyboardInterrupt:
        bar.stop()
        err_console.print(f"interrupted: finished chunks are kept in {out}; rerun the same command to resume")
        raise SystemExit(130) from None
    finally:
        bar.stop()
    if result.rows_computed == 0 and result.resumed_from == result.n:
        console.print(f"{result.out}: already complete ({result.n} rows); use --overwrite to recompute")
        return
    resumed = f", resumed at row {result.resumed_from}" if result.resumed_from else ""
    console.print(
        f"wrote {result.out}/data.h5: {result.n} rows, image dim {result.image_dim}, text dim {result.text_dim}, "
        f"{result.num_classes} classes ({result.images_per_second:.1f} images/s{resumed})"
    )
    console.print(f"benchmark it with: nrchbench run --dataset {result.out} ...", highlight=False)


def _quiet_transformers() -> None:
    """Our progress bar replaces transformers' own bars; its warnings show with -v."""
    import logging

    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # reported by extract_features with the install hint
        return
    hf_logging.disable_progress_bar()
    if logging.getLogger("nrchbench").getEffectiveLevel() > logging.INFO:
        hf_logging.set_verbosity_error()
