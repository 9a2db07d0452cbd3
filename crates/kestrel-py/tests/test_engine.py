"""kestrel.Engine and the run API against the CLI and ONNX Runtime."""

import json
import pathlib

import numpy as np
import pytest

import kestrel
from conftest import images, run_cli

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise(pixels):
    """What kestrel does to an image already at the run's resolution: ImageNet mean and std, NCHW."""
    x = (pixels.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_engine_logits_equal_kestrel_predict_and_onnx_runtime(tiny_run, tmp_path, kestrel_bin):
    paths, pixels = images(tmp_path, 5, 32)
    x = normalise(pixels)
    engine = kestrel.Engine(str(tiny_run), threads=1)
    assert engine.input_shape == (3, 32, 32) and engine.output_shape == [3]
    logits = engine(x)
    assert logits.shape == (5, 3) and logits.dtype == np.float32
    # The CLI's probabilities of the same images (read from the files, resized: none needed).
    predicted = json.loads(run_cli(kestrel_bin, "predict", "--run", tiny_run, "--json", "--top-k", "3", *paths))
    probs = softmax(logits.astype(np.float64))
    for row, p in zip(probs, predicted):
        for top in p["top"]:
            assert abs(row[top["class"]] - top["prob"]) <= 1e-4, (row, p)
    # A plan file gives the same engine; ONNX Runtime on kestrel's ONNX export the same logits.
    plan, onnx = tmp_path / "m.plan", tmp_path / "m.onnx"
    run_cli(kestrel_bin, "export", "--run", tiny_run, "--format", "plan", "--out", plan)
    run_cli(kestrel_bin, "export", "--run", tiny_run, "--format", "onnx", "--out", onnx)
    np.testing.assert_allclose(kestrel.Engine(str(plan))(x), logits, rtol=0, atol=1e-4)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"input": x})
    np.testing.assert_allclose(logits, want, rtol=0, atol=1e-4)


def test_a_run_predicts_and_evaluates_as_the_cli(tiny_run, tmp_path, kestrel_bin):
    run = kestrel.load_run(tiny_run)
    assert run.task == "classify" and len(run.class_names) == 3
    assert run.config["resolution"] == 32
    paths, _ = images(tmp_path, 2, 40, seed=1)
    got = run.predict([str(p) for p in paths], top_k=2)
    want = json.loads(run_cli(kestrel_bin, "predict", "--run", tiny_run, "--json", "--top-k", "2", *paths))
    assert got == want
    evaluated = run.evaluate("val")
    cli = json.loads(run_cli(kestrel_bin, "eval", "--run", tiny_run, "--json"))
    assert evaluated == cli


def test_info_equals_the_cli(kestrel_bin):
    want = json.loads(run_cli(kestrel_bin, "info", "mobilenet-v2", "--width", "0.5", "--resolution", "160", "--json"))
    assert kestrel.info("mobilenet-v2", width=0.5, resolution=160) == want
    want = json.loads(run_cli(kestrel_bin, "info", "fcn8s-resnet18", "--classes", "5", "--json"))
    assert kestrel.info("fcn8s-resnet18", classes=5) == want
    with pytest.raises(ValueError, match="unknown model"):
        kestrel.info("vgg16")


def test_preprocess_imagenet_is_torchvisions_shape_and_scale(tmp_path):
    (path,), pixels = images(tmp_path, 1, 300)
    x = kestrel.preprocess_imagenet(str(path))
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    # Resize 256 then centre crop 224 of a 300 px square: the crop's mean colour is close to
    # the image's, normalised.
    want = ((pixels[0].reshape(-1, 3).mean(axis=0) / 255.0 - MEAN) / STD)
    np.testing.assert_allclose(x.reshape(3, -1).mean(axis=1), want, atol=0.05)


def test_bad_inputs_raise_with_a_message(tiny_run, tmp_path):
    engine = kestrel.Engine(str(tiny_run))
    good = np.zeros((1, 3, 32, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="float32"):
        engine(good.astype(np.float64))
    with pytest.raises(ValueError, match="float32"):
        engine(good[0])
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        engine(np.zeros((1, 3, 31, 32), dtype=np.float32))
    with pytest.raises(OSError, match="missing.plan"):
        kestrel.Engine(str(tmp_path / "missing.plan"))
    corrupt = tmp_path / "corrupt.plan"
    corrupt.write_bytes(b"KESTPLAN" + b"\x02\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(ValueError, match="corrupt.plan"):
        kestrel.Engine(str(corrupt))
    with pytest.raises(OSError, match="missing.png"):
        kestrel.preprocess_imagenet(str(tmp_path / "missing.png"))
    with pytest.raises(OSError):
        kestrel.load_run(tmp_path / "no-run")
    with pytest.raises(ValueError, match="unknown"):
        kestrel.train(out=str(tmp_path / "x"), progress=False, no_such_setting=1)
