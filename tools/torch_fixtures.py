#!/usr/bin/env python3
"""Reference fixtures for kestrel-nn's PyTorch weight import (crates/kestrel-nn/src/import).

Writes crates/kestrel-nn/tests/fixtures/import/:

  formula_<arch>_keys.json    the model's state-dict names, shapes and dtypes, in order.
  formula_<arch>_logits.f32   eval-mode logits (2 x 1000, little-endian f32) of torchvision's
                              mobilenet_v2 / resnet18 / resnet50 with every parameter and buffer
                              filled by the deterministic formula below, on the formula input
                              "input" of shape (2, 3, 64, 64). No weights are shipped: the Rust
                              test computes the same state dict.
  mnv2_w010.pth               torchvision mobilenet_v2(width_mult=0.1, num_classes=10), random
                              (seeded) weights and BN statistics, rounded to bfloat16-exact values:
                              zip .pth (float32),
  mnv2_w010_legacy.pth        the same as a legacy (pre-1.6) .pth in float16,
  mnv2_w010.safetensors       the same as safetensors in bfloat16; all three hold equal values.
  mnv2_w010_logits.f32        its eval-mode logits (2 x 10) on the formula input.
  dtypes.pth / dtypes_legacy.pth / dtypes.safetensors / dtypes.json
                              tensors of several dtypes, a transposed view and a view with a
                              storage offset sharing one storage, with the expected values.
  evil_os_system.pth          a pickle that would call os.system (built by hand, never run).
  evil_eval_zip.pth           a zip .pth whose data.pkl would call builtins.eval.

The formula (kestrel's src/import/formula.rs computes the same):
  h  = FNV-1a 64 of the tensor name (UTF-8)
  z  = splitmix64(h + j * 0x9E3779B97F4A7C15 mod 2^64) for element j (row-major)
  u  = (z >> 11) / 2^53 in [0, 1)
  running_var: 0.5 + u; running_mean: (2u - 1) / 10; 1-D weight (BN gamma): 0.8 + 0.4u;
  bias: (2u - 1) / 10; other weight: (2u - 1) * sqrt(6 / fan_in), fan_in = prod(shape[1:]);
  input: 2u - 1. Computed in float64, then rounded to float32. num_batches_tracked is left as is.

Run: python3 tools/torch_fixtures.py   (torch 2.15, torchvision 0.29, safetensors, numpy).
"""
import io
import json
import os
import zipfile

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "kestrel-nn", "tests", "fixtures", "import")
M64 = (1 << 64) - 1
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def uniform(name: str, n: int) -> np.ndarray:
    """u in [0, 1) for elements 0..n of the tensor `name` (float64)."""
    with np.errstate(over="ignore"):
        j = np.arange(n, dtype=np.uint64)
        x = np.uint64(fnv1a64(name)) + j * GOLDEN
        # splitmix64
        x = x + GOLDEN
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def formula(name: str, shape) -> torch.Tensor:
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform(name, n)
    if name == "input":
        v = 2 * u - 1
    elif name.endswith("running_var"):
        v = 0.5 + u
    elif name.endswith("running_mean"):
        v = (2 * u - 1) / 10
    elif name.endswith("bias"):
        v = (2 * u - 1) / 10
    elif name.endswith("weight") and len(shape) == 1:
        v = 0.8 + 0.4 * u
    elif name.endswith("weight"):
        fan_in = int(np.prod(shape[1:]))
        v = (2 * u - 1) * np.sqrt(6.0 / fan_in)
    else:
        raise ValueError(name)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def fill(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(formula(name, tuple(t.shape)))


def save_f32(path: str, t: torch.Tensor) -> None:
    with open(path, "wb") as f:
        f.write(t.detach().numpy().astype("<f4").tobytes())


def formula_logits() -> None:
    x = formula("input", (2, 3, 64, 64))
    for arch, ctor in [
        ("mobilenet_v2", torchvision.models.mobilenet_v2),
        ("resnet18", torchvision.models.resnet18),
        ("resnet50", torchvision.models.resnet50),
    ]:
        m = ctor()
        fill(m)
        m.eval()
        with torch.no_grad():
            y = m(x)
        save_f32(os.path.join(OUT, f"formula_{arch}_logits.f32"), y)
        keys = [[k, list(v.shape), str(v.dtype)] for k, v in m.state_dict().items()]
        with open(os.path.join(OUT, f"formula_{arch}_keys.json"), "w") as f:
            json.dump(keys, f)
        print(arch, tuple(y.shape), float(y.abs().max()))


def bf16_exact(t: torch.Tensor) -> torch.Tensor:
    """Rounds to bfloat16 and zeroes values that float16 could not hold exactly."""
    r = t.to(torch.bfloat16).to(torch.float32)
    return torch.where(r.abs() < 1e-4, torch.zeros_like(r), r)


def narrow_mobilenet() -> None:
    torch.manual_seed(0)
    m = torchvision.models.mobilenet_v2(width_mult=0.1, num_classes=10)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape) * 0.1)
            elif t.dim() == 1:
                t.copy_(torch.rand(t.shape) * 0.4 + 0.8)
            # conv / linear weights keep torchvision's initialisation
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                t.copy_(bf16_exact(t))
    m.eval()
    sd = m.state_dict()
    torch.save(sd, os.path.join(OUT, "mnv2_w010.pth"))
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    torch.save(half, os.path.join(OUT, "mnv2_w010_legacy.pth"), _use_new_zipfile_serialization=False)
    bf = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    save_file(bf, os.path.join(OUT, "mnv2_w010.safetensors"))
    with torch.no_grad():
        y = m(formula("input", (2, 3, 64, 64)))
    save_f32(os.path.join(OUT, "mnv2_w010_logits.f32"), y)
    print("mnv2_w010", sum(v.numel() for v in sd.values()), y[0, :3])


def dtypes() -> None:
    big = torch.arange(20, dtype=torch.float32) / 8 - 1
    tensors = {
        "f32": torch.tensor([[1.5, -2.25, 3.0e-3], [1e6, -0.0, 7.0]], dtype=torch.float32),
        "f16": torch.tensor([0.5, -1.75, 65504.0, 6.1e-5, 3.0e-7], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.5, 1.0e30, 2.0e-30], dtype=torch.bfloat16),
        "f64": torch.tensor([[0.1, -1e-3], [12345.678, 2.5]], dtype=torch.float64),
        "i64": torch.tensor([3, -5, 1 << 40], dtype=torch.int64),
        "scalar": torch.tensor(4.25),
        "offset_view": big[5:11].view(2, 3),
        "transposed_view": big.view(4, 5).t(),
    }
    expected = {}
    for k, v in tensors.items():
        expected[k] = {
            "shape": list(v.shape),
            "float": v.is_floating_point(),
            "values": [float(x) if v.is_floating_point() else int(x) for x in v.reshape(-1).tolist()],
        }
    with open(os.path.join(OUT, "dtypes.json"), "w") as f:
        json.dump(expected, f, indent=1)
    torch.save(tensors, os.path.join(OUT, "dtypes.pth"))
    torch.save(tensors, os.path.join(OUT, "dtypes_legacy.pth"), _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, os.path.join(OUT, "dtypes.safetensors"))


def evil() -> None:
    # GLOBAL 'os system', the argument tuple, REDUCE: what pickle.loads would execute.
    p = b"\x80\x02cos\nsystem\nq\x00X\x0c\x00\x00\x00echo pwned!!\x85q\x01Rq\x02."
    with open(os.path.join(OUT, "evil_os_system.pth"), "wb") as f:
        f.write(p)
    # Protocol 4 STACK_GLOBAL builtins.eval inside a zip .pth.
    q = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94X\x06\x00\x00\x001 + 1 \x85R."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", q)
        z.writestr("evil/version", "3\n")
    with open(os.path.join(OUT, "evil_eval_zip.pth"), "wb") as f:
        f.write(buf.getvalue())
    # Sanity: the standard library's disassembler agrees these are the globals claimed.
    import pickletools
    for data in (p, q):
        ops = [op.name for op, _, _ in pickletools.genops(data)]
        assert "REDUCE" in ops and ("GLOBAL" in ops or "STACK_GLOBAL" in ops), ops


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    formula_logits()
    narrow_mobilenet()
    dtypes()
    evil()
