#!/usr/bin/env python3
"""Reference values for kestrel-train's multi-task loss weighting (src/weighting.rs).

Usage (from the repository root):

    python3 tools/weighting_fixtures.py [--out crates/kestrel-train/tests/fixtures/weighting.json]

Computed in float64 with PyTorch autograd and optimisers, written from the papers' formulas
independently of the Rust code:
  uncertainty  Kendall et al. 2018, total = sum_i exp(-s_i) L_i + s_i, and d total / d s
  adam         torch.optim.Adam (defaults) on three scalars for a few steps
  gradnorm     one GradNorm update (Chen et al. 2018): G_i = ||grad_W w_i L_i|| = w_i g_i,
               L_grad = sum_i |G_i - mean(G) r_i^alpha| with the target detached,
               r_i = (L_i/L_i(0)) / mean_j(L_j/L_j(0)); Adam step on w; renormalise to sum T
  dwa          Liu et al. 2019 dynamic weight average, w = K softmax(r / T), r = L(t-1)/L(t-2)
"""

import argparse
import json

import numpy as np
import torch


def f32(values):
    """Float32-representable values, as Python floats (the Rust side computes in f32)."""
    return [float(np.float32(v)) for v in values]


def uncertainty_cases(rng):
    cases = []
    for losses, log_vars in [
        ([0.7, 2.3], [0.0, 0.0]),
        (rng.uniform(0.05, 3.0, 2), rng.uniform(-1.5, 1.5, 2)),
        (rng.uniform(0.05, 3.0, 3), rng.uniform(-1.5, 1.5, 3)),
    ]:
        losses, log_vars = f32(losses), f32(log_vars)
        l = torch.tensor(losses, dtype=torch.float64)
        s = torch.tensor(log_vars, dtype=torch.float64, requires_grad=True)
        total = (torch.exp(-s) * l + s).sum()
        total.backward()
        cases.append({
            "losses": losses,
            "log_vars": log_vars,
            "total": total.item(),
            "grad_log_vars": s.grad.tolist(),
        })
    return cases


def adam_case(rng):
    start = rng.normal(size=3).tolist()
    grads = [rng.normal(size=3).tolist() for _ in range(5)]
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.05)
    for g in grads:
        opt.zero_grad()
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return {"start": start, "grads": grads, "lr": 0.05, "end": p.detach().tolist()}


def gradnorm_cases(rng):
    cases = []
    for weights, alpha, lr in [([1.0, 1.0], 1.5, 0.01), ([0.6, 1.4], 1.5, 0.025), ([0.5, 1.2, 1.3], 0.5, 0.1)]:
        t = len(weights)
        initial = rng.uniform(0.5, 3.0, t).tolist()
        losses = (np.array(initial) * rng.uniform(0.2, 1.0, t)).tolist()
        unweighted = rng.uniform(0.01, 2.0, t).tolist()
        w = torch.tensor(weights, dtype=torch.float64, requires_grad=True)
        g = torch.tensor(unweighted, dtype=torch.float64)
        big_g = w * g
        lt = torch.tensor(losses, dtype=torch.float64) / torch.tensor(initial, dtype=torch.float64)
        r = lt / lt.mean()
        target = (big_g.mean() * r ** alpha).detach()
        l_grad = (big_g - target).abs().sum()
        opt = torch.optim.Adam([w], lr=lr)
        opt.zero_grad()
        l_grad.backward()
        grad_w = w.grad.tolist()
        opt.step()
        with torch.no_grad():
            w.clamp_(min=1e-3)
            w.mul_(t / w.sum())
        cases.append({
            "weights": weights,
            "alpha": alpha,
            "lr": lr,
            "initial_losses": initial,
            "losses": losses,
            "weighted_norms": (np.array(weights) * np.array(unweighted)).tolist(),
            "grad_weights": grad_w,
            "new_weights": w.detach().tolist(),
        })
    return cases


def dwa_cases(rng):
    cases = []
    for tasks, epochs, temperature in [(2, 1, 2.0), (2, 2, 2.0), (2, 5, 2.0), (3, 4, 0.5)]:
        history = rng.uniform(0.1, 2.0, (epochs, tasks))
        if len(history) < 2:
            weights = np.ones(tasks)
        else:
            r = history[-1] / history[-2]
            e = np.exp(r / temperature)
            weights = tasks * e / e.sum()
        cases.append({
            "tasks": tasks,
            "temperature": temperature,
            "history": history.tolist(),
            "weights": weights.tolist(),
        })
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/kestrel-train/tests/fixtures/weighting.json")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    doc = {
        "uncertainty": uncertainty_cases(rng),
        "adam": adam_case(rng),
        "gradnorm": gradnorm_cases(rng),
        "dwa": dwa_cases(rng),
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
