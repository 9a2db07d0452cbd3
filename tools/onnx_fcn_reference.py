#!/usr/bin/env python3
"""Run kestrel's ONNX exports of FCN segmenters through ONNX Runtime and record their scores.

Usage (from the repository root, with CARGO_TARGET_DIR set as you build):

    pip install onnx onnxruntime numpy
    python3 tools/onnx_fcn_reference.py [--out crates/kestrel-nn/tests/fixtures/onnx_fcn_ort.json]

Steps:
  1. `cargo test --workspace --lib write_onnx_fcn_reference_inputs -- --ignored` writes, for each
     case of `export::onnx::tests::FCN_CASES` (FCN-8s/16s/32s on MobileNetV2 and ResNet-18, output
     strides 32/16/8, bilinear, transposed, pixel-shuffle, bicubic and nearest upsampling, odd
     input sizes so that the crops matter; seeded random weights and batch-norm statistics), the
     exported `.onnx` file and its NCHW float32 input.
  2. Each model must pass `onnx.checker.check_model(full_check=True)` (which runs shape
     inference) and declare opset 17 and an input `input` with a symbolic batch dimension.
  3. ONNX Runtime (CPU provider) runs it; the scores must have shape (1, classes, R, R).
  4. The fixture records the case, the FNV-1a 64 fingerprint of the exported bytes and the scores
     (6 significant digits). The Rust test re-exports, checks the fingerprint and compares the
     Burn model's scores with ONNX Runtime's.

Rerun whenever the exporter's output bytes change on purpose.
"""

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/kestrel-nn/tests/fixtures/onnx_fcn_ort.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, KESTREL_ONNX_OUT=d)
        subprocess.run(
            ["cargo", "test", "--workspace", "--lib", "write_onnx_fcn_reference_inputs",
             "--", "--ignored"],
            check=True, env=env)
        cases = []
        for meta_file in sorted(f for f in os.listdir(d) if f.endswith(".json")):
            meta = json.load(open(os.path.join(d, meta_file)))
            name = meta["name"]
            data = open(os.path.join(d, name + ".onnx"), "rb").read()
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model, full_check=True)
            assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
            inp = model.graph.input[0]
            assert inp.name == "input"
            assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
            ops = sorted({n.op_type for n in model.graph.node})
            r, k = meta["resolution"], meta["classes"]
            x = np.fromfile(os.path.join(d, name + ".input.f32"), dtype="<f4").reshape(1, 3, r, r)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            scores = sess.run(["logits"], {"input": x})[0]
            assert scores.shape == (1, k, r, r), scores.shape
            print(f"{name}: ops {ops}, max |score| {np.abs(scores).max():.4f}")
            cases.append(dict(meta, fnv1a64=fnv1a64(data), ops=ops,
                              scores=[float(f"{v:.6g}") for v in scores.reshape(-1)]))
    out = {
        "generator": "tools/onnx_fcn_reference.py",
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
