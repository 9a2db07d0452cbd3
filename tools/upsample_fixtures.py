#!/usr/bin/env python3
"""Generate the PyTorch reference values that kestrel-nn's upsamplers are tested against.

Usage (from the repository root):

    python3 tools/upsample_fixtures.py [--out crates/kestrel-nn/src/upsample/fixtures]

Writes small JSON files read by `crates/kestrel-nn/src/upsample/torch_fixtures.rs`:

  interp.json          F.interpolate nearest / bilinear / bicubic (align_corners false and
                       true; scale factor 2, a non-integer scale factor 1.7, an explicit
                       non-integer output size), float32 as PyTorch computes it
  conv_transpose.json  F.conv_transpose2d with stride 2 and 3, output_padding, groups, dilation
                       (non-square), with bias
  pixel_shuffle.json   F.pixel_shuffle (r = 2, 3) and F.pixel_unshuffle (r = 2)
  carafe.json          CARAFE written here from the paper's equations (explicit loop over
                       output pixels for the reassembly), fixed weights, float64
  meta.json            Meta-Upscale written here from the paper's equations (explicit loop
                       over output pixels), fixed weights, scales 1.5 and 2.7, float64

Each case stores its inputs, a random probe g, the output y and the gradients of sum(y * g)
with respect to the input (and the parameters where there are any). The data are drawn from a
seeded generator, so reruns give the same files for the same torch version (recorded).
"""

import argparse
import json
import math
import os

import torch
import torch.nn.functional as F

HEADER = {"generator": "tools/upsample_fixtures.py", "torch": torch.__version__}


def flat(t):
    """A tensor as a flat list of floats, each with 9 significant digits (enough for f32)."""
    return [float("%.9g" % v) for v in t.detach().double().reshape(-1).tolist()]


def randn(gen, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def probe_grads(y, inputs, gen):
    g = randn(gen, *y.shape, dtype=y.dtype)
    grads = torch.autograd.grad((y * g).sum(), inputs)
    return g, grads


def interp_cases(gen):
    cases = []
    specs = []
    for mode in ["nearest", "bilinear", "bicubic"]:
        aligns = [None] if mode == "nearest" else [False, True]
        for ac in aligns:
            specs.append((mode, ac, (4, 5), {"scale_factor": 2.0}))
            specs.append((mode, ac, (5, 7), {"scale_factor": 1.7}))
            specs.append((mode, ac, (4, 5), {"size": (7, 9)}))
            specs.append((mode, ac, (6, 5), {"size": (3, 8)}))  # down along H, up along W
    for mode, ac, (h, w), how in specs:
        x = randn(gen, 1, 2, h, w).requires_grad_(True)
        kw = dict(how)
        if ac is not None:
            kw["align_corners"] = ac
        y = F.interpolate(x, mode=mode, **kw)
        g, (gx,) = probe_grads(y, [x], gen)
        case = {
            "mode": mode,
            "align_corners": bool(ac),
            "x_shape": list(x.shape),
            "y_shape": list(y.shape),
            "x": flat(x),
            "g": flat(g),
            "y": flat(y),
            "grad_x": flat(gx),
        }
        if "scale_factor" in how:
            case["scale"] = how["scale_factor"]
        else:
            case["size"] = list(how["size"])
        cases.append(case)
    return cases


def conv_transpose_cases(gen):
    # (in, out, groups, (h, w), kernel, stride, padding, output_padding, dilation)
    specs = [
        (3, 2, 1, (4, 5), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1)),
        (2, 3, 1, (3, 4), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)),
        (2, 2, 1, (3, 3), (5, 4), (3, 3), (1, 0), (2, 1), (1, 1)),
        (4, 6, 2, (4, 3), (3, 3), (2, 1), (1, 0), (1, 0), (1, 1)),
        (3, 3, 3, (4, 4), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1)),
        (2, 4, 2, (3, 4), (3, 2), (2, 3), (2, 1), (1, 2), (2, 3)),
    ]
    cases = []
    for cin, cout, groups, (h, w), k, s, p, op, d in specs:
        x = randn(gen, 2, cin, h, w).requires_grad_(True)
        wt = (randn(gen, cin, cout // groups, *k) * 0.5).requires_grad_(True)
        b = randn(gen, cout).requires_grad_(True)
        y = F.conv_transpose2d(x, wt, b, stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
        g, (gx, gw, gb) = probe_grads(y, [x, wt, b], gen)
        cases.append({
            "in_channels": cin, "out_channels": cout, "groups": groups,
            "kernel": list(k), "stride": list(s), "padding": list(p),
            "output_padding": list(op), "dilation": list(d),
            "x_shape": list(x.shape), "y_shape": list(y.shape),
            "x": flat(x), "weight": flat(wt), "bias": flat(b), "g": flat(g), "y": flat(y),
            "grad_x": flat(gx), "grad_weight": flat(gw), "grad_bias": flat(gb),
        })
    return cases


def pixel_shuffle_cases(gen):
    cases = []
    for op, r, shape in [("shuffle", 2, (2, 8, 3, 4)), ("shuffle", 3, (1, 18, 2, 3)), ("unshuffle", 2, (2, 3, 4, 6))]:
        x = randn(gen, *shape).requires_grad_(True)
        y = F.pixel_shuffle(x, r) if op == "shuffle" else F.pixel_unshuffle(x, r)
        g, (gx,) = probe_grads(y, [x], gen)
        cases.append({"op": op, "factor": r, "x_shape": list(x.shape), "y_shape": list(y.shape),
                      "x": flat(x), "g": flat(g), "y": flat(y), "grad_x": flat(gx)})
    return cases


def carafe_reference(x, wc, bc, we, be, sigma, k_up, k_enc):
    """CARAFE from Wang et al. (2019), Sec. 3: kernel prediction, then reassembly by an
    explicit loop over output locations l' = (i, j) with source l = (i // sigma, j // sigma)."""
    n, c, h, w = x.shape
    comp = F.conv2d(x, wc, bc)                                   # channel compressor, 1x1
    enc = F.conv2d(comp, we, be, padding=(k_enc - 1) // 2)      # content encoder
    kernels = F.softmax(F.pixel_shuffle(enc, sigma), dim=1)     # (n, k_up^2, sigma h, sigma w)
    r = k_up // 2
    xp = F.pad(x, (r, r, r, r))
    rows = []
    for i in range(sigma * h):
        cols = []
        for j in range(sigma * w):
            si, sj = i // sigma, j // sigma
            patch = xp[:, :, si:si + k_up, sj:sj + k_up]               # N(X_l, k_up)
            wk = kernels[:, :, i, j].reshape(n, 1, k_up, k_up)          # W_l'
            cols.append((patch * wk).sum(dim=(2, 3)))                   # (n, c)
        rows.append(torch.stack(cols, dim=-1))
    return torch.stack(rows, dim=-2)


def carafe_cases(gen):
    cases = []
    for c, cm, sigma, k_enc, k_up, (h, w) in [(3, 4, 2, 3, 5, (4, 5)), (2, 3, 3, 1, 3, (3, 2))]:
        d = torch.float64
        x = randn(gen, 2, c, h, w, dtype=d).requires_grad_(True)
        wc = (randn(gen, cm, c, 1, 1, dtype=d) * 0.5).requires_grad_(True)
        bc = (randn(gen, cm, dtype=d) * 0.1).requires_grad_(True)
        we = (randn(gen, sigma * sigma * k_up * k_up, cm, k_enc, k_enc, dtype=d) * 0.5).requires_grad_(True)
        be = (randn(gen, sigma * sigma * k_up * k_up, dtype=d) * 0.1).requires_grad_(True)
        # Round the inputs to f32 so that Rust sees the same values.
        with torch.no_grad():
            for t in (x, wc, bc, we, be):
                t.copy_(t.float().double())
        y = carafe_reference(x, wc, bc, we, be, sigma, k_up, k_enc)
        g = randn(gen, *y.shape, dtype=d).float().double()
        grads = torch.autograd.grad((y * g).sum(), [x, wc, bc, we, be])
        cases.append({
            "channels": c, "compressed": cm, "factor": sigma, "k_enc": k_enc, "k_up": k_up,
            "x_shape": list(x.shape), "y_shape": list(y.shape),
            "x": flat(x), "comp_w": flat(wc), "comp_b": flat(bc), "enc_w": flat(we), "enc_b": flat(be),
            "g": flat(g), "y": flat(y),
            "grad_x": flat(grads[0]), "grad_comp_w": flat(grads[1]), "grad_comp_b": flat(grads[2]),
            "grad_enc_w": flat(grads[3]), "grad_enc_b": flat(grads[4]),
        })
    return cases


def meta_reference(x, w1, b1, w2, b2, r, k, cout):
    """Meta-Upscale from Hu et al. (2019), Sec. 3.2-3.3: output (floor(rH), floor(rW)); pixel
    (i, j) reads source (floor(i/r), floor(j/r)) and a filter predicted from
    (i/r - floor(i/r), j/r - floor(j/r), 1/r) by Linear-ReLU-Linear; explicit loops."""
    n, cin, h, w = x.shape
    ho, wo = math.floor(h * r), math.floor(w * r)
    p = k // 2
    xp = F.pad(x, (p, p, p, p))
    rows = []
    for i in range(ho):
        cols = []
        for j in range(wo):
            si, sj = min(math.floor(i / r), h - 1), min(math.floor(j / r), w - 1)
            v = torch.tensor([i / r - math.floor(i / r), j / r - math.floor(j / r), 1.0 / r], dtype=x.dtype)
            v = v.float().double()  # the position vector is f32 in Rust
            hid = torch.relu(w1 @ v + b1)
            filt = (w2 @ hid + b2).reshape(cout, cin, k, k)
            patch = xp[:, :, si:si + k, sj:sj + k]                       # (n, cin, k, k)
            cols.append(torch.einsum("ocab,ncab->no", filt, patch))
        rows.append(torch.stack(cols, dim=-1))
    return torch.stack(rows, dim=-2)


def meta_cases(gen):
    cases = []
    for cin, cout, k, hidden, r, (h, w) in [(2, 3, 3, 8, 1.5, (4, 3)), (3, 2, 3, 6, 2.7, (3, 4)), (2, 2, 1, 5, 2.0, (2, 3))]:
        d = torch.float64
        x = randn(gen, 2, cin, h, w, dtype=d)
        w1 = randn(gen, hidden, 3, dtype=d)
        b1 = randn(gen, hidden, dtype=d) * 0.1
        w2 = randn(gen, cout * cin * k * k, hidden, dtype=d) * 0.3
        b2 = randn(gen, cout * cin * k * k, dtype=d) * 0.1
        ts = [t.float().double().requires_grad_(True) for t in (x, w1, b1, w2, b2)]
        y = meta_reference(*ts, r, k, cout)
        g = randn(gen, *y.shape, dtype=d).float().double()
        grads = torch.autograd.grad((y * g).sum(), ts)
        cases.append({
            "in_channels": cin, "out_channels": cout, "kernel": k, "hidden": hidden, "scale": r,
            "x_shape": list(x.shape), "y_shape": list(y.shape),
            # Linear weights in PyTorch's (out, in) layout.
            "x": flat(ts[0]), "w1": flat(ts[1]), "b1": flat(ts[2]), "w2": flat(ts[3]), "b2": flat(ts[4]),
            "g": flat(g), "y": flat(y),
            "grad_x": flat(grads[0]), "grad_w1": flat(grads[1]), "grad_b1": flat(grads[2]),
            "grad_w2": flat(grads[3]), "grad_b2": flat(grads[4]),
        })
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="crates/kestrel-nn/src/upsample/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(20261128)
    for name, fn in [("interp", interp_cases), ("conv_transpose", conv_transpose_cases),
                     ("pixel_shuffle", pixel_shuffle_cases), ("carafe", carafe_cases), ("meta", meta_cases)]:
        doc = dict(HEADER, cases=fn(gen))
        path = os.path.join(args.out, name + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        os.replace(path + ".tmp", path)
        print(path, os.path.getsize(path), "bytes,", len(doc["cases"]), "cases")


if __name__ == "__main__":
    main()
