#!/usr/bin/env python3
"""Reference clipping ranges for kestrel-runtime's activation calibration (quant/calibrate.rs).

Usage (from the repository root; prints Rust constants to paste into the tests):

    pip download nvidia-modelopt==0.47.0 --no-deps -d /tmp/mo && (cd /tmp/mo && unzip -q -o *.whl)
    /work/venv-py/bin/python tools/calib_fixtures.py /tmp/mo/modelopt/torch/quantization/calib/histogram.py

(the venv has numpy 2.4, scipy 1.17 and onnxruntime 1.32).

The samples come from a 64-bit LCG that `lcg_laplace` in the Rust tests implements identically:
state = state * 6364136223846793005 + 1442695040888963407 (mod 2^64), u = ((state >> 40) + 0.5) / 2^24,
d = u - 0.5, x = -sign(d) * ln(1 - 2|d|) (a Laplace(0, 1) sample, libm `log`), rounded to float32.

References, all computed by the libraries' own code on the whole sample at once (one `collect` call):
  * signed tensors: onnxruntime's `HistogramCollector` (2048 bins over [-T, T], T = max|x|):
    `percentile` with symmetric=False (clips (100 - p)/2 % off each tail) and `entropy` with
    num_quantized_bins 256 (kestrel's choice) and 128 (onnxruntime's default).
  * non-negative tensors: onnxruntime's `HistogramCollector` `percentile` with symmetric=True
    (histogram of |x| = x over [0, max] for RELU, which holds an exact 0), and NVIDIA Model
    Optimizer's `_compute_amax_entropy(hist, edges, num_bits=8, unsigned=True)` (the TensorRT
    entropy calibration for unsigned 8-bit: 256 quantised bins over [0, t]) on the 2048-bin numpy
    histogram over [0, max]. That function is taken out of the unpacked wheel's histogram.py with
    `ast` so that neither torch nor the rest of the package is needed; its only torch call wraps
    the result in a tensor and is replaced by the identity.
"""

import ast
import contextlib
import io
import math
import sys
import types
from collections import Counter

import numpy as np
from onnxruntime.quantization.calibrate import HistogramCollector
from scipy.stats import entropy

M64 = (1 << 64) - 1


def lcg_laplace(seed, n, scale):
    """n Laplace(0, scale) samples as float32 (scale applied in float64 before rounding)."""
    s = seed & M64
    out = []
    for _ in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) & M64
        u = ((s >> 40) + 0.5) / 16777216.0
        d = u - 0.5
        x = -math.log(1.0 - 2.0 * abs(d)) * scale
        out.append(x if d >= 0 else -x)
    return np.array(out, dtype=np.float32)


def samples():
    """The fixture tensors (the Rust tests build the same ones)."""
    lap = lcg_laplace(1, 20000, 1.0)
    signed = np.concatenate([lap, np.array([-25.0, 40.0], dtype=np.float32)])
    skewed = lcg_laplace(3, 20000, 0.5) + np.float32(1.0)
    relu = np.concatenate([np.maximum(lcg_laplace(2, 20000, 1.0), np.float32(0.0)),
                           np.array([40.0, 60.0], dtype=np.float32)])
    half = np.concatenate([np.abs(lcg_laplace(4, 20000, 2.0)), np.array([100.0], dtype=np.float32)])
    return {"SIGNED": signed, "SKEWED": skewed, "RELU": relu, "HALF": half}


def ort(method, x, symmetric, nq=128, percentile=99.99):
    c = HistogramCollector(method=method, symmetric=symmetric, num_bins=2048,
                           num_quantized_bins=nq, percentile=percentile, scenario="same")
    with contextlib.redirect_stdout(io.StringIO()):
        c.collect({"x": x})
        r = c.compute_collection_result()["x"]
    return float(r[0]), float(r[1])


def modelopt_entropy(path):
    tree = ast.parse(open(path).read())
    ns = {"np": np, "Counter": Counter, "entropy": entropy,
          "torch": types.SimpleNamespace(tensor=lambda v: v)}
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_compute_amax_entropy"]
    exec(compile(ast.Module(fns, []), path, "exec"), ns)
    return ns["_compute_amax_entropy"]


def f32(v):
    """The shortest decimal that reads back as the same float32."""
    return np.format_float_positional(np.float32(v), unique=True, trim="0")


def stats(name, x):
    """min, max and float64 sum: the Rust tests check their copy of the sample against these."""
    print(f"const {name}_STATS: (f32, f32, f64) = ({f32(x.min())}, {f32(x.max())}, "
          f"{float(x.astype(np.float64).sum())!r});")


def rust(name, pair):
    print(f"const {name}: (f32, f32) = ({f32(pair[0])}, {f32(pair[1])});")


def main():
    mo_entropy = modelopt_entropy(sys.argv[1])
    s = samples()
    for name in ("SIGNED", "SKEWED"):
        x = s[name]
        stats(name, x)
        rust(f"ORT_PCT9999_{name}", ort("percentile", x, False, percentile=99.99))
        rust(f"ORT_PCT999_{name}", ort("percentile", x, False, percentile=99.9))
        rust(f"ORT_ENT256_{name}", ort("entropy", x, False, nq=256))
        rust(f"ORT_ENT128_{name}", ort("entropy", x, False, nq=128))
    for name in ("RELU", "HALF"):
        x = s[name]
        stats(name, x)
        if name == "RELU":
            rust("ORT_PCT9999_RELU", ort("percentile", x, True, percentile=99.99))
            rust("ORT_PCT999_RELU", ort("percentile", x, True, percentile=99.9))
        hist, edges = np.histogram(x, 2048, range=(np.float32(0.0), x.max()))
        assert edges.dtype == np.float32
        amax = float(mo_entropy(hist.copy(), edges, 8, True))
        print(f"const MO_ENT_{name}: f32 = {f32(amax)};")


if __name__ == "__main__":
    main()
