#!/usr/bin/env python3
"""ROC-AUC and average precision on 10 M scores from Python: kestrel.metrics against
scikit-learn, like with like.

Usage (from the repository root, with the `kestrel` package importable — `maturin develop
--release -m crates/kestrel-py/Cargo.toml` — and `pip install scikit-learn numpy`):

    python3 bench/metrics_bench.py [--n 10000000] [--prevalence 0.5] [--round DIGITS]
        [--threads 1] [--rounds 5] [--seed 0]

Both sides are called the way a user calls them — `roc_auc_score(y, scores)` and
`average_precision_score(y, scores)` on the same int64 labels and float64 scores — so label
checks and conversions are timed on both sides. kestrel runs on `--threads` rayon threads
(RAYON_NUM_THREADS, set before import; default 1, as scikit-learn's single thread). After one
untimed call of each, the engines alternate for `--rounds` rounds; each round times one call of
each function on each side, and the speed-up reported is the median of the rounds' ratios
(scikit-learn time / kestrel time). The values must agree within 1e-9.
"""

import argparse
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--prevalence", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--round", type=int, default=None, help="round scores to this many decimals (ties)")
    ap.add_argument("--threads", type=int, default=1, help="kestrel's rayon threads")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    for v in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]:
        os.environ[v] = "1"

    import numpy as np
    import sklearn
    import sklearn.metrics as sk

    from kestrel import metrics as km

    rng = np.random.default_rng(args.seed)
    y = (rng.random(args.n) < args.prevalence).astype(np.int64)
    scores = 1.0 / (1.0 + np.exp(-(rng.standard_normal(args.n) + 1.0 * y)))
    if args.round is not None:
        scores = np.round(scores, args.round)

    def timed(f):
        t = time.perf_counter()
        v = f()
        return v, time.perf_counter() - t

    pairs = {
        "roc_auc_score": (km.roc_auc_score, sk.roc_auc_score),
        "average_precision_score": (km.average_precision_score, sk.average_precision_score),
    }
    values, times = {}, {name: ([], []) for name in pairs}
    for name, (k, s) in pairs.items():  # warm-up, and the values
        values[name] = (k(y, scores), s(y, scores))
    for r in range(args.rounds):
        for name, (k, s) in pairs.items():
            order = [(0, k), (1, s)] if r % 2 == 0 else [(1, s), (0, k)]
            for side, f in order:
                times[name][side].append(timed(lambda: f(y, scores))[1])

    print(f"n = {args.n:,}, positives = {y.mean():.1%}, distinct scores = {len(np.unique(scores)):,}")
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; kestrel on {args.threads} "
          f"thread(s); {args.rounds} alternating rounds")
    print(f"{'function':<26}{'kestrel s':>11}{'sklearn s':>11}{'speed-up':>10}  rounds' ratios")
    ok = True
    for name in pairs:
        kt, st = times[name]
        ratios = sorted(s / k for k, s in zip(kt, st))
        med = ratios[len(ratios) // 2]
        kv, sv = values[name]
        ok &= abs(kv - sv) <= 1e-9
        print(f"{name:<26}{sorted(kt)[len(kt) // 2]:>11.3f}{sorted(st)[len(st) // 2]:>11.3f}"
              f"{med:>9.1f}x  {', '.join(f'{x:.1f}' for x in ratios)}  (values {kv!r} vs {sv!r})")
    if not ok:
        sys.exit("values differ by more than 1e-9")


if __name__ == "__main__":
    main()
