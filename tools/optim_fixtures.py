#!/usr/bin/env python3
"""Generate the PyTorch reference values that kestrel-train's optimisers, parameter groups and
learning-rate schedules are tested against.

Usage (from the repository root):

    python3 tools/optim_fixtures.py [--out crates/kestrel-train/tests/fixtures/optim.json]

The model is tiny and written out by hand so that the Rust test builds the same thing:

    h   = tanh((x @ body.W^T + body.b) * norm.gamma + norm.beta)
    out = h @ head.W^T + head.b
    loss = mean((out - y)^2)  [+ l1 * sum |w| over the penalised parameters]

with body a Linear(4 -> 3), norm the affine parameters of a BatchNorm over 3 channels (used as
a plain affine map: no batch statistics) and head a Linear(3 -> 2). Inputs and initial values
are drawn in float32 from a seeded generator, then every step runs in float64 in torch, so the
stored trajectories are the exact optimiser arithmetic. Linear weights are stored in Burn's
(in, out) layout, i.e. transposed.

Each case gives the TOML text of kestrel's TrainConfig keys it needs and the parameters after
each of `steps` steps of torch.optim.SGD / Adam / AdamW at a constant learning rate, with the
param groups kestrel builds from that configuration: weight decay on weights only (biases and
BatchNorm gamma/beta in a no-decay group) unless `decay_norm_and_bias = true`, and every
`[optim.groups.NAME]` its own lr and weight decay.

Schedules: torch.optim.lr_scheduler.StepLR (per epoch) and CosineAnnealingLR (per step, eta_min
0) learning rates.
"""

import argparse
import json
import os

import numpy as np
import torch

STEPS = 5
NAMES = ["body.weight", "body.bias", "norm.gamma", "norm.beta", "head.weight", "head.bias"]
WEIGHTS = {"body.weight", "head.weight"}


def f32(rng, shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32).astype(np.float64)


def initial(rng):
    return {
        "body.weight": f32(rng, (3, 4), 0.5),
        "body.bias": f32(rng, (3,), 0.1),
        "norm.gamma": f32(rng, (3,), 0.1, 1.0),
        "norm.beta": f32(rng, (3,), 0.1),
        "head.weight": f32(rng, (2, 3), 0.5),
        "head.bias": f32(rng, (2,), 0.1),
    }


def burn_layout(name, t):
    """Linear weights (out, in) -> (in, out)."""
    a = t.detach().numpy()
    if name.endswith(".weight"):
        a = a.T
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def loss_fn(p, x, y, l1, l1_names):
    h = torch.tanh((x @ p["body.weight"].T + p["body.bias"]) * p["norm.gamma"] + p["norm.beta"])
    out = h @ p["head.weight"].T + p["head.bias"]
    loss = ((out - y) ** 2).mean()
    if l1:
        loss = loss + l1 * sum(p[n].abs().sum() for n in l1_names)
    return loss


def run_case(init, x, y, case):
    p = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in init.items()}
    lr, wd = case["lr"], case["weight_decay"]
    all_decay = case.get("decay_norm_and_bias", False)
    decayed = lambda n: all_decay or n in WEIGHTS  # noqa: E731
    groups = case.get("groups", {})
    member = {}
    for g, spec in groups.items():
        for n in NAMES:
            if n.startswith(spec["match"]):
                member[n] = g
    # One torch param group per (kestrel group, decayed?) pair, as kestrel builds them.
    buckets = {}
    for n in NAMES:
        g = member.get(n)
        if g is None:
            g_lr, g_wd = lr, wd
        else:
            spec = groups[g]
            g_lr = spec.get("lr", lr * spec.get("lr_scale", 1.0))
            g_wd = spec.get("weight_decay", wd)
        key = (g, decayed(n))
        buckets.setdefault(key, {"params": [], "lr": g_lr, "weight_decay": g_wd if decayed(n) else 0.0})
        buckets[key]["params"].append(p[n])
    param_groups = list(buckets.values())
    kind = case["kind"]
    if kind in ("sgd", "nesterov"):
        m = case.get("momentum", 0.9)
        opt = torch.optim.SGD(param_groups, lr=lr, momentum=m, dampening=0.0, nesterov=kind == "nesterov")
    elif kind == "adam":
        opt = torch.optim.Adam(param_groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    elif kind == "adamw":
        opt = torch.optim.AdamW(param_groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        raise ValueError(kind)
    l1 = case.get("l1", 0.0)
    l1_names = [n for n in NAMES if decayed(n)]
    trajectory, losses = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_fn(p, x, y, l1, l1_names)
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
        trajectory.append({n: burn_layout(n, p[n]) for n in NAMES})
    return trajectory, losses


def toml_of(case):
    lines = [
        f'lr = {case["lr"]!r}',
        f'weight_decay = {case["weight_decay"]!r}',
        'schedule = "constant"',
        "warmup_epochs = 0.0",
    ]
    if case.get("l1"):
        lines.append(f'l1 = {case["l1"]!r}')
    if case.get("decay_norm_and_bias"):
        lines.append("decay_norm_and_bias = true")
    lines.append("[optim]")
    lines.append(f'kind = "{case["kind"]}"')
    if "momentum" in case:
        lines.append(f'momentum = {case["momentum"]!r}')
    for g, spec in case.get("groups", {}).items():
        lines.append(f"[optim.groups.{g}]")
        for k, v in spec.items():
            lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v!r}")
    return "\n".join(lines) + "\n"


CASES = [
    {"name": "sgd_momentum_wd", "kind": "sgd", "lr": 0.1, "weight_decay": 0.05},
    {"name": "sgd_plain", "kind": "sgd", "lr": 0.2, "weight_decay": 0.0, "momentum": 0.0},
    {"name": "nesterov_wd", "kind": "nesterov", "lr": 0.1, "weight_decay": 0.05},
    {"name": "adam_wd", "kind": "adam", "lr": 0.01, "weight_decay": 0.1},
    {"name": "adamw_wd", "kind": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"name": "sgd_decay_all", "kind": "sgd", "lr": 0.1, "weight_decay": 0.05, "decay_norm_and_bias": True},
    {"name": "sgd_l1", "kind": "sgd", "lr": 0.1, "weight_decay": 0.0, "l1": 0.01},
    {
        "name": "sgd_groups",
        "kind": "sgd",
        "lr": 0.05,
        "weight_decay": 0.05,
        "groups": {"head": {"match": "head.", "lr_scale": 10.0, "weight_decay": 0.0}},
    },
    {
        "name": "adamw_groups",
        "kind": "adamw",
        "lr": 0.01,
        "weight_decay": 0.01,
        "groups": {
            "head": {"match": "head.", "lr": 0.05, "weight_decay": 0.2},
            "norm": {"match": "norm.", "lr_scale": 0.5},
        },
    },
]


def schedules():
    out = {}
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    out["step"] = {"lr": 0.5, "step_size": 3, "gamma": 0.1, "epochs": 10, "lrs": lrs}
    opt = torch.optim.SGD([w], lr=0.2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12)
    lrs = []
    for _ in range(12):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    out["cosine"] = {"lr": 0.2, "total": 12, "lrs": lrs}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="crates/kestrel-train/tests/fixtures/optim.json")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    init = initial(rng)
    x = f32(rng, (5, 4))
    y = f32(rng, (5, 2))
    xt, yt = torch.tensor(x), torch.tensor(y)
    cases = []
    for case in CASES:
        trajectory, losses = run_case(init, xt, yt, case)
        cases.append(
            {"name": case["name"], "toml": toml_of(case), "losses": losses, "trajectory": trajectory}
        )
    fixture = {
        "torch": torch.__version__,
        "steps": STEPS,
        "x": {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1)]},
        "y": {"shape": list(y.shape), "data": [float(v) for v in y.reshape(-1)]},
        "initial": {n: burn_layout(n, torch.tensor(v)) for n, v in init.items()},
        "cases": cases,
        "schedules": schedules(),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=1)
    print(f"wrote {len(cases)} optimiser cases and 2 schedules to {args.out}")


if __name__ == "__main__":
    main()
