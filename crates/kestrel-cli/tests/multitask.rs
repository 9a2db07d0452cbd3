//! End-to-end `kestrel train --task multitask` and `kestrel eval` on a tiny run.

use serde_json::Value;
use std::process::Output;

mod common;
use common::{kestrel, stderr};

fn train(run: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--task",
        "multitask",
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
        run,
        "--json",
    ];
    args.extend_from_slice(extra);
    kestrel(&args)
}

#[test]
fn multitask_train_and_eval_give_both_metric_sets() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("mt");
    let run_s = run.to_str().unwrap();
    let o = train(run_s, &["--weighting", "gradnorm", "--cascade"]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["task"], "multitask");
    assert_eq!(summary["model"], "fcn8s-mobilenet-v2");
    for key in ["accuracy", "macro_f1", "miou", "pixel_accuracy"] {
        let v = summary["val"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    // The report draws the per-task curves and the task weights.
    assert!(run.join("report.html").is_file());
    for plot in ["loss.png", "task_weights.png", "val_metrics.png"] {
        assert!(run.join("plots").join(plot).is_file(), "{plot}");
    }
    assert_eq!(metrics.lines().count(), 1);
    let line: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    for task in ["classify", "segment"] {
        assert!(
            line["train_loss"][task].as_f64().unwrap().is_finite(),
            "{line}"
        );
    }
    // GradNorm moved the weights after its first step, and they still sum to the task count.
    let (wc, ws) = (
        line["task_weights"]["classify"].as_f64().unwrap(),
        line["task_weights"]["segment"].as_f64().unwrap(),
    );
    assert!((wc + ws - 2.0).abs() < 1e-9 && wc != 1.0, "{line}");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("task = \"multitask\""), "{config}");
    assert!(config.contains("weighting = \"gradnorm\""), "{config}");
    assert!(config.contains("cascade = true"), "{config}");

    // eval: both metric sets, the same numbers as the summary's best epoch.
    let o = kestrel(&["eval", "--run", run_s, "--json"]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["accuracy", "macro_f1", "miou", "pixel_accuracy"] {
        let d = (e[key].as_f64().unwrap() - summary["val"][key].as_f64().unwrap()).abs();
        assert!(d < 1e-9, "{key}: {e} vs {summary}");
    }
    assert_eq!(e["iou_per_class"].as_array().unwrap().len(), 4);
    assert_eq!(e["per_class"].as_array().unwrap().len(), 3);

    // predict does not pretend a multitask run is a classifier.
    let img = dir.path().join("x.png");
    image::RgbImage::from_pixel(32, 32, image::Rgb([20, 20, 20]))
        .save(&img)
        .unwrap();
    let o = kestrel(&["predict", "--run", run_s, img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("multitask"), "{}", stderr(&o));
}

#[test]
fn bad_multitask_settings_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("bad");
    let o = train(run.to_str().unwrap(), &["--weighting", "softmax"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("weighting"), "{}", stderr(&o));
    let o = train(run.to_str().unwrap(), &["--task-weights", "1,-2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("task_weights"), "{}", stderr(&o));
    // Refused before anything is written.
    assert!(!run.exists());
}
