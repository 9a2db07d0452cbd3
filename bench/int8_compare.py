#!/usr/bin/env python3
"""int8 inference: kestrel's int8 engine against ONNX Runtime's own static quantisation of the same
network, calibrated on the same images, in one invocation.

Usage (from the repository root; needs `pip install onnxruntime numpy Pillow`):

    python3 bench/int8_compare.py [--threads 2] [--runs 20] [--warmup 3] [--rounds 3]
        [--kestrel PATH] [--only NAME ...] [--batches 1,32] [--calib-n 32]

It first writes the calibration set once into a temporary folder: `--calib-n` (default 32)
deterministic 256 x 256 RGB PNGs (smooth random colour gradients with a few filled shapes, numpy
with a fixed seed, saved by Pillow) in the ImageFolder layout `DIR/<class>/<image>.png`. Being
256 x 256, torchvision's `Resize(256)` leaves them as they are, so both sides' preprocessing comes
down to the same centre crop and normalisation. Then, for every case (MobileNetV2-1.0 and ResNet-18
at 224 x 224, batch 1 and 32):

1. `kestrel bench infer --model M --batch B --engine int8 --calib folder:DIR --calib-n N
   --export-onnx FP32.onnx --json`: kestrel builds the model with random weights, calibrates it with
   min/max on the N images (torchvision's Resize(256) + CenterCrop(224) + ImageNet mean/std), times
   its int8 engine and writes the fp32 model (NCHW, batch norm folded) as ONNX;
2. ONNX Runtime quantises that file: `quant_pre_process` (ONNX shape inference and ORT's basic
   graph optimisations, which `quantize_static` asks for; the symbolic shape inference, for
   transformers, needs sympy and is skipped), then `quantize_static` with QDQ format,
   per-channel int8 weights, uint8 activations and min/max calibration on the same N images
   preprocessed the same way in Python (Pillow: shorter side to 256, bilinear; centre crop 224;
   /255, ImageNet mean/std; NCHW float32, one image per calibration batch). `reduce_range` stays
   off: ONNX Runtime recommends that on CPUs with VNNI (AVX-512 VNNI or AVX-VNNI);
3. `--rounds` times in a row: kestrel int8, ONNX Runtime on the QDQ model (CPU provider,
   `intra_op_num_threads` = the same threads, sequential, all graph optimisations, the same
   seeded input as kestrel's, uniform in [-1, 1)) and kestrel fp32 (`--engine runtime`).

Per case it prints the three medians (ms, the median over rounds of each round's median), the
ratio ONNX Runtime int8 / kestrel int8 (above 1: kestrel is faster) and kestrel int8 / kestrel fp32
(below 1: int8 pays), each the median of the rounds' ratios (each round measured back to back),
and every round's ratios in round order. It also runs ONNX Runtime's QDQ model and ONNX Runtime
on the fp32 export over the N calibration images and prints their top-1 agreement and the mean
cosine similarity of the logits: informative only (ONNX Runtime's own quantisation error on a
random-weight network, whose logits are tiny and nearly tied, so the agreement is low-ish).

Random weights: the timing does not depend on them, but the agreement and the "same network"
claim do; the script compares the ONNX files written by the first int8 and the first fp32 kestrel
call of each case and says whether they are byte-identical (kestrel's random weights are meant to
be seeded). ONNX Runtime always quantises the file written by the first int8 call.

`--only` keeps the named models, `--batches` overrides the batch sizes, `--no-preprocess` skips
`quant_pre_process` (an ablation), `--keep DIR` keeps the ONNX files and the calibration images.
Without `--kestrel` the binary is `$CARGO_TARGET_DIR/release/kestrel` (or `target/release/kestrel`
in the repository). Timings are meaningful only on an otherwise idle machine; a smoke run of the
script itself:

    python3 bench/int8_compare.py --runs 10 --warmup 1 --rounds 1 --batches 1 --only mobilenet-v2
"""

import argparse
import json
import logging
import os
import subprocess
import tempfile

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quant_pre_process, quantize_static)
from PIL import Image, ImageDraw

from bench_common import add_rounds_arg, median, ort_session, time_ort

# (model, batch); 224 x 224 throughout (kestrel's --calib takes torchvision's 224 crop).
CASES = [
    ("mobilenet-v2", 1),
    ("mobilenet-v2", 32),
    ("resnet18", 1),
    ("resnet18", 32),
]
RES = 224
CLASSES = 4  # calibration images are spread over this many class folders (ImageFolder layout)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def default_kestrel():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target")
    return os.path.join(target, "release", "kestrel")


def make_calib_images(root, n, seed=0, size=256):
    """`n` deterministic size x size RGB PNGs under root/<class>/: a smooth colour field (a linear
    gradient and a low-frequency wave per channel) with a few filled rectangles and ellipses.
    Returns the paths, sorted (class folder, then file name)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    paths = []
    for i in range(n):
        img = np.empty((size, size, 3), np.float32)
        for c in range(3):
            a, b, base = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.2, 0.8)
            fx, fy, ph = rng.uniform(0.5, 3), rng.uniform(0.5, 3), rng.uniform(0, 2 * np.pi)
            img[..., c] = (base + 0.35 * (a * xx + b * yy)
                           + 0.15 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph))
        im = Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(2, 6))):
            x0, y0 = (int(v) for v in rng.integers(0, size - 32, 2))
            w, h = (int(v) for v in rng.integers(16, 128, 2))
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            box = [x0, y0, min(x0 + w, size - 1), min(y0 + h, size - 1)]
            (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=fill)
        d = os.path.join(root, f"class{i % CLASSES}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, f"img{i:03d}.png")
        im.save(p)
        paths.append(p)
    return sorted(paths)


def preprocess(path):
    """torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet) with Pillow:
    1 x 3 x 224 x 224 float32."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    short, long_ = min(w, h), max(w, h)
    other = int(256 * long_ / short)
    size = (256, other) if w <= h else (other, 256)
    if size != im.size:
        im = im.resize(size, Image.BILINEAR)
    w, h = im.size
    left, top = int(round((w - RES) / 2.0)), int(round((h - RES) / 2.0))
    im = im.crop((left, top, left + RES, top + RES))
    x = (np.asarray(im, np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class Reader(CalibrationDataReader):
    """The calibration images, one per batch, as ONNX Runtime's calibrator reads them."""

    def __init__(self, arrays, input_name):
        self.items = iter([{input_name: a} for a in arrays])

    def get_next(self):
        return next(self.items, None)


def batch_dim(path):
    """The first dimension of the model's input: an int if fixed, else its symbolic name."""
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.get_inputs()[0].shape[0]


def quantize_ort(fp32, qdq, arrays, preprocess_first, d):
    src = fp32
    if preprocess_first:
        src = os.path.join(d, os.path.basename(fp32).replace(".onnx", "-pre.onnx"))
        # Symbolic shape inference (it needs sympy) is for transformers; ONNX's shape inference
        # and ORT's basic optimisations are what a CNN gets from the pre-processing.
        quant_pre_process(fp32, src, skip_symbolic_shape=True)
    quantize_static(src, qdq, Reader(arrays, "input"), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)


def agreement(fp32, qdq, arrays, threads):
    """Top-1 agreement and mean logit cosine similarity of ONNX Runtime's QDQ model against ONNX
    Runtime on the fp32 model, over the calibration images."""
    a, b = ort_session(fp32, threads), ort_session(qdq, threads)
    same, cos, scale = 0, [], 0.0
    for x in arrays:
        ya = a.run(["logits"], {"input": x})[0].ravel().astype(np.float64)
        yb = b.run(["logits"], {"input": x})[0].ravel().astype(np.float64)
        same += int(ya.argmax() == yb.argmax())
        den = np.linalg.norm(ya) * np.linalg.norm(yb)
        cos.append(float(ya @ yb / den) if den > 0 else float("nan"))
        scale = max(scale, float(np.abs(ya).max()))
    return same, float(np.mean(cos)), scale


def kestrel(args, model, batch, engine, calib_dir, export=None):
    cmd = [args.kestrel, "bench", "infer", "--model", model, "--batch", str(batch),
           "--threads", str(args.threads), "--resolution", str(RES), "--engine", engine,
           "--warmup", str(args.warmup), "--runs", str(args.runs), "--json"]
    if engine == "int8":
        cmd += ["--calib", f"folder:{calib_dir}", "--calib-n", str(args.calib_n)]
    if export:
        cmd += ["--export-onnx", export]
    return json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)


def run_case(args, model, batch, calib_dir, arrays, d):
    fp32 = os.path.join(d, f"{model}-b{batch}.onnx")
    fp32_b = os.path.join(d, f"{model}-b{batch}-fp32run.onnx")
    qdq = os.path.join(d, f"{model}-b{batch}-qdq.onnx")
    k8, o8, kf, sess = [], [], [], None
    for i in range(args.rounds):
        k = kestrel(args, model, batch, "int8", calib_dir, fp32 if i == 0 else None)
        k8.append(k["median_ms"])
        if sess is None:
            dim = batch_dim(fp32)
            if isinstance(dim, int) and dim != batch:
                raise SystemExit(f"{fp32}: input batch fixed at {dim}, not {batch}")
            quantize_ort(fp32, qdq, arrays, not args.no_preprocess, d)
            sess = ort_session(qdq, args.threads)
        o8.append(median(time_ort(sess, batch, RES, args.warmup, args.runs)))
        k = kestrel(args, model, batch, "runtime", calib_dir, fp32_b if i == 0 else None)
        kf.append(k["median_ms"])
    with open(fp32, "rb") as f1, open(fp32_b, "rb") as f2:
        identical = f1.read() == f2.read()
    agree = agreement(fp32, qdq, arrays, args.threads)
    return k8, o8, kf, identical, dim, agree


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--kestrel", default=default_kestrel(), help="path of a built kestrel binary")
    ap.add_argument("--only", nargs="+", help="model names to keep")
    ap.add_argument("--batches", help="override the batch sizes, e.g. 1 or 1,32")
    ap.add_argument("--calib-n", type=int, default=32, help="calibration images (written once)")
    ap.add_argument("--no-preprocess", action="store_true",
                    help="quantise without ONNX Runtime's quant_pre_process")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the images and ONNX files here and keep them")
    add_rounds_arg(ap, "kestrel int8, ONNX Runtime int8 and kestrel fp32 this many times per case")
    args = ap.parse_args()
    if args.runs < 10:
        ap.error("--runs must be at least 10 (kestrel bench infer's minimum)")
    if args.calib_n < 1:
        ap.error("--calib-n must be at least 1")
    if not os.path.exists(args.kestrel):
        ap.error(f"no kestrel binary at {args.kestrel} (build it or pass --kestrel)")

    models = list(dict.fromkeys(m for m, _ in CASES))
    batches = ([int(b) for b in args.batches.split(",")] if args.batches
               else list(dict.fromkeys(b for _, b in CASES)))
    cases = [(m, b) for m in models for b in batches if not args.only or m in args.only]
    if not cases:
        ap.error(f"no case left after --only (models: {', '.join(models)})")

    # quantize_static's progress messages go to the root logger at INFO; keep its warnings.
    logging.getLogger().setLevel(logging.WARNING)
    print(f"threads {args.threads}, warm-up {args.warmup}, median of {args.runs} runs, "
          f"{args.rounds} round(s); onnxruntime {ort.__version__}; calibration: {args.calib_n} "
          f"images, min/max, per-channel weights, uint8 activations"
          f"{'' if not args.no_preprocess else '; no quant_pre_process'}")
    with tempfile.TemporaryDirectory() as tmp:
        d = args.keep or tmp
        os.makedirs(d, exist_ok=True)
        calib_dir = os.path.join(d, "calib")
        arrays = [preprocess(p) for p in make_calib_images(calib_dir, args.calib_n)]
        header = (f"{'model':<14} {'batch':>5} {'k-int8 ms':>10} {'ort-int8 ms':>12} "
                  f"{'k-fp32 ms':>10} {'ort8/k8':>8} {'k8/kfp32':>9}")
        print(header)
        print("-" * len(header), flush=True)
        for model, batch in cases:
            k8, o8, kf, identical, dim, (same, cos, scale) = run_case(
                args, model, batch, calib_dir, arrays, d)
            r_ort = [o / k for o, k in zip(o8, k8)]
            r_fp = [k / f for k, f in zip(k8, kf)]
            print(f"{model:<14} {batch:>5} {median(sorted(k8)):>10.3f} {median(sorted(o8)):>12.3f} "
                  f"{median(sorted(kf)):>10.3f} {median(sorted(r_ort)):>8.2f} "
                  f"{median(sorted(r_fp)):>9.2f}")
            if len(k8) > 1:
                print(f"{'':<14} rounds ort8/k8: " + " ".join(f"{x:.2f}" for x in r_ort))
                print(f"{'':<14} rounds k8/kfp32: " + " ".join(f"{x:.2f}" for x in r_fp))
            print(f"{'':<14} ONNX Runtime int8 vs fp32 on the {len(arrays)} calibration images: "
                  f"top-1 agreement {same}/{len(arrays)}, mean logit cosine {cos:.4f} "
                  f"(fp32 |logit| max {scale:.3g}); export batch dim {dim!r}; kestrel's int8- and "
                  f"fp32-run exports {'identical' if identical else 'DIFFER (weights not seeded)'}",
                  flush=True)


if __name__ == "__main__":
    main()
