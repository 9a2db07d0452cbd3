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
           [--n 3000] [--epochs 1] [--lr 0.02] [--threads 2]

A MobileNetV2 needs more than one pass of 3000 digits to become confident (one pass leaves it
about a third accurate, with near-tied logits); `--n 6000 --epochs 2 --lr 0.05` gets it past 90 %.
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
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.02)
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
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=1e-4)
    steps = a.epochs * ((a.n + 31) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps)
    model.train()
    step = 0
    for _ in range(a.epochs):
        order = torch.randperm(a.n).tolist()
        for i0 in range(0, a.n, 32):
            idx = order[i0:i0 + 32]
            xb = torch.stack([tf(Image.fromarray(x[i]).convert("RGB")) for i in idx])
            yb = torch.tensor([int(y[i]) for i in idx])
            out = model(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % 10 == 0:
                acc = (out.argmax(1) == yb).float().mean().item()
                print(f"step {step}/{steps} loss {loss.item():.3f} batch acc {acc:.2f}", flush=True)
            step += 1
    torch.save(model.state_dict(), a.out)


if __name__ == "__main__":
    main()
