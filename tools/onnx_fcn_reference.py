#!/usr/bin/env python3
"""Run kestrel's ONNX exports of FCN segmenters through ONNX Runtime and record their scores.

Usage (from the repository root, with CARGO_TARGET_DIR set as you build):

    pip install onnx onnxruntime numpy
    python3 tools/onnx_fcn_reference.py [--out crates/kestrel-nn/tests/fixtures/onnx_fcn_ort.json]

Steps:
  1. `cargo test --workspace --lib write_onnx_fcn_reference_inputs -- --ignored` writes, for each
     case of `export::onnx::tests::FCN_CASES` (FCN-8s/16s/32s on MobileNetV2 and ResNet-18, output
     strides 32/16/8, bilinear, transposed, pixel-shuffle, bicubic, nearest, CARAFE and Meta-Upscale
     upsampling, odd input sizes so that the crops matter; seeded random weights and batch-norm
     statistics), the exported `.onnx` file and its NCHW float32 input.
  2. Each model must pass `onnx.checker.check_model(full_check=True)` (which runs shape
     inference) and declare opset 17 and an input `input` with a symbolic batch dimension.
  3. ONNX Runtime (CPU provider) runs it; the scores must have shape (1, classes, R, R).
  4. The fixture records the case, the FNV-1a 64 fingerprint of the exported bytes and the scores
     (6 significant digits). The Rust test re-exports, checks the fingerprint and compares the
     Burn model's scores with ONNX Runtime's.

Rerun whenever the exporter's output bytes change on purpose.
"""

import numpy as np

import onnx_cases


def score_fields(meta, ops, input_path, sess):
    """ONNX Runtime's per-pixel scores (1, classes, R, R), to 6 significant digits."""
    name = meta["name"]
    r, k = meta["resolution"], meta["classes"]
    x = np.fromfile(input_path, dtype="<f4").reshape(1, 3, r, r)
    scores = sess.run(["logits"], {"input": x})[0]
    assert scores.shape == (1, k, r, r), scores.shape
    print(f"{name}: ops {ops}, max |score| {np.abs(scores).max():.4f}")
    return {"scores": [float(f"{v:.6g}") for v in scores.reshape(-1)]}


if __name__ == "__main__":
    onnx_cases.main(
        "tools/onnx_fcn_reference.py",
        "crates/kestrel-nn/tests/fixtures/onnx_fcn_ort.json",
        ["cargo", "test", "--workspace", "--lib", "write_onnx_fcn_reference_inputs", "--",
         "--ignored"],
        score_fields,
        separators=(",", ":"),
    )
