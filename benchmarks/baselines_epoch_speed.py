"""Seconds per epoch of the baselines ``dcmh`` and ``djsrh`` at a preset, on synthetic and wiki.

Usage: ``python benchmarks/baselines_epoch_speed.py [--data-root /work/shared/data] [--threads 2]``

For each dataset (``synthetic``: the embedded default, 5,000 train rows, 512-d image,
1,000-word text, 24 classes; ``wiki``: 2,173 train rows, 128-d SIFT-BoVW / 10-d LDA, 10
classes, if found under the data root) and method, trains at 64 bits for a few epochs
(``--epochs``, default 3) at ``--preset`` (default ``fast``) and prints the mean wall
seconds per epoch (DCMH split into image-net, text-net and B phases) and the extrapolation
to the preset's epoch count (DJSRH with the dataset's official settings from
``DJSRH.dataset_params``, below the preset). DCMH trains on the clean labels (its cost does
not depend on them); DJSRH never sees labels.

``--full`` also trains each method for the preset's full epoch count and prints mAP@all
I2T/T2I (query vs database, clean labels), the chance level and the fit time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _data import load_parts
from rich.console import Console
from rich.table import Table

from nrchbench.methods import TrainView, create_method, get_method_class


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(device)


def build(method: str, dataset: str, preset: str, **overrides) -> torch.nn.Module:
    cls = get_method_class(method)
    params = dict(cls.dataset_params(dataset))  # below the preset and the overrides
    params.update(cls.presets[preset])
    params.update(overrides)
    return create_method(method, 64, None, **params)


def measure(method: str, dataset: str, train, preset: str, epochs: int, device: torch.device) -> dict[str, float]:
    X, T, Y = train
    view = TrainView(_tensor(X, device), _tensor(T, device), _tensor(Y, device), device)
    m = build(method, dataset, preset, epochs=epochs)
    logs: list[dict] = []
    t0 = time.perf_counter()
    m.fit(view, seed=0, callback=lambda e, lg: logs.append(lg))
    wall = time.perf_counter() - t0
    phases = {k: float(np.mean([lg[k] for lg in logs])) for k in logs[0] if k.startswith("time_")}
    epoch = sum(phases.values())
    full = build(method, dataset, preset).num_epochs
    return {"n": view.n, "epoch": epoch, "setup": wall - epoch * epochs, "full_epochs": full, **phases}


def full_run(method: str, dataset: str, parts, preset: str, device: torch.device) -> tuple[float, ...]:
    from nrchbench.metrics import evaluate

    X, T, Y = parts["train"]
    view = TrainView(_tensor(X, device), _tensor(T, device), _tensor(Y, device), device)
    m = build(method, dataset, preset)
    t0 = time.perf_counter()
    m.fit(view, seed=0)
    secs = time.perf_counter() - t0
    codes = {}
    for split in ("query", "database"):
        Xs, Ts, _ = parts[split]
        for mod, x in (("image", Xs), ("text", Ts)):
            codes[split, mod] = torch.where(m.encode(mod, _tensor(x, device)) >= 0, 1.0, -1.0).cpu()
    qY, dY = parts["query"][2], parts["database"][2]
    i2t = evaluate(codes["query", "image"], codes["database", "text"], qY, dY)
    t2i = evaluate(codes["query", "text"], codes["database", "image"], qY, dY)
    return secs, i2t["map"], t2i["map"], i2t.get("chance", float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="directory holding wiki/ (e.g. /work/shared/data)")
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "wiki"])
    ap.add_argument("--methods", nargs="+", default=["dcmh", "djsrh"])
    ap.add_argument("--preset", default="fast", choices=["fast", "paper", "tiny"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="also train each method for the preset's epochs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    table = Table(title=f"baselines: seconds per epoch ({args.preset}, 64 bits, {args.threads} threads, {device})")
    for col in ("dataset", "method", "train rows", "epochs timed", "s/epoch", "phases", "epochs", "full run"):
        table.add_column(col, justify="left" if col in ("dataset", "method", "phases") else "right")
    full = Table(title=f"full runs ({args.preset}, 64 bits, clean labels, seed 0, {device})")
    for col in ("dataset", "method", "fit s", "i2t", "t2i", "chance"):
        full.add_column(col, justify="left" if col in ("dataset", "method") else "right")
    for name in args.datasets:
        parts = load_parts(name, args.data_root)
        if parts is None:
            continue
        for method in args.methods:
            r = measure(method, name, parts["train"], args.preset, args.epochs, device)
            phases = ", ".join(f"{k[5:]} {v:.2f}" for k, v in r.items() if k.startswith("time_"))
            table.add_row(
                name,
                method,
                f"{r['n']:,}",
                str(args.epochs),
                f"{r['epoch']:.2f}",
                phases,
                str(r["full_epochs"]),
                f"{r['setup'] + r['epoch'] * r['full_epochs']:.0f} s",
            )
            if args.full:
                secs, i2t, t2i, chance = full_run(method, name, parts, args.preset, device)
                full.add_row(name, method, f"{secs:.0f}", f"{i2t:.3f}", f"{t2i:.3f}", f"{chance:.3f}")
    console = Console(width=160)
    console.print(table)
    if args.full:
        console.print(full)


if __name__ == "__main__":
    main()
