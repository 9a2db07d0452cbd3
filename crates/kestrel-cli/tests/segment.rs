//! End-to-end `kestrel train --task segment`, `eval` and `predict` on a tiny run.

use serde_json::Value;

mod common;
use common::{
    assert_exit_2_naming, assert_ok, json_of, kestrel, read_text, run_json, solid_png, train_tiny,
    SMALL_SHAPES,
};

#[test]
fn segment_train_eval_and_predict_give_the_spec_fields() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("seg");
    let run_s = run.to_str().unwrap();
    let o = train_tiny(
        SMALL_SHAPES,
        &run,
        &["--task", "segment", "--epochs", "1", "--json"],
    );
    let summary = json_of(&o, "train");
    assert_eq!(summary["task"], "segment");
    assert_eq!(summary["model"], "fcn8s-mobilenet-v2");
    for key in ["miou", "pixel_accuracy"] {
        let v = summary["val"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let metrics = read_text(&run.join("metrics.jsonl"));
    assert_eq!(metrics.lines().count(), 1);
    let line: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(line["train_loss"]["segment"].as_f64().unwrap().is_finite());
    let config = read_text(&run.join("config.toml"));
    assert!(config.contains("task = \"segment\""), "{config}");
    assert!(config.contains("upsampler = \"bilinear\""), "{config}");

    // eval: mIoU, pixel accuracy and one IoU per class (background + 3 shapes).
    let e = run_json(&["eval", "--run", run_s, "--json"]);
    assert_eq!(e["iou_per_class"].as_array().unwrap().len(), 4);
    // Validation again: the same numbers as the summary's best epoch.
    let d = (e["miou"].as_f64().unwrap() - summary["val"]["miou"].as_f64().unwrap()).abs();
    assert!(d < 1e-9, "{e} vs {summary}");
    assert!(e["pixel_accuracy"].as_f64().is_some());

    // predict: ranked non-background classes and a `boxes` list with the spec's fields.
    let img = dir.path().join("square.png");
    let mut im = image::RgbImage::from_pixel(48, 40, image::Rgb([20, 20, 20]));
    for y in 10..30 {
        for x in 8..28 {
            im.put_pixel(x, y, image::Rgb([230, 60, 60]));
        }
    }
    im.save(&img).unwrap();
    let p = run_json(&["predict", "--run", run_s, "--json", img.to_str().unwrap()]);
    let first = &p.as_array().unwrap()[0];
    let top = first["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert!(top.iter().all(|t| t["class"].as_u64().unwrap() >= 1));
    let boxes = first["boxes"]
        .as_array()
        .expect("segmentation predictions have boxes");
    for b in boxes {
        for key in ["class", "x0", "y0", "x1", "y1", "score"] {
            assert!(b.get(key).is_some(), "box lacks {key}: {b}");
        }
        assert!(b["class"].as_u64().unwrap() >= 1);
        assert!(b["x1"].as_u64().unwrap() <= 48 && b["y1"].as_u64().unwrap() <= 40);
        assert!(b["x0"].as_u64() < b["x1"].as_u64() && b["y0"].as_u64() < b["y1"].as_u64());
        assert!(b["score"].as_f64().unwrap() > 0.0);
    }

    // The Burn engine gives the same ranking, probabilities and boxes as the default runtime.
    let pb = run_json(&[
        "predict",
        "--run",
        run_s,
        "--json",
        "--engine",
        "burn",
        img.to_str().unwrap(),
    ]);
    let burn = &pb.as_array().unwrap()[0];
    for (x, y) in top.iter().zip(burn["top"].as_array().unwrap()) {
        assert_eq!(x["class"], y["class"], "{first} vs {burn}");
        let d = (x["prob"].as_f64().unwrap() - y["prob"].as_f64().unwrap()).abs();
        assert!(d < 1e-4, "{first} vs {burn}");
    }
    let bb = burn["boxes"].as_array().unwrap();
    assert_eq!(boxes.len(), bb.len(), "{first} vs {burn}");
    for (x, y) in boxes.iter().zip(bb) {
        for key in ["class", "x0", "y0", "x1", "y1"] {
            assert_eq!(x[key], y[key], "{first} vs {burn}");
        }
        assert!((x["score"].as_f64().unwrap() - y["score"].as_f64().unwrap()).abs() < 1e-2);
    }

    // export: the FCN as a plan (NHWC scores of the input size) and as ONNX.
    for format in ["plan", "onnx"] {
        let out = dir.path().join(format!("seg.{format}"));
        let info = run_json(&[
            "export",
            "--run",
            run_s,
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(info["model"], "fcn8s-mobilenet-v2");
        assert_eq!(info["classes"], 4);
        if format == "plan" {
            let plan = kestrel_runtime::Plan::load(&out).unwrap();
            let s = plan.output_shape();
            assert_eq!((s.h, s.w, s.c), (32, 32, 4));
        }
    }

    // Options classification has but segmentation does not are named.
    let o = kestrel(&[
        "train",
        "--task",
        "segment",
        "--balance",
        "smote",
        "--out",
        run_s,
    ]);
    assert_exit_2_naming(&o, &["balance"]);
    let o = kestrel(&["train", "--task", "segment", "--upsampler", "lanczos"]);
    assert_exit_2_naming(&o, &["lanczos"]);
}

/// `--output-stride 8` trains FCN-8s on a dilated backbone (every tap at stride 8), and the run
/// predicts; a stride other than 8, 16 or 32, or a dilated classifier, is bad input.
#[test]
fn segmentation_trains_on_a_dilated_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("os8");
    let run_with = |os: &str, task: &str| {
        let extra = ["--task", task, "--epochs", "1", "--output-stride", os];
        train_tiny(SMALL_SHAPES, &run, &extra)
    };
    let o = run_with("8", "segment");
    assert_ok(&o, "train");
    let config = read_text(&run.join("config.toml"));
    assert!(config.contains("output_stride = 8"), "{config}");
    let img = dir.path().join("x.png");
    solid_png(&img, 32, 32, [200, 20, 20]);
    let o = kestrel(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        img.to_str().unwrap(),
        "--json",
    ]);
    assert_ok(&o, "predict");
    std::fs::remove_dir_all(&run).unwrap();
    for (os, task) in [("12", "segment"), ("8", "classify")] {
        let o = run_with(os, task);
        assert_exit_2_naming(&o, &["output_stride"]);
    }
}

/// An FCN's score layers start at zero, so no gradient reaches its backbone on the first step
/// (grad_norms.jsonl shows the zeros), and from the second step on it does: a healthy run, which
/// raises no vanishing-gradient warning.
#[test]
fn a_healthy_fcn_run_raises_no_vanishing_gradient_warning() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("seg");
    let o = train_tiny(
        SMALL_SHAPES,
        &run,
        &[
            "--task",
            "segment",
            "--epochs",
            "1",
            "--grad-log-every",
            "1",
        ],
    );
    assert_ok(&o, "train");
    let samples = common::read_jsonl(&run.join("grad_norms.jsonl"));
    assert!(samples.len() >= 2, "{} samples", samples.len());
    let backbone_zeros = |s: &Value| {
        s["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["name"].as_str().unwrap().starts_with("backbone.") && l["norm"] == 0.0)
            .count()
    };
    assert!(backbone_zeros(&samples[0]) > 100, "{}", samples[0]);
    assert_eq!(backbone_zeros(&samples[1]), 0, "{}", samples[1]);
    let err = common::stderr(&o);
    assert!(!err.contains("vanishing gradient"), "{err}");
}
