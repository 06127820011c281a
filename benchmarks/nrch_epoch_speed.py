"""Seconds per NRCH epoch, and the share spent in the noise separator, per preset and dataset.

Usage: ``python benchmarks/nrch_epoch_speed.py [--data-root /work/shared/data] [--threads 2]``

For each dataset (``synthetic``: 5,000 train rows, 512-d image, 1,000-word text, 24
classes; ``wiki``: 2,173 train rows, 128-d / 10-d, 10 classes, if found under the data
root) and preset (``fast``; ``paper`` = 8,192-unit layers), trains ``nrch`` at 64 bits on
labels with 50% ``nrch`` pair-flip noise for a few epochs (``--epochs-fast``, default 3;
``--epochs-paper``, default 2) and prints the mean wall seconds per epoch, split into the
training steps, the per-sample-loss pass and the GMM fit (the sum of the logged phase
times; "setup" is the network construction before the first epoch). The measured epochs are warm-up
epochs (every row trains), so "train" is the per-epoch upper bound; the DNS pass runs in
every epoch, as in the official code. "full run" extrapolates to the preset's epoch count.

``--full`` also trains every variant (``nrch``, ``nrch-nogmm``, ``nrch-nodns``) for the
preset's full epoch count and prints the wall time, mAP@all I2T/T2I (query vs database) and
the last epoch's selection fraction/precision/recall (meant for a GPU: ``--device cuda``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _data import load_parts
from rich.console import Console
from rich.table import Table

from nrchbench.methods import TrainView, create_method


def noisy(labels: np.ndarray, rate: float, seed: int) -> np.ndarray:
    from nrchbench.noise import apply

    return np.asarray(apply("nrch", labels, rate, seed).labels)


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(device)


def make_view(train, labels: np.ndarray, device: torch.device) -> TrainView:
    X, T, _ = train
    return TrainView(_tensor(X, device), _tensor(T, device), _tensor(labels, device), device)


def measure(train, preset: str, epochs: int, device: torch.device) -> dict[str, float]:
    view = make_view(train, noisy(train[2], 0.5, 0), device)
    m = create_method("nrch", 64, preset, epochs=epochs)
    stamps: list[float] = []
    logs: list[dict] = []

    def cb(epoch: int, lg: dict) -> None:
        stamps.append(time.perf_counter())
        logs.append(lg)

    t0 = time.perf_counter()
    m.fit(view, seed=0, callback=cb)
    phases = [lg["time_train"] + lg["time_dns_loss"] + lg["time_gmm"] for lg in logs]
    full = create_method("nrch", 64, preset).num_epochs
    res = {
        "epoch": float(np.mean(phases)),
        "train": float(np.mean([lg["time_train"] for lg in logs])),
        "dns_loss": float(np.mean([lg["time_dns_loss"] for lg in logs])),
        "gmm": float(np.mean([lg["time_gmm"] for lg in logs])),
        # model construction and optimiser set-up, outside the epochs
        "setup": float(stamps[0] - t0 - phases[0]),
        "n": float(view.n),
    }
    res["full"] = res["setup"] + res["epoch"] * full
    res["share"] = (res["dns_loss"] + res["gmm"]) / res["epoch"]
    return res


def full_runs(parts, preset: str, rate: float, device: torch.device) -> list[tuple]:
    """Train each variant for the preset's epochs; (variant, seconds, i2t, t2i, sel, prec, rec)."""
    from nrchbench.metrics import evaluate
    from nrchbench.noise import apply

    noise = apply("nrch", parts["train"][2], rate, 0)
    view = make_view(parts["train"], noise.labels, device)
    rows = []
    for variant in ("nrch", "nrch-nogmm", "nrch-nodns"):
        m = create_method(variant, 64, preset)
        last: dict = {}
        t0 = time.perf_counter()
        m.fit(view, seed=0, callback=lambda e, lg, last=last: last.update(lg))
        secs = time.perf_counter() - t0
        codes = {}
        for split in ("query", "database"):
            X, T, _ = parts[split]
            for mod, x in (("image", X), ("text", T)):
                codes[split, mod] = torch.where(m.encode(mod, _tensor(x, device)) >= 0, 1.0, -1.0).cpu()
        qY, dY = parts["query"][2], parts["database"][2]
        i2t = evaluate(codes["query", "image"], codes["database", "text"], qY, dY)["map"]
        t2i = evaluate(codes["query", "text"], codes["database", "image"], qY, dY)["map"]
        sel = last.get("selected")
        clean = np.asarray(noise.clean_mask, bool)
        if sel is None:
            stats = (1.0, float(clean.mean()), 1.0)
        else:
            stats = (float(sel.mean()), float(clean[sel].mean()) if sel.any() else 0.0, float(sel[clean].mean()))
        rows.append((variant, secs, i2t, t2i, *stats))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="directory holding wiki/ (e.g. /work/shared/data)")
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "wiki"])
    ap.add_argument("--presets", nargs="+", default=["fast", "paper"])
    ap.add_argument("--epochs-fast", type=int, default=3)
    ap.add_argument("--epochs-paper", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="also train every variant for the full preset")
    ap.add_argument("--rate", type=float, default=0.5, help="nrch noise rate of the --full runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    table = Table(title=f"nrch seconds per epoch (64 bits, 50% nrch noise, {args.threads} threads, {device})")
    for col in (
        "dataset",
        "train rows",
        "preset",
        "epochs timed",
        "s/epoch",
        "train",
        "dns loss",
        "gmm",
        "separator share",
        "setup s",
        "full run (extrap.)",
    ):
        table.add_column(col, justify="left" if col in ("dataset", "preset") else "right")
    full = Table(title=f"full runs (64 bits, {args.rate:.0%} nrch noise, seed 0, {device})")
    for col in ("dataset", "preset", "variant", "fit s", "i2t", "t2i", "selected", "precision", "recall"):
        full.add_column(col, justify="left" if col in ("dataset", "preset", "variant") else "right")
    for name in args.datasets:
        parts = load_parts(name, args.data_root)
        if parts is None:
            continue
        for preset in args.presets:
            epochs = args.epochs_paper if preset == "paper" else args.epochs_fast
            r = measure(parts["train"], preset, epochs, device)
            table.add_row(
                name,
                f"{int(r['n']):,}",
                preset,
                str(epochs),
                f"{r['epoch']:.2f}",
                f"{r['train']:.2f}",
                f"{r['dns_loss']:.3f}",
                f"{r['gmm']:.3f}",
                f"{100 * r['share']:.1f}%",
                f"{r['setup']:.1f}",
                f"{r['full']:.0f} s",
            )
            if args.full and "query" in parts:
                for v, secs, i2t, t2i, sel, prec, rec in full_runs(parts, preset, args.rate, device):
                    full.add_row(
                        name,
                        preset,
                        v,
                        f"{secs:.0f}",
                        f"{i2t:.3f}",
                        f"{t2i:.3f}",
                        f"{sel:.2f}",
                        f"{prec:.3f}",
                        f"{rec:.3f}",
                    )
    console = Console(width=160)
    console.print(table)
    if args.full:
        console.print(full)


if __name__ == "__main__":
    main()
