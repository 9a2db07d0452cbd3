#!/usr/bin/env python3
"""Run kestrel's ONNX exports through ONNX Runtime and record the logits kestrel-nn is tested against.

Usage (from the repository root):

    pip install onnx onnxruntime numpy
    python3 tools/onnx_reference.py [--out crates/kestrel-nn/tests/fixtures/onnx_ort.json]

Steps:
  1. `cargo test -p kestrel-nn --lib write_onnx_reference_inputs -- --ignored` writes, for each
     case of `export::onnx::tests::CASES` (MobileNet V1/V2, ResNet-18/50 with seeded random
     weights and batch-norm statistics), the exported `.onnx` file and its NCHW float32 input.
  2. Each model must pass `onnx.checker.check_model(full_check=True)` (which also runs ONNX
     shape inference) and declare opset 17, an input `input` with a symbolic batch dimension.
  3. ONNX Runtime (CPU provider) runs the model on the batch, and again on the first image
     alone: the dynamic batch dimension must give the same first row.
  4. The fixture records the case, the FNV-1a 64 fingerprint of the exported bytes and the
     batch's logits. The Rust test re-exports, checks the fingerprint (so the logits belong to
     exactly those bytes) and compares the Burn model's logits with ONNX Runtime's.

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
    ap.add_argument("--out", default="crates/kestrel-nn/tests/fixtures/onnx_ort.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, KESTREL_ONNX_OUT=d)
        subprocess.run(
            ["cargo", "test", "-p", "kestrel-nn", "--lib", "write_onnx_reference_inputs",
             "--", "--ignored"],
            check=True, env=env)
        cases = []
        for meta_file in sorted(f for f in os.listdir(d) if f.endswith(".json")):
            meta = json.load(open(os.path.join(d, meta_file)))
            name = meta["name"]
            path = os.path.join(d, name + ".onnx")
            data = open(path, "rb").read()
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model, full_check=True)
            assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
            inp = model.graph.input[0]
            assert inp.name == "input"
            assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
            ops = sorted({n.op_type for n in model.graph.node})
            r, b = meta["resolution"], meta["batch"]
            x = np.fromfile(os.path.join(d, name + ".input.f32"), dtype="<f4").reshape(b, 3, r, r)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            logits = sess.run(["logits"], {"input": x})[0]
            first = sess.run(["logits"], {"input": x[:1]})[0]
            assert logits.shape == (b, meta["classes"]), logits.shape
            np.testing.assert_allclose(first[0], logits[0], rtol=1e-5, atol=1e-5)
            print(f"{name}: ops {ops}, logits[0] {logits[0]}")
            cases.append(dict(meta, fnv1a64=fnv1a64(data), ops=ops,
                              logits=[float(v) for v in logits.reshape(-1)]))
    out = {
        "generator": "tools/onnx_reference.py",
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
