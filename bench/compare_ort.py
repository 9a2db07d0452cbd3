#!/usr/bin/env python3
"""Inference latency table: kestrel-runtime against ONNX Runtime, model by model, in one invocation.

Usage (from the repository root; needs `pip install onnxruntime numpy`):

    python3 bench/compare_ort.py [--threads 2] [--runs 20] [--warmup 3] [--kestrel PATH]
        [--only NAME ...] [--resolution R] [--batches 1,32] [--upsampler NAME]

For every case of the table (default: MobileNetV2-1.0, MobileNetV1-1.0, ResNet-18 and ResNet-50 at
224 x 224, batch 1 and 32; FCN-8s-MobileNetV2 at 512 x 512, batch 1) it runs

    kestrel bench infer --model NAME --engine runtime --json --export-onnx TMP.onnx ...

which builds the model with random weights, writes that exact model as ONNX (batch norm folded,
opset 17; FCNs with Resize / ConvTranspose / DepthToSpace / Slice) and times kestrel-runtime; then
it times ONNX Runtime on TMP.onnx (CPU provider, `intra_op_num_threads` = the same threads,
sequential execution, all graph optimisations) on an input of the same shape after the same
warm-up, and prints one row: both medians (ms), images/s and the ratio ONNX Runtime / kestrel
(above 1: kestrel is faster).

`--rounds N` alternates the two engines N times per case (a drift in a shared machine's speed then
touches both alike) and prints the medians of the rounds, every round's ratio, and as the ratio
column the median of the rounds' ratios (each measured back to back, so a spell of a slow host
that lasts a round does not skew it, as it would a ratio of the two medians). `--only` keeps
the cases whose model name is given; `--resolution` and `--batches` override the
table's sizes (for a quick smoke run). Without `--kestrel` the binary is run with
`cargo run --release -p kestrel-cli` (set CARGO_TARGET_DIR as you build). Timings are meaningful
only on an otherwise idle machine.
"""

import argparse
import json
import os
import subprocess
import tempfile

import onnxruntime as ort

from bench_common import bench_infer_cmd, inference_args, median, ort_session, time_ort



def run_case(args, model, width, r, batch, d):
    onnx_path = os.path.join(d, f"{model}-{r}-{batch}.onnx")
    cmd = bench_infer_cmd(args, model, width, r, batch, onnx_path)
    # Alternate the two engines `rounds` times, so that a drift in the machine's speed (a shared
    # host) touches both alike; each round's ratio is recorded.
    k_ms, o_ms, sess = [], [], None
    for _ in range(args.rounds):
        k = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
        k_ms.append(k["median_ms"])
        sess = sess or ort_session(onnx_path, args.threads)
        o_ms.append(median(time_ort(sess, batch, r, args.warmup, args.runs)))
    ratios = sorted(o / k for k, o in zip(k_ms, o_ms))
    return median(sorted(k_ms)), median(sorted(o_ms)), ratios


def main():
    ap = argparse.ArgumentParser()
    args, cases = inference_args(ap, "kestrel and ONNX Runtime this many times per case")

    print(f"threads {args.threads}, warm-up {args.warmup}, median of {args.runs} runs; "
          f"onnxruntime {ort.__version__}")
    header = (f"{'model':<20} {'size':>5} {'batch':>5} {'kestrel ms':>11} {'ort ms':>9} "
              f"{'kestrel img/s':>14} {'ort img/s':>10} {'ort/kestrel':>12}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as d:
        for model, width, r, batch in cases:
            r = args.resolution or r
            k_ms, o_ms, ratios = run_case(args, model, width, r, batch, d)
            rounds = ("   rounds: " + " ".join(f"{x:.2f}" for x in ratios)) if len(ratios) > 1 else ""
            print(f"{model:<20} {r:>5} {batch:>5} {k_ms:>11.3f} {o_ms:>9.3f} "
                  f"{batch / (k_ms / 1e3):>14.1f} {batch / (o_ms / 1e3):>10.1f} "
                  f"{median(ratios):>12.2f}{rounds}", flush=True)


if __name__ == "__main__":
    main()
