"""Reference values for kestrel-train's class-weighted cross-entropy.

Writes crates/kestrel-train/tests/fixtures/weighted_ce.json: for a few seeded cases, the logits,
targets and class weights, PyTorch's `F.cross_entropy(logits, targets, weight=w)` (reduction
"mean", i.e. sum(w_y * loss) / sum(w_y)) and its gradient with respect to the logits.

    python3 tools/weighted_ce_fixture.py
"""
import json
import pathlib

import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/kestrel-train/tests/fixtures/weighted_ce.json"


def case(gen, n, c, weights, scale):
    logits = (torch.randn(n, c, generator=gen, dtype=torch.float64) * scale).float()
    targets = torch.randint(0, c, (n,), generator=gen)
    w = torch.tensor(weights, dtype=torch.float32)
    x = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(x, targets, weight=w)
    loss.backward()
    return {
        "logits": logits.tolist(),
        "targets": targets.tolist(),
        "weights": w.tolist(),
        "loss": loss.item(),
        "grad": x.grad.tolist(),
    }


def main():
    gen = torch.Generator().manual_seed(0)
    cases = [
        case(gen, 8, 4, [1.0, 1.0, 1.0, 1.0], 1.0),  # equal weights: the plain mean
        case(gen, 16, 4, [0.3, 1.2, 4.8, 9.6], 2.0),  # inverse-frequency-like weights
        case(gen, 5, 3, [2.0, 0.5, 7.0], 6.0),  # confident logits
        case(gen, 32, 8, [0.1 * (i + 1) for i in range(8)], 3.0),
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
