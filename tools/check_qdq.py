#!/usr/bin/env python3
"""Run kestrel's QDQ ONNX exports of int8 plans through ONNX Runtime and compare them with fp32.

Usage (from the repository root; needs numpy, onnx, onnxruntime):

    python3 tools/check_qdq.py plan --plan MODEL.int8 [--kestrel target/debug/kestrel]
                                    [--input X.npy [--labels Y.npy] | --batch 8 --seed 0] [--json]
    python3 tools/check_qdq.py fixture [--out crates/kestrel-nn/tests/fixtures/qdq_ort.json]

`plan`: a manual check of one int8 plan file (`kestrel quantize`'s output).
  1. `kestrel export --plan MODEL.int8 --format onnx` writes the QDQ model; the fp32 plan inside
     the int8 file (bytes 20 .. 20 + P of its layout, see kestrel-runtime's `quant::file`) is
     written beside it and exported the same way as a float model: the same graph without
     quantisation.
  2. Both pass `onnx.checker.check_model(full_check=True)`.
  3. On `--input` (or a seeded N(0, 1) NCHW batch) ONNX Runtime (CPU) runs the QDQ model twice — with its
     graph optimisations (QDQ fused into its integer kernels) and without (DequantizeLinear /
     QuantizeLinear evaluated in float: the graph's exact semantics) — and the float model;
     kestrel-runtime itself runs the fp32 plan when the `kestrel` Python package is installed.
  4. Prints, for each pair, the largest absolute difference, that relative to the largest fp32
     output, and (for per-image outputs) how often the top-1 class agrees; with `--labels`, each
     model's accuracy.

`fixture`: what `export::qdq::tests::onnx_runtime_runs_the_exports` checks.
  1. `cargo test -p kestrel-nn --lib write_qdq_reference_inputs -- --ignored` writes the test
     cases (a hand-built int8 classifier plan and a two-layer MLP, each as QDQ and as fp32, and a
     plan with every other op as QDQ) with their NCHW inputs.
  2. Each is checked as in `tools/onnx_reference.py` and run by ONNX Runtime with graph
     optimisations (`output`) and, for QDQ, without (`output_unoptimized`).
  3. The fixture records the fingerprint of the exported bytes and the outputs. Rerun whenever
     the exporter's bytes change on purpose.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_cases  # noqa: E402


def session(data, optimize=True):
    """A one-thread CPU session on the model bytes; `optimize=False` disables every graph
    optimisation, so QDQ pairs run as written (in float)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def run(sess, x):
    return sess.run(["logits"], {"input": x})[0]


def compare(got, want):
    """Largest |got - want|, that over the largest |want|, and top-1 agreement (per-image
    outputs of shape batch x classes only)."""
    d = float(np.abs(got - want).max())
    out = {"max_abs": d, "relative": d / max(float(np.abs(want).max()), 1e-12)}
    if got.ndim == 2:
        out["top1_agree"] = float((got.argmax(1) == want.argmax(1)).mean())
    return out


def fixture_fields(meta, data, ops, input_path, sess):
    """ONNX Runtime's outputs for one case, with and (QDQ) without graph optimisations."""
    c, h, w = meta["input"]
    x = np.fromfile(input_path, dtype="<f4").reshape(meta["batch"], c, h, w)
    y = run(sess, x)
    fields = {"output": [float(v) for v in y.reshape(-1)]}
    msg = f"{meta['name']}: ops {ops}, output[:5] {y.reshape(-1)[:5]}"
    if meta["qdq"]:
        plain = run(session(data, optimize=False), x)
        fields["output_unoptimized"] = [float(v) for v in plain.reshape(-1)]
        msg += f"; integer vs float QDQ {compare(y, plain)}"
    print(msg)
    return fields


def fixture(args):
    cases = []
    cargo = ["cargo", "test", "-p", "kestrel-nn", "--lib", "write_qdq_reference_inputs", "--",
             "--ignored"]
    for meta, data, ops, input_path, sess in onnx_cases.exported_cases(cargo):
        fields = fixture_fields(meta, data, ops, input_path, sess)
        cases.append(dict(meta, fnv1a64=onnx_cases.fnv1a64(data), ops=ops, **fields))
    onnx_cases.write_fixture(args.out, "tools/check_qdq.py fixture", cases, indent=1)


def fp32_plan_of(int8_bytes):
    """The fp32 plan file inside an int8 plan file: magic (8), version (4), length P (8), plan."""
    assert int8_bytes[:8] == b"KESTINT8", "not an int8 kestrel plan"
    (n,) = struct.unpack_from("<Q", int8_bytes, 12)
    return int8_bytes[20:20 + n]


def check_plan(args):
    with tempfile.TemporaryDirectory() as d:
        fp32_plan = os.path.join(d, "fp32.plan")
        with open(args.plan, "rb") as f:
            raw = f.read()
        with open(fp32_plan, "wb") as f:
            f.write(fp32_plan_of(raw))
        models = {}
        for name, src in [("qdq", args.plan), ("fp32", fp32_plan)]:
            out = os.path.join(d, name + ".onnx")
            subprocess.run([args.kestrel, "export", "--plan", src, "--format", "onnx", "--out",
                            out], check=True)
            data = open(out, "rb").read()
            onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
            models[name] = data
        qdq_ops = sorted({n.op_type for n in onnx.load_from_string(models["qdq"]).graph.node})
        sess = session(models["fp32"])
        if args.input:
            x = np.load(args.input).astype(np.float32)
        else:
            shape = [args.batch] + list(sess.get_inputs()[0].shape[1:])
            x = np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)
        fp32 = run(sess, x)
        qdq = run(session(models["qdq"]), x)
        qdq_plain = run(session(models["qdq"], optimize=False), x)
        report = {
            "plan": args.plan,
            "input": args.input or f"N(0, 1), seed {args.seed}",
            "images": len(x),
            "onnxruntime": ort.__version__,
            "qdq_ops": qdq_ops,
            "qdq_vs_fp32": compare(qdq, fp32),
            "qdq_unoptimized_vs_fp32": compare(qdq_plain, fp32),
            "qdq_vs_qdq_unoptimized": compare(qdq, qdq_plain),
        }
        if args.labels:
            y = np.load(args.labels)
            for name, out in [("fp32", fp32), ("qdq", qdq), ("qdq_unoptimized", qdq_plain)]:
                report[f"accuracy_{name}"] = float((out.argmax(1) == y).mean())
        try:
            import kestrel

            engine = kestrel.Engine(fp32_plan)
            report["fp32_onnx_vs_kestrel_runtime"] = compare(fp32, np.asarray(engine(x)))
        except ImportError:
            report["fp32_onnx_vs_kestrel_runtime"] = "kestrel Python package not installed"
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="check one int8 plan file")
    p.add_argument("--plan", required=True)
    p.add_argument("--kestrel", default=os.environ.get("KESTREL", "target/debug/kestrel"))
    p.add_argument("--input", help="NCHW float32 images (.npy), preprocessed for the plan")
    p.add_argument("--labels", help="their classes (.npy): report each model's accuracy")
    p.add_argument("--batch", type=int, default=8, help="random images without --input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    f = sub.add_parser("fixture", help="rewrite the Rust test's fixture")
    f.add_argument("--out", default="crates/kestrel-nn/tests/fixtures/qdq_ort.json")
    a = ap.parse_args()
    fixture(a) if a.command == "fixture" else check_plan(a)
