"""What the scripts in bench/ share (not run on its own): the median of sorted timings, the
inference comparisons' cases and their selection, the ONNX Runtime session and timing loop, and
the `--rounds` flag.
onnxruntime and numpy are imported only by the functions that need them, so that
bench/train_compare.py runs without them.
"""

import time


# The inference comparisons' cases (compare_ort.py, peers_compare.py):
# (model, width, resolution, batch).
INFERENCE_CASES = [
    ("mobilenet-v2", 1.0, 224, 1),
    ("mobilenet-v2", 1.0, 224, 32),
    ("mobilenet-v1", 1.0, 224, 1),
    ("mobilenet-v1", 1.0, 224, 32),
    ("resnet18", None, 224, 1),
    ("resnet18", None, 224, 32),
    ("resnet50", None, 224, 1),
    ("resnet50", None, 224, 32),
    ("fcn8s-mobilenet-v2", 1.0, 512, 1),
]


def select_cases(args, ap):
    """INFERENCE_CASES kept by `--only` (model names), with `--batches` (e.g. "1,32") replacing
    each model's batch sizes; an error through `ap` when none is left."""
    cases = [c for c in INFERENCE_CASES if not args.only or c[0] in args.only]
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
        seen, out = set(), []
        for m, w, r, _ in cases:
            for b in batches:
                if (m, b) not in seen:
                    seen.add((m, b))
                    out.append((m, w, r, b))
        cases = out
    if not cases:
        ap.error("no case left after --only")
    return cases


def median(sorted_ms):
    n = len(sorted_ms)
    return sorted_ms[n // 2] if n % 2 else (sorted_ms[n // 2 - 1] + sorted_ms[n // 2]) / 2


def ort_session(path, threads):
    """ONNX Runtime on the CPU: `threads` intra-op threads, sequential, all graph optimisations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def kestrel_cmd(args):
    """The kestrel command: `--kestrel PATH` if given, else `cargo run --release` of the CLI."""
    if args.kestrel:
        return [args.kestrel]
    return ["cargo", "run", "--quiet", "--release", "-p", "kestrel-cli", "--bin", "kestrel", "--"]


def bench_infer_cmd(args, model, width, r, batch, onnx_path):
    """`kestrel bench infer` of one case on kestrel-runtime, timed as `args` says, printing JSON
    and writing the benchmarked network to `onnx_path` (the FCN cases with `args.upsampler`)."""
    cmd = kestrel_cmd(args) + [
        "bench", "infer", "--model", model, "--resolution", str(r), "--batch", str(batch),
        "--threads", str(args.threads), "--engine", "runtime", "--warmup", str(args.warmup),
        "--runs", str(args.runs), "--json", "--export-onnx", onnx_path,
    ]
    if width is not None:
        cmd += ["--width", str(width)]
    if model.startswith("fcn"):
        cmd += ["--upsampler", args.upsampler]
    return cmd


def bench_input(batch, r):
    """The seeded batch x 3 x r x r input uniform in [-1, 1) (as kestrel's) every engine gets."""
    import numpy as np

    return np.random.default_rng(0).uniform(-1, 1, (batch, 3, r, r)).astype(np.float32)


def time_calls(call, warmup, runs):
    """Milliseconds of `runs` calls of `call()` after `warmup` untimed ones, sorted."""
    for _ in range(warmup):
        call()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        call()
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    return ms


def time_ort(sess, batch, r, warmup, runs):
    """Milliseconds of `runs` runs of `sess` after `warmup`, sorted, on bench_input."""
    x = bench_input(batch, r)
    return time_calls(lambda: sess.run(["logits"], {"input": x}), warmup, runs)


def inference_args(ap, alternate, extra=None):
    """Adds the inference comparisons' flags (--threads, --warmup, --runs, --kestrel, --only,
    --resolution, --batches, --rounds; `extra(ap)` adds a script's own), parses them, checks
    --runs against kestrel's minimum and returns (args, cases)."""
    import os

    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--kestrel", help="path of a built kestrel binary")
    ap.add_argument("--only", nargs="+", help="model names to keep")
    ap.add_argument("--resolution", type=int, help="override every case's resolution")
    ap.add_argument("--batches", help="override the batch sizes, e.g. 1,2")
    ap.add_argument("--upsampler", default="bilinear",
                    help="upsampling layers of the FCN cases (kestrel's --upsampler)")
    if extra:
        extra(ap)
    add_rounds_arg(ap, alternate)
    args = ap.parse_args()
    if args.runs < 10:
        ap.error("--runs must be at least 10 (kestrel bench infer's minimum)")
    return args, select_cases(args, ap)


def add_rounds_arg(ap, alternate):
    """The `--rounds N` flag; `alternate` says what alternates N times (its help text)."""
    ap.add_argument("--rounds", type=int, default=1,
                    help=f"alternate {alternate}; medians of the rounds are printed, and every "
                         "round's ratio")
