#!/usr/bin/env python3
"""ROC-AUC and average precision on 10 M scores: kestrel-metrics against scikit-learn.

Usage (from the repository root; needs `pip install scikit-learn numpy`):

    python3 bench/metrics_bench.py [--n 10000000] [--prevalence 0.5] [--seed 0] [--repeats 5]

One invocation generates the labels and scores (seeded NumPy), writes them to two
binary files in a temporary directory (`labels.u8`: one byte per sample; `scores.f64`:
little-endian float64), builds and runs the Rust side
(`cargo run --release -p kestrel-metrics --example bench_auc`) on those files, times
scikit-learn's `roc_auc_score` and `average_precision_score` on the same arrays,
checks that both sides agree within 1e-9 and prints the times and the speed-up.
Times are the best of `--repeats` runs (scikit-learn: `--sk-repeats`), excluding
file reading. Set CARGO_TARGET_DIR as you build; RAYON_NUM_THREADS=1 runs kestrel on
one thread.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score


def best_of(repeats, f):
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = f()
        times.append(time.perf_counter() - t)
    return value, min(times), sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--prevalence", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="kestrel runs")
    ap.add_argument("--sk-repeats", type=int, default=3, help="scikit-learn runs")
    ap.add_argument("--round", type=int, default=None, help="round scores to this many decimals (ties)")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    y = (rng.random(args.n) < args.prevalence).astype(np.uint8)
    scores = 1.0 / (1.0 + np.exp(-(rng.standard_normal(args.n) + 1.0 * y)))
    if args.round is not None:
        scores = np.round(scores, args.round)

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        labels_path = os.path.join(tmp, "labels.u8")
        scores_path = os.path.join(tmp, "scores.f64")
        y.tofile(labels_path)
        scores.astype("<f8").tofile(scores_path)
        cmd = [
            "cargo", "run", "--quiet", "--release", "-p", "kestrel-metrics", "--example", "bench_auc",
            "--", labels_path, scores_path, str(args.repeats),
        ]
        print("$ " + " ".join(cmd), file=sys.stderr)
        out = subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout
        rust = json.loads(out.strip().splitlines()[-1])

    y64 = y.astype(np.int64)
    sk_auc, sk_auc_min, _ = best_of(args.sk_repeats, lambda: roc_auc_score(y64, scores))
    sk_ap, sk_ap_min, _ = best_of(args.sk_repeats, lambda: average_precision_score(y64, scores))

    ok_auc = abs(sk_auc - rust["roc_auc"]) <= 1e-9
    ok_ap = abs(sk_ap - rust["average_precision"]) <= 1e-9
    print(f"n = {args.n:,}, positives = {y.mean():.1%}, distinct scores = {len(np.unique(scores)):,}")
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; kestrel on {rust['threads']} rayon thread(s)")
    print(f"{'metric':<20}{'kestrel s':>12}{'sklearn s':>12}{'speed-up':>10}  values agree")
    for name, k, s, ok, kv, sv in [
        ("roc_auc", rust["roc_auc_min_s"], sk_auc_min, ok_auc, rust["roc_auc"], sk_auc),
        ("average_precision", rust["ap_min_s"], sk_ap_min, ok_ap, rust["average_precision"], sk_ap),
    ]:
        print(f"{name:<20}{k:>12.3f}{s:>12.3f}{s / k:>9.1f}x  {ok} ({kv!r} vs {sv!r})")
    if not (ok_auc and ok_ap):
        sys.exit("values differ by more than 1e-9")


if __name__ == "__main__":
    main()
