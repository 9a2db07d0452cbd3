//! End-to-end `kestrel train --task multitask` and `kestrel eval` on a tiny run.

use serde_json::Value;
use std::path::Path;
use std::process::Output;

mod common;
use common::{
    assert_exit_2_naming, json_of, kestrel, read_text, run_json, solid_png, train_tiny,
    SMALL_SHAPES,
};

/// One epoch of a tiny multi-task run into `run`, with `--json` and `extra` flags.
fn train(run: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--task", "multitask", "--epochs", "1", "--json"];
    args.extend_from_slice(extra);
    train_tiny(SMALL_SHAPES, run, &args)
}

#[test]
fn multitask_train_and_eval_give_both_metric_sets() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("mt");
    let run_s = run.to_str().unwrap();
    let o = train(&run, &["--weighting", "gradnorm", "--cascade"]);
    let summary = json_of(&o, "train");
    assert_eq!(summary["task"], "multitask");
    assert_eq!(summary["model"], "fcn8s-mobilenet-v2");
    for key in ["accuracy", "macro_f1", "miou", "pixel_accuracy"] {
        let v = summary["val"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let metrics = read_text(&run.join("metrics.jsonl"));
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
    let config = read_text(&run.join("config.toml"));
    assert!(config.contains("task = \"multitask\""), "{config}");
    assert!(config.contains("weighting = \"gradnorm\""), "{config}");
    assert!(config.contains("cascade = true"), "{config}");

    // eval: both metric sets, the same numbers as the summary's best epoch.
    let e = run_json(&["eval", "--run", run_s, "--json"]);
    for key in ["accuracy", "macro_f1", "miou", "pixel_accuracy"] {
        let d = (e[key].as_f64().unwrap() - summary["val"][key].as_f64().unwrap()).abs();
        assert!(d < 1e-9, "{key}: {e} vs {summary}");
    }
    assert_eq!(e["iou_per_class"].as_array().unwrap().len(), 4);
    assert_eq!(e["per_class"].as_array().unwrap().len(), 3);

    // predict does not pretend a multitask run is a classifier.
    let img = dir.path().join("x.png");
    solid_png(&img, 32, 32, [20, 20, 20]);
    let o = kestrel(&["predict", "--run", run_s, img.to_str().unwrap()]);
    assert_exit_2_naming(&o, &["multitask"]);
}

#[test]
fn bad_multitask_settings_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("bad");
    let o = train(&run, &["--weighting", "softmax"]);
    assert_exit_2_naming(&o, &["weighting"]);
    let o = train(&run, &["--task-weights", "1,-2"]);
    assert_exit_2_naming(&o, &["task_weights"]);
    // Refused before anything is written.
    assert!(!run.exists());
}
