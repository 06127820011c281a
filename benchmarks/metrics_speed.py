"""Speed and memory of ``nrchbench.metrics.evaluate`` (one direction), printed as a table.

Cases (synthetic multi-label data; codes correlated with labels so mAP is far from chance):

(a) MIRFlickr scale: 2,000 queries × 18,015 database items, 24 classes (~3.8 labels/item),
    64 bits, all measured here, in this process, side by side:
    - ``evaluate`` computing only ``map`` + ``map_tie`` (``topk=(), radius=(), curve_k=(),
      pr_curve=False``) against a per-query loop that mimics NRCH's ``calc_map_k`` (Hamming by
      matmul, ``torch.sort`` of the distances — ``stable=True`` so the tie order equals ours —,
      gather relevance, AP): speed-up (target ≥ 50×) and |Δmap| (target ≤ 1e-6);
    - ``evaluate`` with every default key (map, map_tie, map@/precision@/recall@{50, 100, 1000,
      5000}, hamming_precision@2 / hamming_recall@2, the top-K curve at its 22 default points,
      the PR curve): its time (the new metrics' extra cost) and speed-up over the NRCH loop;
    - a per-query loop for the new metrics in the style of the DCMH (top-k mAP / precision /
      recall) and DeepHash (precision / recall within Hamming radius 2) code: time, speed-up,
      and the largest |Δ| over every new key and curve point (target ≤ 1e-6);
    - the numpy-only fallback (``backend="counting"``), all keys, for reference.
(b) NUS-WIDE scale: 2,100 × 188,321, 21 classes, 128 bits, every default key: time (target
    < 2 s on 2 cores) and peak extra memory (target < 1 GB), measured in a fresh subprocess as
    peak RSS (VmHWM, reset after the data exists when the kernel allows) minus the RSS after
    the data was built; and the time of ``map`` + ``map_tie`` alone.
(c) Scaling: 2,000 queries, 64 bits, database 10⁴, 10⁵, 10⁶, every default key.

Usage: ``python benchmarks/metrics_speed.py [--quick] [--threads N] [--skip-scaling]``.
Timings are the best of ``--repeat`` runs (default 3; 1 for the big cases).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from nrchbench.metrics import default_curve_k, evaluate

MAP_ONLY = {"topk": (), "radius": (), "curve_k": (), "pr_curve": False}
TOPK = (50, 100, 1000, 5000)


def make_data(nq: int, m: int, classes: int, bits: int, cardinality: float, seed: int = 0):
    """Random multi-label data (skewed class frequencies) and label-correlated ±1 codes (int8)."""
    rng = np.random.default_rng(seed)
    n = nq + m
    freq = 1.0 / np.arange(1, classes + 1) ** 0.4
    freq /= freq.sum()
    k = np.clip(1 + rng.poisson(cardinality - 1, n), 1, classes)
    labels = np.zeros((n, classes), dtype=np.uint8)
    for s in range(0, n, 100_000):  # chunked: bounded temporaries
        e = min(n, s + 100_000)
        g = rng.gumbel(size=(e - s, classes)) + np.log(freq)  # Gumbel top-k = sampling without replacement
        order = np.argsort(-g, axis=1)
        mask = np.arange(classes) < k[s:e, None]
        np.put_along_axis(labels[s:e], order, mask.astype(np.uint8), axis=1)
    w = rng.standard_normal((classes, bits)).astype(np.float32)
    codes = np.empty((n, bits), dtype=np.int8)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        x = labels[s:e].astype(np.float32) @ w + 1.5 * rng.standard_normal((e - s, bits)).astype(np.float32)
        codes[s:e] = np.where(x >= 0, 1, -1)
    return codes[:nq], codes[nq:], labels[:nq], labels[nq:]


def nrch_calc_map_k(q_codes, db_codes, q_labels, db_labels) -> float:
    """The official NRCH ``calc_map_k`` loop (k = None, R = 0 queries dropped), stable sort."""
    qb = torch.from_numpy(q_codes).float()
    rb = torch.from_numpy(db_codes).float()
    ql = torch.from_numpy(q_labels).float()
    rl = torch.from_numpy(db_labels).float()
    num_query, bits = ql.shape[0], qb.shape[1]
    total, counted = 0.0, num_query
    for it in range(num_query):
        gnd = (ql[it].unsqueeze(0).mm(rl.t()) > 0).type(torch.float).squeeze()
        tsum = torch.sum(gnd)
        if tsum == 0:
            counted -= 1
            continue
        hamm = 0.5 * (bits - qb[it, :].unsqueeze(0).mm(rb.t()))
        _, ind = torch.sort(hamm, stable=True)
        ind.squeeze_()
        gnd = gnd[ind]
        count = torch.arange(1, int(tsum) + 1).type(torch.float)
        tindex = torch.nonzero(gnd)[: int(tsum)].squeeze(1).type(torch.float) + 1.0
        total += torch.mean(count / tindex).item()
    return total / counted


def loop_new_metrics(q_codes, db_codes, q_labels, db_labels, topk=TOPK, radius=2, curve_k=None) -> dict:
    """Per-query loop in the style of the DCMH code (``calcMapTopkMapTopkPreTopkRecLabel``: top-k
    mAP, precision, recall) and the DeepHash code (precision / recall within Hamming radius r,
    precision 0 when nothing is retrieved), with the NRCH convention for queries without
    relevant items (dropped), a stable sort, and precision@k over min(k, M)."""
    qb, rb = torch.from_numpy(q_codes).float(), torch.from_numpy(db_codes).float()
    ql, rl = torch.from_numpy(q_labels).float(), torch.from_numpy(db_labels).float()
    bits, m = qb.shape[1], rb.shape[0]
    curve_k = default_curve_k(m) if curve_k is None else curve_k
    sums = {f"{n}@{k}": 0.0 for n in ("map", "precision", "recall") for k in topk}
    sums |= {f"hamming_precision@{radius}": 0.0, f"hamming_recall@{radius}": 0.0}
    curve_p, curve_r = np.zeros(len(curve_k)), np.zeros(len(curve_k))
    counted = 0
    for it in range(qb.shape[0]):
        gnd = (ql[it].unsqueeze(0).mm(rl.t()) > 0).squeeze(0)
        tsum = int(gnd.sum())
        if tsum == 0:
            continue
        counted += 1
        hamm = 0.5 * (bits - qb[it].unsqueeze(0).mm(rb.t())).squeeze(0)
        _, ind = torch.sort(hamm, stable=True)
        g = gnd[ind].double()
        hits = torch.cumsum(g, 0)
        prec_at = hits / torch.arange(1, m + 1, dtype=torch.float64)
        for k in topk:
            kk = min(k, m)
            n_top = float(hits[kk - 1])
            sums[f"map@{k}"] += float((prec_at[:kk] * g[:kk]).sum()) / n_top if n_top else 0.0
            sums[f"precision@{k}"] += n_top / kk
            sums[f"recall@{k}"] += n_top / tsum
        at = hits[[min(k, m) - 1 for k in curve_k]].numpy()
        curve_p += at / np.minimum(curve_k, m)
        curve_r += at / tsum
        within = hamm <= radius
        got, good = int(within.sum()), int((within & gnd).sum())
        sums[f"hamming_precision@{radius}"] += good / got if got else 0.0
        sums[f"hamming_recall@{radius}"] += good / tsum
    out = {k: v / counted for k, v in sums.items()}
    out["topk_curve"] = {"k": list(curve_k), "precision": list(curve_p / counted), "recall": list(curve_r / counted)}
    return out


def max_abs_diff(ours: dict, ref: dict) -> float:
    """Largest |ours − ref| over the reference's keys and curve points."""
    diffs = [abs(ours[k] - v) for k, v in ref.items() if k != "topk_curve"]
    for name in ("precision", "recall"):
        diffs += list(np.abs(np.array(ours["topk_curve"][name]) - ref["topk_curve"][name]))
    return float(max(diffs))


def best_time(fn, repeat: int):
    """(wall seconds, process CPU seconds, result) of the fastest of ``repeat`` calls. CPU time
    counts every thread of this process, so on a shared machine CPU / threads estimates the wall
    time on idle cores."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return best, cpu, out


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_nus(args) -> None:
    """Runs in a fresh process: build NUS-scale data, then one timed ``evaluate``; prints JSON."""
    q, db, ql, dl = make_data(args.nq, args.m, 21, 128, 2.4, seed=1)
    small = make_data(50, 1000, 21, 128, 2.4, seed=2)
    evaluate(*small, num_threads=args.threads)  # import/thread-pool/BLAS warm-up, not counted
    base = _rss_kib()
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        reset = False
    t0, c0 = time.perf_counter(), time.process_time()
    res = evaluate(q, db, ql, dl, num_threads=args.threads)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _hwm_kib()
    t_map, c_map, _ = best_time(lambda: evaluate(q, db, ql, dl, num_threads=args.threads, **MAP_ONLY), 1)
    print(json.dumps({"time": dt, "cpu": cpu, "time_map_only": t_map, "cpu_map_only": c_map, "extra_mib": (peak - base) / 1024, "hwm_reset": reset,
                      "map": res["map"], "map_tie": res["map_tie"], "map@50": res["map@50"]}))  # fmt: skip


def run_child(nq: int, m: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child-nus", "--nq", str(nq), "--m", str(m)]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not the targets)")
    ap.add_argument("--threads", type=int, default=None, help="evaluate(num_threads=...); default: torch's")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--child-nus", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--nq", type=int, default=2100, help=argparse.SUPPRESS)
    ap.add_argument("--m", type=int, default=188_321, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_nus:
        child_nus(args)
        return

    div = 10 if args.quick else 1
    print(f"torch {torch.__version__}, numpy {np.__version__}, torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}" + ("  [QUICK: reduced sizes]" if args.quick else ""))  # fmt: skip
    rows = []

    # (a) MIRFlickr scale vs the NRCH loop and a loop for the new metrics
    q, db, ql, dl = make_data(2000 // div, 18_015, 24, 64, 3.8)
    evaluate(q[:4], db, ql[:4], dl, num_threads=args.threads)  # kernel load / thread-pool warm-up
    t_map, c_map, res_map = best_time(
        lambda: evaluate(q, db, ql, dl, num_threads=args.threads, **MAP_ONLY), args.repeat
    )
    t_all, c_all, res = best_time(lambda: evaluate(q, db, ql, dl, num_threads=args.threads), args.repeat)
    t_base, c_base, base_map = best_time(lambda: nrch_calc_map_k(q, db, ql, dl), 1)
    t_loop, _, ref = best_time(lambda: loop_new_metrics(q, db, ql, dl), 1)
    t_np, _, res_np = best_time(
        lambda: evaluate(q, db, ql, dl, num_threads=args.threads, backend="counting"), args.repeat
    )
    name = f"(a) MIRFlickr {q.shape[0]}x{db.shape[0]}, 64b"
    rows.append((name, f"{t_base:.2f} s", "NRCH calc_map_k loop", f"(cpu {c_base:.1f} s)", f"map {base_map:.4f}"))
    rows.append(("    map + map_tie only", f"{t_map:.3f} s (cpu {c_map:.2f})", f"speed-up {t_base / t_map:.1f}x (≥50)",
                 f"|Δmap| {abs(res_map['map'] - base_map):.1e} (≤1e-6)", f"map_tie {res_map['map_tie']:.4f}"))  # fmt: skip
    rows.append(("    every default key", f"{t_all:.3f} s (cpu {c_all:.2f})", f"speed-up {t_base / t_all:.1f}x",
                 f"new metrics {t_all - t_map:+.3f} s", f"map@50 {res['map@50']:.4f}"))  # fmt: skip
    rows.append(("    DCMH/DeepHash-style loop, new keys", f"{t_loop:.2f} s", f"speed-up {t_loop / t_all:.1f}x",
                 f"max |Δ| {max_abs_diff(res, ref):.1e} (≤1e-6)", f"{len(ref) - 1} keys + 2×{len(res['topk_curve']['k'])} curve pts"))  # fmt: skip
    rows.append(("    numpy fallback (counting), all keys", f"{t_np:.3f} s", f"speed-up {t_base / t_np:.1f}x",
                 f"|Δmap| {abs(res_np['map'] - base_map):.1e}", ""))  # fmt: skip

    # (b) NUS-WIDE scale, fresh process
    nus = run_child(2100 // div, 188_321 // div, args.threads)
    rows.append((f"(b) NUS-WIDE {2100 // div}x{188_321 // div}, 128b", f"{nus['time']:.3f} s (<2; cpu {nus['cpu']:.2f})", f"+{nus['extra_mib']:.0f} MiB peak (<1024)",
                 "" if nus["hwm_reset"] else "(HWM not reset: upper bound)", f"map {nus['map']:.4f}"))  # fmt: skip
    rows.append(("    map + map_tie only", f"{nus['time_map_only']:.3f} s (cpu {nus['cpu_map_only']:.2f})", "", "",
                 f"map@50 {nus['map@50']:.4f}"))  # fmt: skip

    # (c) scaling with database size
    if not args.skip_scaling:
        for m in (10_000, 100_000, 1_000_000):
            q, db, ql, dl = make_data(2000 // div, m // div, 24, 64, 3.8, seed=3)
            run = lambda q=q, db=db, ql=ql, dl=dl: evaluate(q, db, ql, dl, num_threads=args.threads)  # noqa: E731
            t, _, _ = best_time(run, 1 if m > 10_000 else args.repeat)
            pairs = q.shape[0] * db.shape[0]
            rows.append(
                (f"(c) {q.shape[0]} x {db.shape[0]:>9,}, 64b", f"{t:.3f} s", f"{t / pairs * 1e9:.2f} ns/pair", "", "")
            )
            del q, db, ql, dl, run

    width = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip())


if __name__ == "__main__":
    main()
