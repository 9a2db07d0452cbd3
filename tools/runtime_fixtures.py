"""Reference outputs for kestrel-runtime's end-to-end tests, computed by PyTorch (float64).

Weights and inputs are not stored: they come from the SplitMix64 stream that `uniform` in
crates/kestrel-runtime/tests/support/synthetic.rs implements, reproduced here bit for bit, so the
fixture is only a few hundred bytes. Batch norm is set to the identity plus a bias (weight 1,
running mean 0, running var 1, eps 0), i.e. the folded bias the runtime expects.

Run: python3 tools/runtime_fixtures.py  (writes crates/kestrel-runtime/tests/fixtures/*.json)
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "kestrel-runtime", "tests", "fixtures")
M64 = (1 << 64) - 1


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def uniform(seed, stream, n, scale):
    """Same values as the Rust `uniform`, as float32."""
    i = np.arange(n, dtype=np.uint64)
    z = np.uint64((seed << 40) ^ (stream << 24)) ^ i
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) * np.float32(2.0) - np.float32(1.0)
    return u * np.float32(scale)


assert splitmix64(0) == 0xE220A8397B1DCDAF


def fill(model, seed):
    """Sets conv/linear layer l (module order) to streams 2l, 2l+1; following BNs to identity+bias."""
    mods = list(model.modules())
    layer = 0
    for k, m in enumerate(mods):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight
            fan_in = w[0].numel()
            scale = np.float32(math.sqrt(6.0 / fan_in))
            wv = uniform(seed, 2 * layer, w.numel(), scale).reshape(tuple(w.shape))
            bv = uniform(seed, 2 * layer + 1, w.shape[0], 0.1)
            with torch.no_grad():
                w.copy_(torch.from_numpy(wv))
                if isinstance(m, nn.Linear):
                    m.bias.copy_(torch.from_numpy(bv))
                else:
                    assert m.bias is None
                    bn = next(x for x in mods[k + 1:] if isinstance(x, nn.BatchNorm2d))
                    bn.weight.fill_(1.0)
                    bn.bias.copy_(torch.from_numpy(bv))
                    bn.running_mean.zero_()
                    bn.running_var.fill_(1.0)
                    bn.eps = 0.0
            layer += 1
    return layer


def run(model, seed_in, batch, res):
    x = uniform(seed_in, 60000, batch * 3 * res * res, 1.0).reshape(batch, 3, res, res)
    model.eval().double()
    with torch.no_grad():
        return model(torch.from_numpy(x).double()).numpy()


def cbr(i, o, k, s=1, p=0, g=1, d=1, act=nn.ReLU):
    layers = [nn.Conv2d(i, o, k, s, p, dilation=d, groups=g, bias=False), nn.BatchNorm2d(o)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class TinyResNet(nn.Module):
    """Stem 7x7 s2 + max pool, a basic block, a strided block with a 1x1 s2 downsample,
    a grouped 3x3, a dilated depthwise 3x3, global pool, linear. Layer order is the
    order `fill` visits (module registration order)."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 8, 7, 2, 3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.b1a = cbr(8, 8, 3, 1, 1)
        self.b1b = cbr(8, 8, 3, 1, 1, act=None)
        self.down = cbr(8, 16, 1, 2, 0, act=None)
        self.b2a = cbr(8, 16, 3, 2, 1)
        self.b2b = cbr(16, 16, 3, 1, 1, act=None)
        self.grouped = cbr(16, 16, 3, 1, 1, g=2)
        self.dilated = cbr(16, 16, 3, 1, 2, g=16, d=2, act=nn.ReLU6)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = torch.relu(self.b1b(self.b1a(x)) + x)
        x = torch.relu(self.b2b(self.b2a(x)) + self.down(x))
        x = self.dilated(self.grouped(x))
        return self.fc(x.mean((2, 3)))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    mb = torchvision.models.mobilenet_v2(num_classes=10, width_mult=1.0)
    n = fill(mb, 5)
    assert n == 53, n
    y = run(mb, 11, 2, 35)
    doc = {"model": "torchvision mobilenet_v2(num_classes=10, width_mult=1.0)", "weight_seed": 5,
           "input_seed": 11, "input_stream": 60000, "batch": 2, "resolution": 35, "layout": "NCHW",
           "logits": y.tolist()}
    with open(os.path.join(OUT, "mobilenet_v2_w1_r35.json"), "w") as f:
        json.dump(doc, f, indent=1)
    rn = TinyResNet()
    assert fill(rn, 9) == 9
    y = run(rn, 13, 3, 37)
    doc = {"model": "TinyResNet (tools/runtime_fixtures.py)", "weight_seed": 9, "input_seed": 13,
           "input_stream": 60000, "batch": 3, "resolution": 37, "layout": "NCHW", "logits": y.tolist()}
    with open(os.path.join(OUT, "tiny_resnet_r37.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print("logits", y[0])


if __name__ == "__main__":
    main()
