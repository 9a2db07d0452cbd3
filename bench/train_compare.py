#!/usr/bin/env python3
"""Training-step time: kestrel (Burn, Flex CPU backend) against PyTorch, NCHW and channels-last.

Usage (from the repository root; needs torch and torchvision):

    python3 bench/train_compare.py --model mobilenet-v2 [--width 1.0] [--batch 16]
        [--resolution 128] [--classes 10] [--threads 2] [--warmup 2] [--runs 10]
        [--kestrel PATH] [--plain-ops]

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

Without `--kestrel`, the binary is built and run with `cargo run --release --bin kestrel`
(set CARGO_TARGET_DIR as you build). mobilenet-v1 has no torchvision model: PyTorch is then
skipped. Timings are only meaningful on an otherwise idle machine.
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

from bench_common import add_rounds_arg


def kestrel_cmd(args):
    if args.kestrel:
        return [args.kestrel]
    return ["cargo", "run", "--quiet", "--release", "--bin", "kestrel", "--"]


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
    env = dict(os.environ)
    if args.plain_ops:
        env["KESTREL_PLAIN_OPS"] = "1"
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def torch_model(args):
    width = 1.0 if args.width is None else args.width
    if args.model == "mobilenet-v2":
        return torchvision.models.mobilenet_v2(width_mult=width, num_classes=args.classes)
    if args.model in ("resnet18", "resnet34", "resnet50"):
        return getattr(torchvision.models, args.model)(num_classes=args.classes)
    return None


def time_torch(args, channels_last):
    torch.manual_seed(0)
    model = torch_model(args)
    if model is None:
        return None
    model.train()
    x = torch.rand(args.batch, 3, args.resolution, args.resolution) * 2 - 1
    y = torch.randint(0, args.classes, (args.batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mobilenet-v2")
    p.add_argument("--width", type=float)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--kestrel", help="path of the kestrel binary (default: cargo run --release)")
    p.add_argument("--plain-ops", action="store_true", help="KESTREL_PLAIN_OPS=1 for kestrel")
    add_rounds_arg(p, "kestrel and PyTorch this many times")
    args = p.parse_args()
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
    print(f"{args.model} training step, batch {args.batch}, {args.resolution}x{args.resolution}, "
          f"{args.classes} classes, {args.threads} threads, {args.runs} timed steps"
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
