#!/usr/bin/env python3
"""Run kestrel's ONNX exports through ONNX Runtime and record the logits kestrel-nn is tested against.

Usage (from the repository root):

    pip install onnx onnxruntime numpy
    python3 tools/onnx_reference.py [--out crates/kestrel-nn/tests/fixtures/onnx_ort.json]

Steps:
  1. `cargo test -p kestrel-nn --lib write_onnx_reference_inputs -- --ignored` writes, for each
     case of `export::onnx::tests::CASES` (MobileNet V1/V2, the MobileNetV2 with plain ReLU,
     ResNet-18/50 with seeded random weights and batch-norm statistics), the exported `.onnx` file and its NCHW float32 input.
  2. Each model must pass `onnx.checker.check_model(full_check=True)` (which also runs ONNX
     shape inference) and declare opset 17, an input `input` with a symbolic batch dimension.
  3. ONNX Runtime (CPU provider) runs the model on the batch, and again on the first image
     alone: the dynamic batch dimension must give the same first row.
  4. The fixture records the case, the FNV-1a 64 fingerprint of the exported bytes and the
     batch's logits. The Rust test re-exports, checks the fingerprint (so the logits belong to
     exactly those bytes) and compares the Burn model's logits with ONNX Runtime's.

Rerun whenever the exporter's output bytes change on purpose.
"""

import numpy as np

import onnx_cases


def logit_fields(meta, ops, input_path, sess):
    """ONNX Runtime's logits for the case's batch; the first image alone must give the same row."""
    name = meta["name"]
    r, b = meta["resolution"], meta["batch"]
    x = np.fromfile(input_path, dtype="<f4").reshape(b, 3, r, r)
    logits = sess.run(["logits"], {"input": x})[0]
    first = sess.run(["logits"], {"input": x[:1]})[0]
    assert logits.shape == (b, meta["classes"]), logits.shape
    np.testing.assert_allclose(first[0], logits[0], rtol=1e-5, atol=1e-5)
    print(f"{name}: ops {ops}, logits[0] {logits[0]}")
    return {"logits": [float(v) for v in logits.reshape(-1)]}


if __name__ == "__main__":
    onnx_cases.main(
        "tools/onnx_reference.py",
        "crates/kestrel-nn/tests/fixtures/onnx_ort.json",
        ["cargo", "test", "-p", "kestrel-nn", "--lib", "write_onnx_reference_inputs", "--",
         "--ignored"],
        logit_fields,
        indent=1,
    )
