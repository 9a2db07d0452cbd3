#!/usr/bin/env python3
"""A torchvision ResNet-18 or MobileNetV2 with real (not random) weights for checking int8
quantisation offline.

No ImageNet weights can be downloaded here, so this trains torchvision's `resnet18` or
`mobilenet_v2` (`--arch`, `num_classes=10`)
briefly on MNIST digits with torchvision's evaluation preprocessing (resize 256, centre crop 224,
ImageNet mean/std: what `kestrel ... --arch resnet18 --weights FILE` applies) and saves the state
dict. A confident, trained network: its int8 top-1 agreement with fp32 means something, where a
random network's near-tied logits would not.

Usage: python3 tools/torch_digits.py --idx train-images-idx3-ubyte.gz \
           --labels train-labels-idx1-ubyte.gz --out resnet18-digits.pth [--arch resnet18|mobilenet_v2]
           [--n 3000] [--threads 2]
"""

import argparse
import gzip

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idx", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "mobilenet_v2"])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    x = np.frombuffer(gzip.open(a.idx).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.frombuffer(gzip.open(a.labels).read(), np.uint8, offset=8)
    tf = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    model = getattr(torchvision.models, a.arch)(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    model.train()
    order = torch.randperm(a.n).tolist()
    for step, i0 in enumerate(range(0, a.n, 32)):
        idx = order[i0:i0 + 32]
        xb = torch.stack([tf(Image.fromarray(x[i]).convert("RGB")) for i in idx])
        yb = torch.tensor([int(y[i]) for i in idx])
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
    torch.save(model.state_dict(), a.out)


if __name__ == "__main__":
    main()
