#!/usr/bin/env python3
"""Write the 1000 ImageNet-1k class names, in torchvision's index order, one per line.

Usage (from the repository root):

    python3 tools/imagenet_labels.py [--out crates/kestrel-nn/assets/imagenet_classes.txt]

The names are torchvision's (`torchvision.models._meta._IMAGENET_CATEGORIES`), the labels its
pretrained classifiers' outputs are indexed by. `kestrel_nn::imagenet` embeds the file.
"""

import argparse
import os

from torchvision.models._meta import _IMAGENET_CATEGORIES


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="crates/kestrel-nn/assets/imagenet_classes.txt")
    args = ap.parse_args()
    names = list(_IMAGENET_CATEGORIES)
    assert len(names) == 1000, len(names)
    assert all(n and "\n" not in n and n == n.strip() for n in names)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")
    print(f"wrote {len(names)} names to {args.out}")


if __name__ == "__main__":
    main()
