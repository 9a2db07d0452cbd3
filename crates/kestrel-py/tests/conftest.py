"""Shared fixtures: the `kestrel` binary (for side-by-side checks with the CLI) and a tiny run."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

import kestrel

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def kestrel_bin():
    """The CLI built from this checkout: $KESTREL_BIN, or the cargo target dir's debug build."""
    candidates = [os.environ.get("KESTREL_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    candidates += [os.path.join(target, "debug", "kestrel"), os.path.join(target, "release", "kestrel")]
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    pytest.fail("no kestrel binary: build it (cargo build -p kestrel-cli) or set KESTREL_BIN")


def run_cli(kestrel_bin, *args):
    out = subprocess.run([kestrel_bin, *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A classifier trained for two epochs on 48 `shapes` images of 32 px, from Python."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    path = kestrel.train(
        out=str(out),
        progress=False,
        data="shapes:n=48,size=32,classes=3,seed=2",
        resolution=32,
        width=0.25,
        batch_size=8,
        epochs=2,
    )
    assert pathlib.Path(path) == out
    return out


def write_bmp(path, pixels):
    """Writes (h, w, 3) uint8 RGB pixels as a 24-bit BMP (bottom-up rows, BGR, rows padded to
    4 bytes), which kestrel reads like PNG and JPEG."""
    import struct

    h, w, _ = pixels.shape
    row = (3 * w + 3) // 4 * 4
    body = bytearray()
    for y in range(h - 1, -1, -1):
        line = pixels[y, :, ::-1].tobytes()
        body += line + b"\0" * (row - len(line))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(body), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(body), 2835, 2835, 0, 0)
    pathlib.Path(path).write_bytes(header + info + bytes(body))


def images(dir, n, size, seed=0):
    """`n` random RGB image files of `size` × `size` and their pixels (n, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    paths = []
    for i, p in enumerate(pixels):
        path = pathlib.Path(dir) / f"img{i}.bmp"
        write_bmp(path, p)
        paths.append(path)
    return paths, pixels
