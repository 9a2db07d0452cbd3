#!/usr/bin/env python3
"""Generate the PyTorch BatchNorm2d reference that kestrel's BatchNorm2d is tested against.

Usage (from the repository root):

    python3 tools/torch_bn_fixture.py [--out crates/kestrel-nn/tests/fixtures/torch_bn.json]

One torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1) with random gamma, beta and initial running
statistics; two train-mode forward passes on inputs x1 and x2 (N, C, H, W) = (4, 3, 5, 5), with
the output and the updated running_mean / running_var after each; then an eval-mode forward pass
on x3. Everything is float32 and seeded; `crates/kestrel-nn/tests/torch_bn_fixture.rs` requires
agreement within 1e-5.
"""

import argparse
import json
import os

import torch


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="crates/kestrel-nn/tests/fixtures/torch_bn.json")
    args = ap.parse_args()

    torch.manual_seed(20261128)
    shape = (4, 3, 5, 5)
    c = shape[1]
    bn = torch.nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(torch.empty(c).uniform_(0.5, 1.5) * torch.tensor([1.0, -1.0, 1.0]))
        bn.bias.copy_(torch.empty(c).uniform_(-1.0, 1.0))
        bn.running_mean.copy_(torch.empty(c).uniform_(-0.5, 0.5))
        bn.running_var.copy_(torch.empty(c).uniform_(0.5, 2.0))
    fixture = {
        "torch": torch.__version__,
        "shape": list(shape),
        "eps": bn.eps,
        "momentum": bn.momentum,
        "gamma": flat(bn.weight),
        "beta": flat(bn.bias),
        "running_mean": flat(bn.running_mean),
        "running_var": flat(bn.running_var),
        "train": [],
    }
    bn.train()
    for step in range(2):
        # Per-channel offsets and scales so that the batch statistics differ between channels.
        x = torch.randn(shape) * torch.tensor([1.0, 3.0, 0.5]).view(1, c, 1, 1) + torch.tensor(
            [0.5, -2.0, 4.0]
        ).view(1, c, 1, 1)
        y = bn(x)
        fixture["train"].append(
            {
                "input": flat(x),
                "output": flat(y),
                "running_mean": flat(bn.running_mean),
                "running_var": flat(bn.running_var),
            }
        )
    bn.eval()
    x = torch.randn(shape) * 2.0
    fixture["eval"] = {"input": flat(x), "output": flat(bn(x))}

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
