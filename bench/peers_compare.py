#!/usr/bin/env python3
"""Inference latency table: kestrel-runtime against ONNX Runtime, OpenVINO, ncnn and MNN on the same
network, model by model, in one invocation.

Usage (from the repository root; needs `pip install onnxruntime numpy`, and for the other peers
`pip install openvino ncnn MNN` and `pip install --no-deps pnnx`):

    python3 bench/peers_compare.py [--threads 2] [--runs 20] [--warmup 3] [--rounds 3]
        [--kestrel PATH] [--only NAME ...] [--resolution R] [--batches 1,32]
        [--upsampler NAME]
        [--peers ort,openvino,ncnn,mnn]

The cases are compare_ort.py's (bench_common.INFERENCE_CASES): MobileNetV1-1.0, MobileNetV2-1.0,
ResNet-18 and ResNet-50 at 224 x 224, batch 1 and 32, and FCN-8s-MobileNetV2 (alpha 1.0) at
512 x 512, batch 1. For each case,
`kestrel bench infer --model NAME --engine runtime --json --export-onnx TMP.onnx ...` builds the
model with random weights, times kestrel-runtime and writes that exact model as ONNX (batch norm
folded, opset 17, input `input`, NCHW float32, dynamic batch; output `logits`, for the FCN the
N x 21 x R x R class scores). Every peer then runs that file, converted by its own tools:

- ort: ONNX Runtime on the file as it is (bench_common.ort_session: CPU provider,
  `intra_op_num_threads` = threads, sequential, all graph optimisations), timed by
  bench_common.time_ort;
- openvino: `Core.read_model` on the ONNX file, reshaped to the case's static input shape, then
  `compile_model` on "CPU" with INFERENCE_NUM_THREADS = threads, PERFORMANCE_HINT LATENCY and
  NUM_STREAMS 1 (one stream of `threads` threads for one synchronous request, as the other
  engines run), and INFERENCE_PRECISION_HINT f32 (on a CPU with AVX-512 BF16 OpenVINO otherwise
  computes in bfloat16); timed on one InferRequest's `infer`;
- ncnn: the ONNX file converted by pnnx (`pnnx TMP.onnx inputshape=[1,3,R,R]f32 fp16=0`, the
  binary that the `pnnx` package ships, run directly: the package's Python module imports torch,
  so it is installed with --no-deps and not imported), then `ncnn.Net` with
  `opt.num_threads` = threads and fp16 storage / packing / arithmetic off (float32 weights and
  arithmetic, like the others; on x86 they default on); light mode, packing layout, Winograd and
  sgemm options stay at their defaults. ncnn has no batch dimension: a batch of B runs as B
  extractions, one image after another, each spread over the threads;
- mnn: the ONNX file converted by MNN's converter (`mnnconvert -f ONNX --modelFile TMP.onnx
  --MNNModel TMP.mnn`, called through the `_tools` extension module that the MNN package's
  `mnnconvert` command wraps: that command's wrapper also tries to pip-install a logging SDK and
  send a usage record), then `MNN.nn.load_module_from_file` with a CPU runtime manager of
  `numThread` = threads (precision left at "normal", which is float32 on x86); timed on
  `forward` plus the conversion of the output to NCHW and its read into numpy.

A conversion or load that fails drops that peer from the case with a one-line note; a peer whose
package is missing is skipped for the whole run with a one-line note.

Every engine gets the same input, seeded and uniform in [-1, 1) (as time_ort's and kestrel's),
`--warmup` untimed runs, then `--runs` timed ones. `--rounds N` alternates all engines N times per
case (kestrel, then each peer in the order of `--peers`), so that a drift in a shared machine's
speed touches them alike. For each case and engine it prints the median over rounds of each
round's median (ms), images/s, the ratio peer / kestrel as the median of the rounds' ratios (each
round measured back to back; above 1: kestrel is faster) with every round's ratio in round order,
and, as a check that the conversion computes the same network, each peer's largest absolute
difference from ONNX Runtime's output on that input, relative to ONNX Runtime's largest absolute
output (about 1e-6 for float32 engines that agree; ONNX Runtime itself shows "-"). The FCN's
score convolutions start at zero, so its output is all zeros and would hide any error: where ONNX
Runtime's output is all zeros, the check runs instead on a copy of the ONNX file whose all-zero
float weights are filled with seeded random values (needs the `onnx` package), converted again by
every peer; the timings stay on kestrel's file. `--runs` is at least 10 (kestrel's minimum); a
round's ratios are listed when there is more than one round.

Tested with onnxruntime 1.32.0, openvino 2026.4.1, ncnn 1.0.20261020 with pnnx 20261020, and MNN
3.6.1 (Python 3.11, x86-64 Linux). Without `--kestrel` the binary is run with `cargo run
--release -p kestrel-cli`. Timings are meaningful only on an otherwise idle machine.
"""

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from bench_common import (bench_infer_cmd, bench_input, inference_args, median, ort_session,
                          time_calls, time_ort)


PEERS = ["ort", "openvino", "ncnn", "mnn"]

# The Python modules each peer needs (pnnx is looked up, not imported).
PEER_MODULES = {
    "ort": ["onnxruntime"],
    "openvino": ["openvino"],
    "ncnn": ["ncnn", "pnnx"],
    "mnn": ["MNN", "_tools"],
}

PEER_INSTALL = {
    "ort": "pip install onnxruntime",
    "openvino": "pip install openvino",
    "ncnn": "pip install ncnn; pip install --no-deps pnnx",
    "mnn": "pip install MNN",
}


@contextlib.contextmanager
def c_stdout_to_devnull():
    """Silence what native code prints on file descriptor 1 (MNN prints CPU features on import)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def missing_module(peer):
    return next((m for m in PEER_MODULES[peer] if importlib.util.find_spec(m) is None), None)


def versions(peers):
    names = {"ort": ["onnxruntime"], "openvino": ["openvino"], "ncnn": ["ncnn", "pnnx"],
             "mnn": ["MNN"]}
    out = []
    for p in peers:
        for dist in names[p]:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
    return ", ".join(out)


def convert(name, cmd, cwd, result):
    """Run the converter `name` (command `cmd`) in `cwd`; unless it exits with 0 and writes
    `result`, raise with the last line it printed (MNN's converter exits with 0 even on failure)."""
    res = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0 or not os.path.exists(result):
        lines = res.stdout.strip().splitlines() or [f"exit status {res.returncode}"]
        raise RuntimeError(f"{name} failed: {lines[-1]}")


def load_ort(onnx_path, d, threads, batch, r):
    sess = ort_session(onnx_path, threads)
    return (lambda x: sess.run(["logits"], {"input": x})[0],
            lambda warmup, runs: time_ort(sess, batch, r, warmup, runs))


def load_openvino(onnx_path, d, threads, batch, r):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(onnx_path)
    model.reshape({"input": [batch, 3, r, r]})
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": "f32",
    })
    req, out = compiled.create_infer_request(), compiled.output("logits")
    return lambda x: req.infer({"input": x})[out]


def pnnx_exe():
    return os.path.join(os.path.dirname(importlib.util.find_spec("pnnx").origin), "pnnx")


def load_ncnn(onnx_path, d, threads, batch, r):
    import ncnn
    import numpy as np

    stem = os.path.join(d, "ncnn")
    cmd = [pnnx_exe(), onnx_path, f"inputshape=[1,3,{r},{r}]f32", "fp16=0",
           f"ncnnparam={stem}.param", f"ncnnbin={stem}.bin", f"ncnnpy={stem}.py",
           f"pnnxparam={stem}.pnnx.param", f"pnnxbin={stem}.pnnx.bin",
           f"pnnxpy={stem}_pnnx.py", f"pnnxonnx={stem}.pnnx.onnx"]
    convert("pnnx", cmd, d, f"{stem}.bin")
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    if net.load_param(f"{stem}.param") or net.load_model(f"{stem}.bin"):
        raise RuntimeError("ncnn could not load the converted model")

    def run(x):
        outs = []
        for image in x:
            ex = net.create_extractor()
            ex.input("in0", ncnn.Mat(image))
            ret, y = ex.extract("out0")
            if ret:
                raise RuntimeError(f"ncnn extract returned {ret}")
            outs.append(np.array(y))
        return np.stack(outs)

    return run


# MNN's converter, without the `mnnconvert` command's wrapper (see the docstring).
MNN_CONVERT = "import sys, _tools; sys.exit(not _tools.mnnconvert(sys.argv))"


def load_mnn(onnx_path, d, threads, batch, r):
    with c_stdout_to_devnull():
        import MNN.expr as F
        import MNN.nn as nn

    mnn_path = os.path.join(d, "model.mnn")
    cmd = [sys.executable, "-c", MNN_CONVERT, "-f", "ONNX", "--modelFile", onnx_path,
           "--MNNModel", mnn_path, "--bizCode", "kestrel"]
    convert("mnnconvert", cmd, d, mnn_path)
    rt = nn.create_runtime_manager(({"backend": "CPU", "numThread": threads},))
    net = nn.load_module_from_file(mnn_path, ["input"], ["logits"], runtime_manager=rt)
    return lambda x: F.convert(net.forward(F.const(x, list(x.shape), F.NCHW)), F.NCHW).read()


LOADERS = {"ort": load_ort, "openvino": load_openvino, "ncnn": load_ncnn, "mnn": load_mnn}


def load_peers(peers, onnx_path, d, threads, batch, r, x):
    """Peer name -> (run, time) for the peers that convert and load; a note for each that fails."""
    loaded = {}
    for p in peers:
        pd = os.path.join(d, p)
        os.makedirs(pd, exist_ok=True)
        try:
            got = LOADERS[p](onnx_path, pd, threads, batch, r)
        except Exception as e:  # a broken conversion drops the peer, not the table
            print(f"  note: {p} dropped from this case: {str(e).strip().splitlines()[-1]}")
            continue
        if isinstance(got, tuple):
            loaded[p] = got
        else:
            loaded[p] = (got, lambda warmup, runs, run=got: time_calls(lambda: run(x), warmup, runs))
    return loaded


def agreement(loaded, x):
    """Peer name -> max |peer - ONNX Runtime| / max |ONNX Runtime| on x, as text; {} without ort,
    None when ONNX Runtime's output is all zeros (nothing to compare)."""
    import numpy as np

    if "ort" not in loaded:
        return {}
    ref = np.asarray(loaded["ort"][0](x))
    scale = float(np.abs(ref).max())
    if scale == 0:
        return None
    out = {}
    for p, (run, _) in loaded.items():
        if p == "ort":
            continue
        y = np.asarray(run(x), dtype=np.float32)
        if y.size != ref.size:
            out[p] = f"shape {y.shape}"
            continue
        out[p] = f"{float(np.abs(y.reshape(ref.shape) - ref).max()) / scale:.1e}"
    return out


def fill_zero_weights(onnx_path, out_path):
    """Copy the ONNX file with every all-zero float initialiser of more than one element filled
    with seeded random values (FCN score convolutions start at zero, so its output would be)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.load(onnx_path)
    rng = np.random.default_rng(1)
    for t in m.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size > 1 and not a.any():
            filled = rng.uniform(-0.1, 0.1, a.shape).astype(np.float32)
            t.CopyFrom(numpy_helper.from_array(filled, t.name))
    onnx.save(m, out_path)


def check_peers(loaded, onnx_path, d, threads, batch, r, x):
    """The agreement of each loaded peer with ONNX Runtime; on the zero-filled copy (converted
    again by every peer) when ONNX Runtime's output is all zeros."""
    diffs = agreement(loaded, x)
    if diffs is not None:
        return diffs
    if importlib.util.find_spec("onnx") is None:
        print("  note: ONNX Runtime's output is all zeros and `onnx` is missing: no check")
        return {}
    print("  note: ONNX Runtime's output is all zeros: checking on a copy with the zero "
          "weights filled")
    cd = os.path.join(d, "check")
    os.makedirs(cd)
    check_path = os.path.join(cd, "check.onnx")
    fill_zero_weights(onnx_path, check_path)
    return agreement(load_peers(list(loaded), check_path, cd, threads, batch, r, x), x) or {}


def run_case(args, peers, model, width, r, batch, d):
    onnx_path = os.path.join(d, f"{model}-{r}-{batch}.onnx")
    cmd = bench_infer_cmd(args, model, width, r, batch, onnx_path)
    x = bench_input(batch, r)
    k_ms, p_ms, loaded, diffs = [], {}, None, {}
    for _ in range(args.rounds):
        k = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
        k_ms.append(k["median_ms"])
        if loaded is None:
            loaded = load_peers(peers, onnx_path, d, args.threads, batch, r, x)
            diffs = check_peers(loaded, onnx_path, d, args.threads, batch, r, x)
        for p, (_, time_it) in loaded.items():
            p_ms.setdefault(p, []).append(median(time_it(args.warmup, args.runs)))
    rows = [("kestrel", median(sorted(k_ms)), None, None)]
    for p, ms in p_ms.items():
        rows.append((p, median(sorted(ms)), [o / k for k, o in zip(k_ms, ms)], diffs.get(p)))
    return rows




def select_peers(args, ap):
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    kept = []
    for p in peers:
        m = missing_module(p)
        if m:
            print(f"note: skipping {p}: Python module `{m}` is missing ({PEER_INSTALL[p]})")
        else:
            kept.append(p)
    if kept and "ort" not in kept:
        print("note: without ort no peer's output is checked")
    return kept


def print_rows(model, r, batch, rows):
    for engine, ms, ratios, diff in rows:
        ratio = f"{median(sorted(ratios)):.2f}" if ratios else "-"
        rounds = " ".join(f"{x:.2f}" for x in ratios) if ratios and len(ratios) > 1 else ""
        diff = diff or "-"
        print(f"{model:<20} {r:>5} {batch:>5} {engine:<9} {ms:>10.3f} {batch / (ms / 1e3):>9.1f} "
              f"{ratio:>9} {diff:>9}   {rounds}", flush=True)


def main():
    ap = argparse.ArgumentParser()

    def peers_arg(ap):
        ap.add_argument("--peers", default=",".join(PEERS),
                        help="comma-separated peers to time against kestrel (default: all)")

    args, cases = inference_args(ap, "kestrel and every peer this many times per case", peers_arg)
    peers = select_peers(args, ap)

    print(f"threads {args.threads}, warm-up {args.warmup}, median of {args.runs} runs, "
          f"{args.rounds} round(s); {versions(peers) or 'no peer'}")
    header = (f"{'model':<20} {'size':>5} {'batch':>5} {'engine':<9} {'ms':>10} {'img/s':>9} "
              f"{'/kestrel':>9} {'rel.diff':>9}   rounds")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as d:
        for model, width, r, batch in cases:
            r = args.resolution or r
            cd = os.path.join(d, f"{model}-{r}-{batch}")
            os.makedirs(cd)
            print_rows(model, r, batch, run_case(args, peers, model, width, r, batch, cd))


if __name__ == "__main__":
    main()
