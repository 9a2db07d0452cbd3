"""What tools/onnx_reference.py and tools/onnx_fcn_reference.py share (not run on its own).

`main` is the whole of either script but for what it checks and stores of ONNX Runtime's outputs:
`exported_cases` runs the cargo test that exports the cases, checks each ONNX file and opens an
ONNX Runtime session on it; `write_fixture` writes the JSON fixture with the versions used;
`fnv1a64` fingerprints the exported bytes (the Rust tests compute the same).
"""

import argparse
import json
import os
import subprocess
import tempfile

import onnx
import onnxruntime as ort


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def exported_cases(cargo_test):
    """Runs `cargo_test` (a command list) with KESTREL_ONNX_OUT set to a temporary folder, into
    which it writes `<name>.json` (the case), `<name>.onnx` and `<name>.input.f32` per case.

    Yields, per case in name order, `(meta, data, ops, input_path, session)`: the case's JSON,
    the exported bytes (checked with `onnx.checker.check_model(full_check=True)`: opset 17, an
    input `input` with the symbolic batch dimension `batch`), its sorted operator types, the
    path of its NCHW float32 input and a one-thread CPU ONNX Runtime session on it.
    """
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, KESTREL_ONNX_OUT=d)
        subprocess.run(cargo_test, check=True, env=env)
        for meta_file in sorted(f for f in os.listdir(d) if f.endswith(".json")):
            meta = json.load(open(os.path.join(d, meta_file)))
            name = meta["name"]
            data = open(os.path.join(d, name + ".onnx"), "rb").read()
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model, full_check=True)
            assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
            inp = model.graph.input[0]
            assert inp.name == "input"
            assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
            ops = sorted({n.op_type for n in model.graph.node})
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            yield meta, data, ops, os.path.join(d, name + ".input.f32"), sess


def write_fixture(path, generator, cases, **dump_options):
    """Writes `{"generator", "onnx", "onnxruntime", "cases"}` to `path` (json.dump with
    `dump_options`, then a newline) and says so."""
    out = {
        "generator": generator,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, **dump_options)
        f.write("\n")
    print("wrote", path)


def main(generator, default_out, cargo_test, outputs, **dump_options):
    """A reference script: reads `--out` (default `default_out`), runs `cargo_test` through
    `exported_cases` and, per case, `outputs(meta, ops, input_path, session)`, which runs and
    checks ONNX Runtime and returns the fields to store after the case's own, its fingerprint and
    its operators; then writes the fixture under the name `generator`."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args()
    cases = []
    for meta, data, ops, input_path, sess in exported_cases(cargo_test):
        fields = outputs(meta, ops, input_path, sess)
        cases.append(dict(meta, fnv1a64=fnv1a64(data), ops=ops, **fields))
    write_fixture(args.out, generator, cases, **dump_options)
