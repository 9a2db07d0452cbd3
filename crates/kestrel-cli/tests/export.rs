//! End-to-end tests of `kestrel export` and `kestrel bench infer`: a tiny training run exported as
//! a runtime plan (whose probabilities must match `kestrel predict`) and as ONNX (whose bytes must
//! match the library export that `tools/onnx_reference.py` checked with ONNX Runtime); the
//! benchmark's JSON fields; and the exit codes of bad input.

use kestrel_data::image_io::load_rgb;
use kestrel_data::preprocess::push_chw;
use kestrel_runtime::{Engine, EngineOptions, Plan};
use kestrel_train::run_dir;
use kestrel_train::Checkpoint;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;
use common::{
    assert_exit_2_naming, assert_ok, check_timing, fresh_tiny_run, json_of, kestrel, run_json,
    stderr, SMALL_SHAPES,
};

/// One epoch of a thin MobileNetV2 on 32 px shapes, shared by the export tests.
fn tiny_run() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, run) = RUN.get_or_init(|| {
        let (dir, run, _) = fresh_tiny_run(SMALL_SHAPES, "1");
        (dir, run)
    });
    run
}

/// `kestrel export --run RUN --format FORMAT --out OUT` with `extra` flags.
fn export(run: &Path, format: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["export", "--run", run.to_str().unwrap(), "--format", format];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    kestrel(&args)
}

/// `kestrel predict --run RUN --top-k 3 --json` with `extra` flags on `images`; it must succeed.
fn predict_top3(run: &Path, extra: &[&str], images: &[&str]) -> Value {
    let mut args = vec![
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--top-k",
        "3",
        "--json",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(images);
    run_json(&args)
}

/// `kestrel bench infer --model MODEL --width WIDTH --resolution R --threads 1 --engine ENGINE
/// --json` with `extra` flags; it must succeed.
fn bench_infer_json(model: &str, width: &str, r: &str, engine: &str, extra: &[&str]) -> Value {
    let mut args = vec!["bench", "infer", "--model", model, "--width", width];
    args.extend([
        "--resolution",
        r,
        "--threads",
        "1",
        "--engine",
        engine,
        "--json",
    ]);
    args.extend_from_slice(extra);
    json_of(&kestrel(&args), engine)
}

/// `kestrel bench infer --resolution 32 --batch 1` with each case's flags exits 2, naming the
/// case's needle, without a panic.
fn assert_bench_infer_refuses(cases: &[(&[&str], &str)]) {
    for &(extra, needle) in cases {
        let mut args = vec!["bench", "infer", "--resolution", "32", "--batch", "1"];
        args.extend_from_slice(extra);
        let o = kestrel(&args);
        assert_exit_2_naming(&o, &[needle]);
        assert!(!stderr(&o).contains("panicked"), "{extra:?}");
    }
}

fn softmax(z: &[f32]) -> Vec<f64> {
    let m = z.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[test]
fn exported_plan_gives_the_probabilities_of_predict() {
    let run = tiny_run();
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("img.png");
    image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 8) as u8, ((x + y) * 4) as u8])
    })
    .save(&img_path)
    .unwrap();
    let plan_path = dir.path().join("model.plan");
    let info = json_of(&export(run, "plan", &plan_path, &["--json"]), "export");
    assert_eq!(info["format"], "plan");
    assert_eq!(info["model"], "mobilenet-v2");
    assert_eq!(info["resolution"], 32);
    assert_eq!(info["classes"], 3);

    // The runtime on the plan, fed the image preprocessed as predict does it (NHWC).
    let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run)).unwrap();
    let mut chw = Vec::new();
    push_chw(
        &load_rgb(&img_path).unwrap(),
        32,
        32,
        &ckpt.meta.normalize,
        &mut chw,
    );
    let hw = 32 * 32;
    let nhwc: Vec<f32> = (0..hw * 3).map(|i| chw[(i % 3) * hw + i / 3]).collect();
    let mut engine =
        Engine::new(Plan::load(&plan_path).unwrap(), EngineOptions::default()).unwrap();
    let probs = softmax(engine.run(&nhwc, 1).unwrap());

    let v = predict_top3(run, &[], &[img_path.to_str().unwrap()]);
    for t in v[0]["top"].as_array().unwrap() {
        let c = t["class"].as_u64().unwrap() as usize;
        let p = t["prob"].as_f64().unwrap();
        assert!(
            (probs[c] - p).abs() < 1e-4,
            "class {c}: runtime {} vs predict {p}",
            probs[c]
        );
    }
}

#[test]
fn exported_onnx_is_the_library_export_of_the_best_checkpoint() {
    let run = tiny_run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    assert_ok(&export(run, "onnx", &out, &[]), "export");
    let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run)).unwrap();
    let model = ckpt.model(&burn::tensor::Device::flex()).unwrap();
    let want = kestrel_nn::export::to_onnx(&model, 32).unwrap();
    // The library's bytes, then metadata entries (ModelProto field 14) for deployment.
    let got = std::fs::read(&out).unwrap();
    assert!(
        got.starts_with(&want),
        "the graph differs from the library export"
    );
    let tail = String::from_utf8_lossy(&got[want.len()..]).into_owned();
    assert!(
        tail.starts_with('\u{72}'),
        "metadata_props (field 14) expected after the graph"
    );
    for key in [
        "kestrel.class_names",
        "kestrel.normalize",
        "kestrel.model",
        "mobilenet-v2",
    ] {
        assert!(tail.contains(key), "{key} missing from {tail:?}");
    }
    for name in &ckpt.meta.class_names {
        assert!(
            tail.contains(name.as_str()),
            "class {name} missing from {tail:?}"
        );
    }
}

#[test]
fn bench_infer_json_has_the_spec_fields_for_both_engines() {
    for engine in ["runtime", "burn"] {
        let extra = ["--batch", "2", "--warmup", "1"];
        let v = bench_infer_json("mobilenet-v1", "0.25", "32", engine, &extra);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys.len(),
            8,
            "{keys:?}: expected model, engine, batch, resolution, threads, min_ms, median_ms, images_per_s"
        );
        assert_eq!(v["engine"], engine);
        let median = check_timing(&v, "mobilenet-v1", 2, 32);
        let ips = v["images_per_s"].as_f64().unwrap();
        assert!((ips - 2.0 * 1000.0 / median).abs() < 1e-6 * ips, "{v}");
    }
}

/// `kestrel predict` runs on kestrel-runtime by default; `--engine burn` gives the same ranking
/// and probabilities.
#[test]
fn predict_engines_agree_on_a_tiny_run() {
    let run = tiny_run();
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..3u32 {
        let p = dir.path().join(format!("img{i}.png"));
        image::RgbImage::from_fn(40 + i * 7, 32, |x, y| {
            image::Rgb([(x * 6 + i * 50) as u8, (y * 8) as u8, ((x * y) % 256) as u8])
        })
        .save(&p)
        .unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let images: Vec<&str> = paths.iter().map(String::as_str).collect();
    let predict = |extra: &[&str]| predict_top3(run, extra, &images);
    let (default, runtime, burn) = (
        predict(&[]),
        predict(&["--engine", "runtime"]),
        predict(&["--engine", "burn"]),
    );
    assert_eq!(default, runtime, "the default engine is the runtime");
    for (r, b) in runtime
        .as_array()
        .unwrap()
        .iter()
        .zip(burn.as_array().unwrap())
    {
        let (rt, bt) = (r["top"].as_array().unwrap(), b["top"].as_array().unwrap());
        assert_eq!(rt.len(), 3);
        for (x, y) in rt.iter().zip(bt) {
            assert_eq!(x["class"], y["class"], "{r} vs {b}");
            let d = (x["prob"].as_f64().unwrap() - y["prob"].as_f64().unwrap()).abs();
            assert!(d < 1e-4, "{r} vs {b}");
        }
    }
}

#[test]
fn bench_infer_runs_segmenters_and_writes_their_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fcn.onnx");
    for engine in ["runtime", "burn"] {
        let mut extra = vec!["--batch", "1", "--warmup", "0", "--upsampler", "transposed"];
        extra.extend(["--export-onnx", out.to_str().unwrap()]);
        let v = bench_infer_json("fcn8s-mobilenet-v2", "0.35", "48", engine, &extra);
        assert_eq!(v["model"], "fcn8s-mobilenet-v2");
        assert_eq!(v["resolution"], 48);
        let bytes = std::fs::read(&out).unwrap();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"ConvTranspose") && has(b"Slice"), "{engine}");
    }
    // CARAFE and Meta-Upscale run on kestrel-runtime and export.
    for (up, op) in [("carafe", &b"Softmax"[..]), ("meta", &b"DepthToSpace"[..])] {
        let mut extra = vec!["--batch", "1", "--warmup", "0", "--upsampler", up];
        extra.extend(["--export-onnx", out.to_str().unwrap()]);
        let v = bench_infer_json("fcn16s-mobilenet-v2", "0.35", "40", "runtime", &extra);
        assert_eq!(v["model"], "fcn16s-mobilenet-v2");
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.windows(op.len()).any(|w| w == op), "{up}");
    }
    assert_bench_infer_refuses(&[
        (&["--model", "fcn8s-vgg16"][..], "fcn8s-vgg16"),
        (
            &["--model", "fcn8s-mobilenet-v2", "--upsampler", "lanczos"][..],
            "lanczos",
        ),
        (
            &["--model", "fcn8s-resnet18", "--output-stride", "4"][..],
            "output_stride",
        ),
        (
            &["--model", "fcn8s-resnet18", "--width", "0.5"][..],
            "--width",
        ),
    ]);
}

#[test]
fn bench_can_write_the_benchmarked_model_as_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.onnx");
    let o = kestrel(&[
        "bench",
        "infer",
        "--model",
        "resnet18",
        "--resolution",
        "32",
        "--batch",
        "1",
        "--threads",
        "1",
        "--warmup",
        "0",
        "--export-onnx",
        out.to_str().unwrap(),
    ]);
    assert_ok(&o, "bench infer");
    let bytes = std::fs::read(&out).unwrap();
    // ModelProto field 1 (ir_version) = 8 comes first.
    assert_eq!(&bytes[..2], &[0x08, 0x08]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("median"));
}

#[test]
fn bad_input_exits_2_with_a_message_naming_it() {
    assert_bench_infer_refuses(&[
        (&["--model", "vgg16"][..], "vgg16"),
        (&["--model", "resnet18", "--width", "0.5"][..], "--width"),
        (&["--model", "mobilenet-v1", "--width", "0"][..], "--width"),
        (&["--model", "mobilenet-v1", "--runs", "3"][..], "--runs"),
        (
            &["--model", "mobilenet-v1", "--threads", "0"][..],
            "--threads",
        ),
        (
            &["--model", "mobilenet-v1", "--engine", "tensorrt"][..],
            "tensorrt",
        ),
    ]);
    let o = kestrel(&["bench", "infer", "--model", "mobilenet-v1", "--batch", "0"]);
    assert_exit_2_naming(&o, &["--batch"]);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let out = out.to_str().unwrap();
    let o = kestrel(&[
        "export",
        "--run",
        "/nonexistent/run",
        "--format",
        "onnx",
        "--out",
        out,
    ]);
    assert_exit_2_naming(&o, &["/nonexistent/run"]);
    let o = kestrel(&[
        "export",
        "--arch",
        "mobilenet-v2",
        "--weights",
        "w.pth",
        "--format",
        "plan",
        "--out",
        out,
    ]);
    assert_exit_2_naming(&o, &["w.pth"]);
    let o = kestrel(&["export", "--format", "plan", "--out", out]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!Path::new(out).exists());
}

/// A small int8 plan: 3×3 stride-2 convolution (ReLU6), global pool, linear 4 → 3.
fn small_int8_plan() -> kestrel_runtime::quant::QuantPlan {
    use kestrel_runtime::quant::table::{int8_out_channels, weight_scales};
    use kestrel_runtime::quant::{ActQuant, Calibration, QuantPlan, QuantTable};
    use kestrel_runtime::{Activation, ConvParams, Op, PlanBuilder, Shape};
    let w: Vec<f32> = (0..4 * 3 * 9)
        .map(|i| ((i * 7) % 11) as f32 / 10.0 - 0.5)
        .collect();
    let l: Vec<f32> = (0..3 * 4)
        .map(|i| ((i * 5) % 7) as f32 / 7.0 - 0.4)
        .collect();
    let mut b = PlanBuilder::new(Shape::new(8, 8, 3));
    let p = ConvParams::new(&w, None, 4, 3).stride(2).padding(1);
    let x = b.conv(0, &p.act(Activation::Relu6)).unwrap();
    let x = b.global_pool(x).unwrap();
    let x = b.linear(x, &l, None, 3, Activation::None).unwrap();
    let plan = b.build(x).unwrap();
    let weight_scales = plan
        .graph
        .ops
        .iter()
        .map(|op| match (op, int8_out_channels(op)) {
            (Op::Conv(c), Some(n)) => weight_scales(plan.slice(c.weight), n, false),
            (Op::Linear { weight, .. }, Some(n)) => weight_scales(plan.slice(*weight), n, false),
            _ => vec![],
        })
        .collect();
    let ranges = [(-2.0, 2.0), (0.0, 6.0), (0.0, 6.0), (-5.0, 5.0)];
    let table = QuantTable {
        values: ranges.map(|(lo, hi)| ActQuant::from_range(lo, hi)).to_vec(),
        weight_scales,
        calibration: Calibration {
            method: "minmax".into(),
            images: 1,
            depthwise_per_tensor: false,
        },
    };
    QuantPlan { plan, table }
}

/// `kestrel export --plan FILE --format onnx`: an int8 plan gives the library's QDQ graph, an
/// fp32 plan the library's float graph, each followed by the metadata; bad files exit 2 naming
/// them and write nothing.
#[test]
fn plan_files_export_to_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let q = small_int8_plan();
    let (int8, fp32) = (dir.path().join("m.int8"), dir.path().join("m.plan"));
    q.save(&int8).unwrap();
    q.plan.save(&fp32).unwrap();
    for (file, is_int8) in [(&int8, true), (&fp32, false)] {
        let out = dir.path().join("m.onnx");
        let f = file.to_str().unwrap();
        let args = ["export", "--plan", f, "--format", "onnx"];
        let args = [&args[..], &["--out", out.to_str().unwrap(), "--json"]].concat();
        let info = run_json(&args);
        assert_eq!(info["int8"], is_int8, "{info}");
        assert_eq!(
            (info["resolution"].as_u64(), info["classes"].as_u64()),
            (Some(8), Some(3))
        );
        let want = match is_int8 {
            true => kestrel_nn::export::quant_plan_to_onnx(&q, &[]).unwrap(),
            false => kestrel_nn::export::plan_to_onnx(&q.plan, &[]).unwrap(),
        };
        let got = std::fs::read(&out).unwrap();
        assert!(got.starts_with(&want), "{f}: not the library's graph");
        let tail = String::from_utf8_lossy(&got[want.len()..]).into_owned();
        assert!(tail.contains("kestrel.input"), "{tail}");
        assert_eq!(tail.contains("kestrel.quantization"), is_int8, "{tail}");
        assert_eq!(info["bytes"].as_u64(), Some(got.len() as u64));
    }

    let out = dir.path().join("bad.onnx");
    let o = out.to_str().unwrap();
    let corrupt = dir.path().join("corrupt.int8");
    let mut bytes = q.to_bytes();
    let n = bytes.len();
    bytes[n - 20] ^= 1;
    std::fs::write(&corrupt, bytes).unwrap();
    let c = corrupt.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--plan", "/nonexistent/m.int8", "--format", "onnx"],
            "/nonexistent/m.int8",
        ),
        (&["--plan", c, "--format", "onnx"], "checksum"),
        (&["--plan", c, "--format", "plan"], "--format onnx"),
        (&["--plan", c, "--run", c, "--format", "onnx"], "--run"),
    ];
    for (extra, needle) in cases {
        let o = kestrel(&[&["export", "--out", o][..], extra].concat());
        assert_exit_2_naming(&o, &[needle]);
    }
    let o = kestrel(&["export", "--plan", c, "--format", "onnx", "--out", o]);
    assert_exit_2_naming(&o, &[c]);
    assert!(!out.exists());
}
