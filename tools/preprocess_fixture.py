#!/usr/bin/env python3
"""Generate torchvision's ImageNet evaluation preprocessing of a few synthetic images, the
reference for `kestrel_data::imagenet_preprocess`.

Usage (from the repository root):

    python3 tools/preprocess_fixture.py [--out crates/kestrel-data/tests/fixtures/imagenet_preprocess]

Writes, for each case NAME:
  NAME.png        the input image (RGB; gradients, hard edges, a noise patch, a thin checkerboard)
  NAME_crop.png   torchvision's `CenterCrop(224)(Resize(256)(image))`: the uint8 pixels before
                  `ToTensor` / `Normalize` (PIL bilinear resampling, which is antialiased)
and `expected.json` with, per case, the input size, the resized size, the crop offsets as
torchvision computes them, and samples and per-channel sums of the final normalised CHW tensor
`Normalize(IMAGENET_MEAN, IMAGENET_STD)(ToTensor()(crop))`.

Cases: `wide` 300x200 and `tall` 180x260 are upscaled (shorter side < 256); `large` 566x390 is
downscaled with a factor of 1.52, so the filter support widens. The crop offsets of `tall` (72.5)
and `large` (73.5) exercise Python's round-half-to-even.
"""

import argparse
import json
import os

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
CASES = {"wide": (300, 200), "tall": (180, 260), "large": (566, 390)}


def synthetic(w, h, seed):
    """Gradients, edges and noise; compresses well enough to commit."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), dtype=np.float64)
    img[..., 0] = 255.0 * x / (w - 1)
    img[..., 1] = 255.0 * y / (h - 1)
    img[..., 2] = 127.5 + 127.5 * np.sin(x / 7.0) * np.cos(y / 11.0)
    # A hard-edged disc and a bright bar.
    disc = (x - 0.6 * w) ** 2 + (y - 0.4 * h) ** 2 < (0.2 * min(w, h)) ** 2
    img[disc] = [250.0, 20.0, 60.0]
    img[int(0.7 * h) : int(0.7 * h) + 9, :] = [255.0, 255.0, 255.0]
    # A one-pixel checkerboard (the worst case for aliasing) and a uniform-noise patch.
    cx, cy = int(0.15 * w), int(0.15 * h)
    checker = ((x + y) % 2 == 0)[cy : cy + 40, cx : cx + 40]
    img[cy : cy + 40, cx : cx + 40] = np.where(checker[..., None], 255.0, 0.0)
    nx, ny = int(0.5 * w), int(0.75 * h)
    img[ny : ny + 48, nx : nx + 48] = rng.integers(0, 256, size=(min(48, h - ny), 48, 3))
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="crates/kestrel-data/tests/fixtures/imagenet_preprocess")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    resize = transforms.Resize(256, interpolation=transforms.InterpolationMode.BILINEAR)
    crop = transforms.CenterCrop(224)
    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    expected = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "cases": {},
    }
    for seed, (name, (w, h)) in enumerate(CASES.items()):
        img = synthetic(w, h, seed)
        img.save(os.path.join(args.out, f"{name}.png"), optimize=True)
        img = Image.open(os.path.join(args.out, f"{name}.png")).convert("RGB")
        resized = resize(img)
        cropped = crop(resized)
        cropped.save(os.path.join(args.out, f"{name}_crop.png"), optimize=True)
        t = to_tensor(cropped)
        rw, rh = resized.size
        flat = t.reshape(-1)
        idx = torch.linspace(0, flat.numel() - 1, 25).round().long()
        expected["cases"][name] = {
            "size": [w, h],
            "resized": [rw, rh],
            "crop_offset": [int(round((rw - 224) / 2.0)), int(round((rh - 224) / 2.0))],
            "channel_sums": [float(v) for v in t.double().sum(dim=(1, 2))],
            "samples": [[int(i), float(flat[i])] for i in idx],
        }
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v["resized"] + v["crop_offset"] for k, v in expected["cases"].items()}))


if __name__ == "__main__":
    main()
