#!/usr/bin/env python3
"""Training-step time: kestrel (Burn, Flex CPU backend) against PyTorch, NCHW and channels-last.

Usage (from the repository root; needs torch and torchvision):

    python3 bench/train_compare.py --model mobilenet-v2 [--width 1.0] [--batch 16]
        [--resolution 128] [--classes 10] [--threads 2] [--warmup 2] [--runs 10]
        [--kestrel PATH] [--plain-ops]
    python3 bench/train_compare.py --model fcn8s-mobilenet-v2 [--output-stride 32|16|8]
        [--upsampler bilinear|transposed|nearest|bicubic] ...
    python3 bench/train_compare.py --model fcn8s-mobilenet-v2 --check-twin [--width 0.5] ...

One invocation runs

    kestrel bench train --json --model M --batch B --resolution R --classes K --threads T ...

and then times the same optimiser step in PyTorch on the same threads: the torchvision model
(random weights, train mode: BatchNorm on batch statistics, dropout on), a random batch of
B x 3 x R x R values uniform in [-1, 1) with random labels, cross-entropy, `backward()` and
`torch.optim.SGD(lr=0.01, momentum=0.9)`'s step — first in NCHW, then in channels-last memory
format. It prints the three medians (and minima) and the ratios kestrel / PyTorch (above 1:
kestrel is slower). `--rounds N` alternates the engines N times (a drift in a shared machine's
speed then touches all alike) and prints the medians of the rounds and every round's ratio.
`--plain-ops` sets KESTREL_PLAIN_OPS=1 for kestrel (Burn's own operations
instead of kestrel's training kernels).

A segmenter (`fcn32s-`, `fcn16s-`, `fcn8s-mobilenet-v2`, with `--output-stride` and
`--upsampler`, passed on to kestrel) is timed in PyTorch on the twin of bench/fcn_twin.py (kestrel's
architecture on torchvision's MobileNetV2 features: the same taps, dilation, zero-initialised 1x1
score layers, upsamplers and crops) with one random label per pixel (B x R x R) and the per-pixel
cross-entropy kestrel's segment task trains with (mean over pixels, ignore index 255, which the
labels never take). The twin covers the nearest, bilinear, bicubic and transposed upsamplers; for
the others, and for ResNet backbones, PyTorch is skipped with a message.

`--check-twin` times nothing: it compares the twin with `kestrel info MODEL ... --json` at the given
width, resolution, classes, output stride and upsampler — the parameter counts, and every
convolution's input and output shapes, kernel, stride, dilation and groups — and exits 1 on a
difference. The parameter counts agree for width 1.0 and 0.5 at output strides 32 and 8 (the table
is in bench/fcn_twin.py's docstring).

Without `--kestrel`, the binary is built and run with `cargo run --release` (bench_common's
kestrel_cmd; set CARGO_TARGET_DIR as you build). mobilenet-v1 has no torchvision model: PyTorch
is then skipped. Timings are only meaningful on an otherwise idle machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torchvision

from bench_common import add_rounds_arg, kestrel_cmd
from fcn_twin import conv_geometry, fcn_twin

# The segmenters' flags when not given (and the only values a classifier takes).
DEFAULT_OUTPUT_STRIDE, DEFAULT_UPSAMPLER = 32, "bilinear"


def is_segmenter(args):
    return args.model.startswith("fcn")


def segmenter_flags(args):
    """kestrel's flags for the segmenter settings (none for a classifier)."""
    if not is_segmenter(args):
        return []
    return ["--output-stride", str(args.output_stride), "--upsampler", args.upsampler]


def run_kestrel(args):
    cmd = kestrel_cmd(args) + [
        "bench", "train", "--json",
        "--model", args.model,
        "--batch", str(args.batch),
        "--resolution", str(args.resolution),
        "--classes", str(args.classes),
        "--threads", str(args.threads),
        "--warmup", str(args.warmup),
        "--runs", str(args.runs),
    ]
    if args.width is not None:
        cmd += ["--width", str(args.width)]
    cmd += segmenter_flags(args)
    env = dict(os.environ)
    if args.plain_ops:
        env["KESTREL_PLAIN_OPS"] = "1"
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


# The reasons for skipping PyTorch already given.
_SKIPPED = set()


def skip_torch(why):
    """Says on stderr, once per reason, why PyTorch is skipped; returns None."""
    if why not in _SKIPPED:
        _SKIPPED.add(why)
        print(f"PyTorch skipped: {why}", file=sys.stderr)


def torch_model(args):
    """The PyTorch model, or None (with the reason on stderr) when there is none."""
    width = 1.0 if args.width is None else args.width
    if is_segmenter(args):
        model, why = fcn_twin(args.model, width, args.classes, args.output_stride, args.upsampler)
        return model if model is not None else skip_torch(why)
    if args.model == "mobilenet-v2":
        return torchvision.models.mobilenet_v2(width_mult=width, num_classes=args.classes)
    if args.model in ("resnet18", "resnet34", "resnet50"):
        return getattr(torchvision.models, args.model)(num_classes=args.classes)
    return skip_torch(f"torchvision has no {args.model}")


def batch(args):
    """The random images uniform in [-1, 1) and their labels: one per image, or one per pixel
    of a segmenter's (B, R, R) mask."""
    b, r = args.batch, args.resolution
    x = torch.rand(b, 3, r, r) * 2 - 1
    y = torch.randint(0, args.classes, (b, r, r) if is_segmenter(args) else (b,))
    return x, y


def time_torch(args, channels_last):
    torch.manual_seed(0)
    model = torch_model(args)
    if model is None:
        return None
    model.train()
    x, y = batch(args)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # kestrel's segment task ignores mask value 255 (no random label takes it).
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255 if is_segmenter(args) else -100)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    ms = []
    for _ in range(args.runs):
        t = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t) * 1e3)
    return {"min_ms": min(ms), "median_ms": statistics.median(ms)}


def kestrel_info(args):
    """`kestrel info --json` of the model with the run's settings."""
    cmd = kestrel_cmd(args) + [
        "info", args.model, "--json",
        "--resolution", str(args.resolution),
        "--classes", str(args.classes),
    ] + segmenter_flags(args)
    if args.width is not None:
        cmd += ["--width", str(args.width)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def check_twin(args):
    """Compares the twin with kestrel's description; returns the process's exit status."""
    torch.manual_seed(0)
    model = torch_model(args)
    if model is None:
        return 1
    x = torch.zeros(1, 3, args.resolution, args.resolution)
    twin, twin_params = conv_geometry(model, x)
    info = kestrel_info(args)
    # kestrel describes a transposed convolution as an `upsample` layer (its kernel is the
    # support, the input units one output unit depends on): compared by shapes and parameters.
    ours = sorted(
        ("conv", layer["in"], layer["out"], layer["kernel"], layer["stride"], layer["dilation"],
         layer["groups"]) if layer["kind"] == "conv"
        else ("upsample", layer["in"], layer["out"], layer["params"])
        for layer in info["layers"]
        if layer["kind"] == "conv" or (layer["kind"] == "upsample" and layer["params"] > 0)
    )
    width = 1.0 if args.width is None else args.width
    print(f"{args.model} width {width}, output stride {args.output_stride}, {args.upsampler}, "
          f"{args.classes} classes, {args.resolution}x{args.resolution}: "
          f"parameters twin {twin_params:,}, kestrel info {info['params']:,}; "
          f"{len(twin)} / {len(ours)} convolutions")
    ok = twin_params == info["params"] and twin == ours
    if twin != ours:
        for a, b in zip(twin, ours):
            if a != b:
                print(f"  first difference: twin {a}, kestrel {b}")
                break
    print("match" if ok else "MISMATCH")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mobilenet-v2")
    p.add_argument("--width", type=float)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--output-stride", type=int, default=DEFAULT_OUTPUT_STRIDE,
                   help="a segmenter's output stride: 32, 16 or 8")
    p.add_argument("--upsampler", default=DEFAULT_UPSAMPLER,
                   help="a segmenter's upsampling layers (PyTorch twin: nearest, bilinear, "
                        "bicubic, transposed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--kestrel", help="path of the kestrel binary (default: cargo run --release)")
    p.add_argument("--plain-ops", action="store_true", help="KESTREL_PLAIN_OPS=1 for kestrel")
    p.add_argument("--check-twin", action="store_true",
                   help="compare the PyTorch twin of a segmenter with `kestrel info` and exit")
    add_rounds_arg(p, "kestrel and PyTorch this many times")
    args = p.parse_args()
    if not is_segmenter(args) and (args.output_stride, args.upsampler) != (
            DEFAULT_OUTPUT_STRIDE, DEFAULT_UPSAMPLER):
        p.error("--output-stride and --upsampler are for segmenters (fcn8s-mobilenet-v2, ...)")
    if args.check_twin:
        if not is_segmenter(args):
            p.error("--check-twin compares a segmenter's twin (fcn8s-mobilenet-v2, ...)")
        sys.exit(check_twin(args))
    if args.runs < 10:
        sys.exit("--runs: kestrel bench train needs at least 10")
    torch.set_num_threads(args.threads)

    # Alternate the engines `rounds` times, so that a drift in the machine's speed (a shared host)
    # touches all of them alike; each round's ratios are kept.
    names = ["kestrel (Flex)", "PyTorch NCHW", "PyTorch channels-last"]
    per_round = []
    for _ in range(max(1, args.rounds)):
        got = {names[0]: run_kestrel(args)}
        for name, cl in ((names[1], False), (names[2], True)):
            r = time_torch(args, cl)
            if r is not None:
                got[name] = r
        per_round.append(got)
    rows = []
    for name in names:
        rs = [g[name] for g in per_round if name in g]
        if rs:
            rows.append((name, {
                "median_ms": statistics.median(r["median_ms"] for r in rs),
                "min_ms": min(r["min_ms"] for r in rs),
            }))
    k = rows[0][1]
    seg = (f", output stride {args.output_stride}, {args.upsampler}"
           if is_segmenter(args) else "")
    print(f"{args.model} training step, batch {args.batch}, {args.resolution}x{args.resolution}, "
          f"{args.classes} classes{seg}, {args.threads} threads, {args.runs} timed steps"
          + (f", {args.rounds} rounds" if args.rounds > 1 else ""))
    for name, r in rows:
        print(f"  {name:<22} median {r['median_ms']:9.2f} ms   min {r['min_ms']:9.2f} ms")
    for name, r in rows[1:]:
        line = f"  kestrel / {name}: {k['median_ms'] / r['median_ms']:.2f}x (median)"
        if args.rounds > 1:
            ratios = sorted(g[names[0]]["median_ms"] / g[name]["median_ms"] for g in per_round)
            line += "   rounds: " + " ".join(f"{x:.2f}" for x in ratios)
        print(line)


if __name__ == "__main__":
    main()
