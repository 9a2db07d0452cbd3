#!/usr/bin/env python3
"""Batch-1 latency of `kestrel.Engine` from Python against the CLI's `kestrel bench infer` (the
binding's cost) and ONNX Runtime's Python session on the same network (kestrel's ONNX export).

Usage (from the repository root, with the `kestrel` package importable from a release build —
`maturin develop --release -m crates/kestrel-py/Cargo.toml` — and `pip install numpy
onnxruntime`):

    python3 bench/python_engine_bench.py --weights MNV2.pth [--kestrel target/release/kestrel]
        [--threads 2] [--runs 30] [--rounds 5]

`--weights` is a torchvision MobileNetV2 state dict (any values: `torch.save(
torchvision.models.mobilenet_v2().state_dict(), "mnv2.pth")` makes one). The CLI exports it as a
plan (for `kestrel.Engine`) and as ONNX (for ONNX Runtime); `kestrel bench infer --model
mobilenet-v2` times the same architecture (random weights: the same work). Each round times
the three in turn after a warm-up, `--runs` batch-1 calls each, and takes medians; the table
reports every round's ratios and their median (the rounds alternate the order).
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

import kestrel
from bench_common import median, ort_session


def time_calls(f, warmup, runs):
    for _ in range(warmup):
        f()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t) * 1e3)
    return median(sorted(ms))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--kestrel", default="target/release/kestrel")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        plan, onnx = os.path.join(d, "m.plan"), os.path.join(d, "m.onnx")
        for fmt, out in [("plan", plan), ("onnx", onnx)]:
            subprocess.run([args.kestrel, "export", "--arch", "mobilenet-v2", "--weights", args.weights,
                            "--format", fmt, "--out", out], check=True, capture_output=True)
        engine = kestrel.Engine(plan, threads=args.threads)
        sess = ort_session(onnx, args.threads)
        x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
        np.testing.assert_allclose(engine(x), sess.run(None, {"input": x})[0], atol=1e-3)

        def cli():
            out = subprocess.run([args.kestrel, "bench", "infer", "--model", "mobilenet-v2", "--batch", "1",
                                  "--threads", str(args.threads), "--warmup", str(args.warmup),
                                  "--runs", str(args.runs), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out)["median_ms"]

        sides = {
            "python": lambda: time_calls(lambda: engine(x), args.warmup, args.runs),
            "cli": cli,
            "ort": lambda: time_calls(lambda: sess.run(None, {"input": x}), args.warmup, args.runs),
        }
        rows = []
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            rows.append({name: sides[name]() for name in order})

    print(f"MobileNetV2 224, batch 1, {args.threads} thread(s), {args.rounds} rounds of {args.runs} runs")
    for name in sides:
        print(f"{name:>8} median ms per round: {', '.join(f'{row[name]:.2f}' for row in rows)}")
    binding = sorted(row["python"] / row["cli"] for row in rows)
    vs_ort = sorted(row["ort"] / row["python"] for row in rows)
    print(f"kestrel.Engine / CLI bench infer: median {binding[len(binding) // 2]:.3f} "
          f"(rounds {', '.join(f'{v:.3f}' for v in binding)})")
    print(f"ONNX Runtime / kestrel.Engine:   median {vs_ort[len(vs_ort) // 2]:.3f} "
          f"(rounds {', '.join(f'{v:.3f}' for v in vs_ort)}; above 1: kestrel faster)")


if __name__ == "__main__":
    main()
