"""Time ``nrchbench.noise.apply`` for every registered noise model on a large label matrix.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/noise_speed.py [--n 1000000] [--classes 80]``

The labels are synthetic multi-label rows (each class on with probability ``k/C`` for a
mean cardinality of about ``--cardinality``, every row with at least one label). Models
that need features (``instance``) get synthetic image/text features that carry the labels
(``--image-dim``/``--text-dim``; their confusion classifier is fitted on every call: the
in-process cache is cleared). The time includes validation, the noise itself and the
realised-noise report (for N > 50,000 the pair statistic is estimated from 10⁶ sampled
pairs). "cpu s" is the process CPU time, less sensitive than wall time to other jobs on a
shared machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from nrchbench.noise import NOISE, apply, instance


def make_labels(n: int, c: int, cardinality: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.empty((n, c), dtype=np.uint8)
    step = 1 << 16
    for s in range(0, n, step):
        blk = rng.random((min(step, n - s), c)) < cardinality / c
        blk[np.arange(blk.shape[0]), rng.integers(0, c, blk.shape[0])] = True
        y[s : s + step] = blk
    return y


def make_features(y: np.ndarray, dims: tuple[int, int], seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Float32 features = labels × a random map + noise, per modality, in row blocks."""
    rng = np.random.default_rng(seed)
    out = []
    for d in dims:
        w = rng.standard_normal((y.shape[1], d)).astype(np.float32)
        x = np.empty((y.shape[0], d), dtype=np.float32)
        for s in range(0, y.shape[0], 1 << 16):
            blk = y[s : s + (1 << 16)].astype(np.float32)
            x[s : s + (1 << 16)] = blk @ w + 2.0 * rng.standard_normal((blk.shape[0], d), dtype=np.float32)
        out.append(x)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--cardinality", type=float, default=3.0)
    ap.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.8])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--image-dim", type=int, default=512)
    ap.add_argument("--text-dim", type=int, default=128)
    args = ap.parse_args()

    y = make_labels(args.n, args.classes, args.cardinality)
    feats = None
    table = Table(title=f"noise apply() time, {args.n:,} × {args.classes} labels (best of {args.repeat})")
    for col in ("model", "rate", "wall s", "cpu s", "frac_samples_corrupted", "frac_pairs_changed"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in NOISE.names():
        for rate in args.rates:
            best = best_cpu = float("inf")
            if NOISE.get(name).needs_features and feats is None:
                feats = make_features(y, (args.image_dim, args.text_dim))
            for _ in range(args.repeat):
                instance.clear_cache()
                t0, c0 = time.perf_counter(), time.process_time()
                out = apply(name, y, rate, seed=0, features=feats)
                best = min(best, time.perf_counter() - t0)
                best_cpu = min(best_cpu, time.process_time() - c0)
            rep = out.report
            est = " (est.)" if rep.get("pairs_estimated") else ""
            table.add_row(
                name,
                f"{rate:g}",
                f"{best:.2f}",
                f"{best_cpu:.2f}",
                f"{rep['frac_samples_corrupted']:.4f}",
                f"{rep['frac_pairs_changed']:.4f}{est}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
