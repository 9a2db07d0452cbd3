#!/usr/bin/env python3
"""Inference latency: kestrel-runtime against ONNX Runtime on the same model, threads and input shape.

Usage (from the repository root; needs `pip install onnxruntime numpy`):

    python3 bench/onnx_compare.py --model mobilenet-v2 [--width 1.0] [--resolution 224]
        [--batch 1] [--threads 2] [--runs 20] [--kestrel PATH]

One invocation runs

    kestrel bench infer --engine runtime --json --export-onnx TMP.onnx ...

which builds the model with random weights, writes that exact model as ONNX (batch norm
folded, opset 17) and times kestrel-runtime on it; then it loads TMP.onnx into ONNX Runtime
(CPU provider, `intra_op_num_threads` = the same thread count, sequential execution, all graph
optimisations on) and times it on an input of the same shape (batch x 3 x R x R, uniform
[-1, 1) values, as kestrel's), after the same warm-up. It prints both medians and the ratio
ONNX Runtime / kestrel (above 1: kestrel is faster).

Without `--kestrel`, the binary is built and run with `cargo run --release -p kestrel-cli`
(set CARGO_TARGET_DIR as you build). Timings are only meaningful on an otherwise idle machine.
"""

import argparse
import json
import os
import subprocess
import tempfile

import onnxruntime as ort

from bench_common import kestrel_cmd, median, ort_session, time_ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mobilenet-v2")
    ap.add_argument("--width", type=float)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--kestrel", help="path of a built kestrel binary")
    args = ap.parse_args()
    if args.runs < 10:
        ap.error("--runs must be at least 10")

    with tempfile.TemporaryDirectory() as d:
        onnx_path = os.path.join(d, "model.onnx")
        cmd = kestrel_cmd(args) + [
            "bench", "infer", "--model", args.model, "--resolution", str(args.resolution),
            "--batch", str(args.batch), "--threads", str(args.threads), "--engine", "runtime",
            "--warmup", str(args.warmup), "--runs", str(args.runs), "--json",
            "--export-onnx", onnx_path,
        ]
        if args.width is not None:
            cmd += ["--width", str(args.width)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        k = json.loads(out)

        sess = ort_session(onnx_path, args.threads)
        r = args.resolution
        ms = time_ort(sess, args.batch, r, args.warmup, args.runs)
        ort_median = median(ms)

    print(f"model {k['model']}  batch {k['batch']}  {r}x{r}  threads {k['threads']}  runs {args.runs}")
    print(f"kestrel-runtime: median {k['median_ms']:.3f} ms  min {k['min_ms']:.3f} ms  "
          f"{k['images_per_s']:.1f} images/s")
    print(f"onnxruntime {ort.__version__}: median {ort_median:.3f} ms  min {ms[0]:.3f} ms  "
          f"{args.batch / (ort_median / 1e3):.1f} images/s")
    print(f"ratio onnxruntime / kestrel (median): {ort_median / k['median_ms']:.2f}")


if __name__ == "__main__":
    main()
