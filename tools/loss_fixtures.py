#!/usr/bin/env python3
"""Generate the PyTorch reference values that kestrel-train's losses and gradient clipping are tested against.

Usage (from the repository root):

    python3 tools/loss_fixtures.py [--out crates/kestrel-train/tests/fixtures/losses.json]

Inputs are drawn in float32 from a seeded generator and then promoted to float64, so the
Rust side (which computes in f32) sees exactly the same numbers; every reference value
and input gradient is computed by torch in float64. For each case the gradient is that
of `sum(loss * cot)` with respect to the first input, `cot` being a stored cotangent
(ones for a reduced loss), so unreduced outputs get a non-trivial backward check too.

Sections:
  ce        torch.nn.functional.cross_entropy with class-index targets, (N, C) and
            (N, C, H, W): class weights, label smoothing, ignore_index, mean/sum/none
  ce_soft   the same with probability targets (N, C)
  bce       binary_cross_entropy_with_logits with float targets and pos_weight
  focal     torchvision.ops.sigmoid_focal_loss
  focal_mc  softmax focal loss -alpha_y (1 - p_y)^gamma log p_y (written out in torch:
            torch has no built-in), mean over non-ignored samples
  kl        torch.nn.functional.kl_div (input = log q), log_target false/true
  distill   alpha T^2 kl_div(log_softmax(s/T), softmax(t/T), batchmean)
            + (1 - alpha) cross_entropy(s, y); gradient w.r.t. the student logits
  clip      torch.nn.utils.clip_grad_norm_ on three gradient tensors
"""

import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision


def f32(rng, shape, scale=1.0):
    """Float32-representable normal values, as float64 numpy."""
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def with_grad(fn, x, out_shape_like=None, rng=None):
    """Returns (value, cotangent, grad of sum(value*cot) w.r.t. x)."""
    x = x.clone().requires_grad_(True)
    val = fn(x)
    if val.dim() == 0:
        cot = torch.ones((), dtype=torch.float64)
    else:
        cot = torch.from_numpy(f32(rng, tuple(val.shape)))
    (val * cot).sum().backward()
    return val, cot, x.grad


def graded_case(fields, fn, x, rng):
    """`fields`, then the value of `fn(x)`, its cotangent and the gradient (see `with_grad`)."""
    val, cot, grad = with_grad(fn, x, rng=rng)
    return dict(fields, value=flat(val), cot=flat(cot), grad=flat(grad))


def ce_cases(rng):
    cases = []
    specs = [
        # name, shape, weights?, smoothing, ignore_index, reduction, logit scale
        ("plain_mean", (6, 4), False, 0.0, -100, "mean", 2.0),
        ("plain_sum", (6, 4), False, 0.0, -100, "sum", 2.0),
        ("plain_none", (6, 4), False, 0.0, -100, "none", 2.0),
        ("weighted_mean", (8, 5), True, 0.0, -100, "mean", 2.0),
        ("smooth_mean", (8, 5), False, 0.1, -100, "mean", 2.0),
        ("weighted_smooth_mean", (8, 5), True, 0.2, -100, "mean", 3.0),
        ("weighted_smooth_sum", (8, 5), True, 0.2, -100, "sum", 3.0),
        ("weighted_smooth_none", (8, 5), True, 0.2, -100, "none", 3.0),
        ("ignore_mean", (10, 3), False, 0.0, 1, "mean", 2.0),
        ("ignore_weighted_smooth_mean", (10, 3), True, 0.15, 2, "mean", 2.0),
        ("large_logits", (4, 3), False, 0.0, -100, "mean", 40.0),
        ("seg_mean", (2, 4, 3, 5), False, 0.0, 255, "mean", 2.0),
        ("seg_weighted_smooth_mean", (2, 4, 3, 5), True, 0.1, 255, "mean", 2.0),
        ("seg_weighted_smooth_sum", (2, 3, 4, 4), True, 0.1, 255, "sum", 2.0),
        ("seg_weighted_smooth_none", (2, 3, 2, 3), True, 0.1, 255, "none", 2.0),
    ]
    for name, shape, weighted, eps, ignore, red, scale in specs:
        c = shape[1]
        logits = torch.from_numpy(f32(rng, shape, scale))
        tshape = (shape[0],) + tuple(shape[2:])
        targets = torch.from_numpy(rng.integers(0, c, size=tshape)).long()
        if ignore >= 0:
            mask = torch.from_numpy(rng.random(tshape) < 0.25)
            targets[mask] = ignore
        weights = torch.from_numpy(np.abs(f32(rng, (c,))) + 0.25) if weighted else None
        if weights is not None:
            weights = weights.to(torch.float32).to(torch.float64)

        def fn(x):
            return F.cross_entropy(x, targets, weight=weights, ignore_index=ignore,
                                   reduction=red, label_smoothing=eps)

        cases.append(graded_case({
            "name": name, "shape": list(shape), "logits": flat(logits),
            "targets": [int(v) for v in targets.reshape(-1).tolist()],
            "weights": flat(weights) if weights is not None else None,
            "label_smoothing": eps, "ignore_index": ignore, "reduction": red,
        }, fn, logits, rng))
    return cases


def ce_soft_cases(rng):
    cases = []
    for name, n, c, weighted, eps, red in [
        ("soft_mean", 6, 4, False, 0.0, "mean"),
        ("soft_weighted_smooth_mean", 6, 4, True, 0.1, "mean"),
        ("soft_sum", 5, 3, False, 0.0, "sum"),
        ("soft_weighted_none", 5, 3, True, 0.05, "none"),
    ]:
        logits = torch.from_numpy(f32(rng, (n, c), 2.0))
        probs = torch.softmax(torch.from_numpy(f32(rng, (n, c), 1.5)), 1)
        probs = probs.to(torch.float32).to(torch.float64)
        weights = torch.from_numpy(np.abs(f32(rng, (c,))) + 0.25) if weighted else None

        def fn(x):
            return F.cross_entropy(x, probs, weight=weights, reduction=red, label_smoothing=eps)

        cases.append(graded_case({
            "name": name, "shape": [n, c], "logits": flat(logits), "probs": flat(probs),
            "weights": flat(weights) if weights is not None else None,
            "label_smoothing": eps, "reduction": red,
        }, fn, logits, rng))
    return cases


def bce_cases(rng):
    cases = []
    for name, shape, pw, red, scale in [
        ("mean", (6, 3), False, "mean", 2.0),
        ("sum_pos_weight", (6, 3), True, "sum", 2.0),
        ("none_pos_weight", (4, 3), True, "none", 2.0),
        ("large_logits", (4, 4), True, "mean", 60.0),
        ("soft_targets_4d", (2, 2, 3, 3), False, "mean", 2.0),
    ]:
        logits = torch.from_numpy(f32(rng, shape, scale))
        targets = torch.from_numpy(rng.random(shape).astype(np.float32).astype(np.float64))
        if name != "soft_targets_4d":
            targets = (targets > 0.5).double()
        logits.reshape(-1)[0] = 0.0  # the point where a naive |x| form gets the gradient wrong
        pos_weight = torch.from_numpy(np.abs(f32(rng, (shape[-1],))) * 2 + 0.1) if pw else None

        def fn(x):
            return F.binary_cross_entropy_with_logits(x, targets, pos_weight=pos_weight, reduction=red)

        cases.append(graded_case({
            "name": name, "shape": list(shape), "logits": flat(logits), "targets": flat(targets),
            "pos_weight": flat(pos_weight) if pos_weight is not None else None, "reduction": red,
        }, fn, logits, rng))
    return cases


def focal_cases(rng):
    cases = []
    for name, shape, alpha, gamma, red in [
        ("default_mean", (8, 3), 0.25, 2.0, "mean"),
        ("no_alpha_sum", (8, 3), -1.0, 2.0, "sum"),
        ("gamma_half_none", (5, 2), 0.6, 0.5, "none"),
        ("gamma0_mean", (5, 4), 0.25, 0.0, "mean"),
    ]:
        logits = torch.from_numpy(f32(rng, shape, 2.0))
        targets = torch.from_numpy((rng.random(shape) > 0.7).astype(np.float64))

        def fn(x):
            return torchvision.ops.sigmoid_focal_loss(x, targets, alpha=alpha, gamma=gamma, reduction=red)

        cases.append(graded_case({
            "name": name, "shape": list(shape), "logits": flat(logits), "targets": flat(targets),
            "alpha": alpha if alpha >= 0 else None, "gamma": gamma, "reduction": red,
        }, fn, logits, rng))
    return cases


def focal_mc_cases(rng):
    cases = []
    for name, n, c, alpha, gamma, ignore, red in [
        ("mean", 8, 4, None, 2.0, -100, "mean"),
        ("alpha_ignore_mean", 10, 3, True, 1.5, 1, "mean"),
        ("alpha_sum", 6, 5, True, 2.0, -100, "sum"),
        ("none", 5, 3, None, 3.0, -100, "none"),
    ]:
        logits = torch.from_numpy(f32(rng, (n, c), 2.0))
        targets = torch.from_numpy(rng.integers(0, c, size=n)).long()
        if ignore >= 0:
            targets[torch.from_numpy(rng.random(n) < 0.3)] = ignore
        alpha_t = torch.from_numpy(np.abs(f32(rng, (c,))) * 0.5 + 0.1) if alpha else None

        def fn(x):
            valid = targets != ignore
            safe = torch.where(valid, targets, torch.zeros_like(targets))
            logp = F.log_softmax(x, 1).gather(1, safe[:, None])[:, 0]
            a = alpha_t[safe] if alpha_t is not None else torch.ones_like(logp)
            loss = -a * (1 - logp.exp()) ** gamma * logp
            loss = torch.where(valid, loss, torch.zeros_like(loss))
            if red == "mean":
                return loss.sum() / valid.sum()
            if red == "sum":
                return loss.sum()
            return loss

        cases.append(graded_case({
            "name": name, "shape": [n, c], "logits": flat(logits),
            "targets": [int(v) for v in targets.tolist()],
            "alpha": flat(alpha_t) if alpha_t is not None else None, "gamma": gamma,
            "ignore_index": ignore, "reduction": red,
        }, fn, logits, rng))
    return cases


def kl_cases(rng):
    cases = []
    for name, shape, log_target, red, zero in [
        ("batchmean", (5, 4), False, "batchmean", True),
        ("batchmean_log_target", (5, 4), True, "batchmean", False),
        ("sum", (3, 6), False, "sum", False),
        ("mean", (3, 6), False, "mean", False),
        ("none_log_target", (3, 2, 2), True, "none", False),
    ]:
        logq = F.log_softmax(torch.from_numpy(f32(rng, shape, 1.5)), -1).to(torch.float32).to(torch.float64)
        p = torch.softmax(torch.from_numpy(f32(rng, shape, 1.5)), -1)
        if zero:
            p[0, 0] = 0.0  # 0 log 0 = 0
            p[0] = p[0] / p[0].sum()
        p = p.to(torch.float32).to(torch.float64)
        target = p.log() if log_target else p
        target = target.to(torch.float32).to(torch.float64)

        def fn(x):
            return F.kl_div(x, target, reduction=red, log_target=log_target)

        cases.append(graded_case({
            "name": name, "shape": list(shape), "input": flat(logq), "target": flat(target),
            "log_target": log_target, "reduction": red,
        }, fn, logq, rng))
    return cases


def distill_cases(rng):
    cases = []
    for name, n, c, t, alpha in [("t4_a07", 6, 5, 4.0, 0.7), ("t1_a05", 4, 3, 1.0, 0.5), ("t2_a0", 4, 3, 2.0, 0.0)]:
        student = torch.from_numpy(f32(rng, (n, c), 2.0))
        teacher = torch.from_numpy(f32(rng, (n, c), 3.0))
        targets = torch.from_numpy(rng.integers(0, c, size=n)).long()

        def fn(s):
            kd = F.kl_div(F.log_softmax(s / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
            return alpha * t * t * kd + (1 - alpha) * F.cross_entropy(s, targets)

        cases.append(graded_case({
            "name": name, "shape": [n, c], "student": flat(student), "teacher": flat(teacher),
            "targets": [int(v) for v in targets.tolist()], "temperature": t, "alpha": alpha,
        }, fn, student, rng))
    return cases


def clip_cases(rng):
    cases = []
    for name, max_norm, scale in [("clips", 1.0, 1.0), ("no_clip", 100.0, 1.0), ("tiny_max", 1e-3, 3.0)]:
        shapes = [(3, 4), (4,), (2, 2, 3)]
        grads = [torch.from_numpy(f32(rng, s, scale)) for s in shapes]
        params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        cases.append({
            "name": name, "max_norm": max_norm, "total_norm": float(total),
            "shapes": [list(s) for s in shapes], "grads": [flat(g) for g in grads],
            "clipped": [flat(p.grad) for p in params],
        })
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/kestrel-train/tests/fixtures/losses.json")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(20261128)
    doc = {
        "generator": "tools/loss_fixtures.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "ce": ce_cases(rng),
        "ce_soft": ce_soft_cases(rng),
        "bce": bce_cases(rng),
        "focal": focal_cases(rng),
        "focal_mc": focal_mc_cases(rng),
        "kl": kl_cases(rng),
        "distill": distill_cases(rng),
        "clip": clip_cases(rng),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
