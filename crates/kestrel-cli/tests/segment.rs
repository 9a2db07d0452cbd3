//! End-to-end `kestrel train --task segment`, `eval` and `predict` on a tiny run.

use serde_json::Value;

mod common;
use common::{kestrel, stderr};

#[test]
fn segment_train_eval_and_predict_give_the_spec_fields() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("seg");
    let run_s = run.to_str().unwrap();
    let o = kestrel(&[
        "train",
        "--task",
        "segment",
        "--data",
        "shapes:n=48,size=32,classes=3,seed=2",
        "--resolution",
        "32",
        "--width",
        "0.25",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        run_s,
        "--json",
    ]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["task"], "segment");
    assert_eq!(summary["model"], "fcn8s-mobilenet-v2");
    for key in ["miou", "pixel_accuracy"] {
        let v = summary["val"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1);
    let line: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(line["train_loss"]["segment"].as_f64().unwrap().is_finite());
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("task = \"segment\""), "{config}");
    assert!(config.contains("upsampler = \"bilinear\""), "{config}");

    // eval: mIoU, pixel accuracy and one IoU per class (background + 3 shapes).
    let o = kestrel(&["eval", "--run", run_s, "--json"]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
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
    let o = kestrel(&["predict", "--run", run_s, "--json", img.to_str().unwrap()]);
    assert!(o.status.success(), "predict failed: {}", stderr(&o));
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
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
    let o = kestrel(&[
        "predict",
        "--run",
        run_s,
        "--json",
        "--engine",
        "burn",
        img.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "predict --engine burn failed: {}",
        stderr(&o)
    );
    let pb: Value = serde_json::from_slice(&o.stdout).unwrap();
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
        let o = kestrel(&[
            "export",
            "--run",
            run_s,
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(o.status.success(), "export {format}: {}", stderr(&o));
        let info: Value = serde_json::from_slice(&o.stdout).unwrap();
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
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("balance"), "{}", stderr(&o));
    let o = kestrel(&["train", "--task", "segment", "--upsampler", "lanczos"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("lanczos"), "{}", stderr(&o));
}

/// `--output-stride 8` trains FCN-8s on a dilated backbone (every tap at stride 8), and the run
/// predicts; a stride other than 8, 16 or 32, or a dilated classifier, is bad input.
#[test]
fn segmentation_trains_on_a_dilated_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("os8");
    let args = |os: &str, task: &str| {
        vec![
            "train".to_string(),
            "--task".into(),
            task.into(),
            "--data".into(),
            "shapes:n=48,size=32,classes=3,seed=2".into(),
            "--resolution".into(),
            "32".into(),
            "--width".into(),
            "0.25".into(),
            "--batch-size".into(),
            "8".into(),
            "--epochs".into(),
            "1".into(),
            "--output-stride".into(),
            os.into(),
            "--out".into(),
            run.to_str().unwrap().into(),
        ]
    };
    let run_with = |os: &str, task: &str| {
        let a = args(os, task);
        kestrel(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run_with("8", "segment");
    assert!(o.status.success(), "{}", stderr(&o));
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("output_stride = 8"), "{config}");
    let img = dir.path().join("x.png");
    image::RgbImage::from_pixel(32, 32, image::Rgb([200, 20, 20]))
        .save(&img)
        .unwrap();
    let o = kestrel(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        img.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&run).unwrap();
    for (os, task) in [("12", "segment"), ("8", "classify")] {
        let o = run_with(os, task);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("output_stride"), "{}", stderr(&o));
    }
}
