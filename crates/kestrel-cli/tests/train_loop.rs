//! End-to-end tests of the training loop's controls: `--resume` repeating a straight run bit for
//! bit, the gradient-health stop on an absurd learning rate, and `--val-metric` checking.

use serde_json::Value;
use std::path::Path;
use std::process::Output;

mod common;
use common::{
    assert_exit_2_naming, assert_ok, json_of, kestrel, read_jsonl, read_text, stderr, train_tiny,
    SMALL_SHAPES,
};

const DATA: &str = "shapes:n=64,size=32,classes=3,seed=4";

/// A tiny classification run into `out` with `extra` flags.
fn train(out: &Path, extra: &[&str]) -> Output {
    train_tiny(DATA, out, extra)
}

/// metrics.jsonl without the `seconds` of each line.
fn metrics(run: &Path) -> Vec<Value> {
    let mut lines = read_jsonl(&run.join("metrics.jsonl"));
    for v in &mut lines {
        v.as_object_mut().unwrap().remove("seconds");
    }
    lines
}

/// Trains `out` for `epochs` epochs with `--stop-after stop`, the task and its flags in `task`;
/// the run must succeed.
fn train_stopping(out: &Path, task: &[&str], epochs: &str, stop: &str) {
    let mut args = task.to_vec();
    args.extend(["--epochs", epochs, "--stop-after", stop]);
    assert_ok(&train_tiny(SMALL_SHAPES, out, &args), "train");
}

/// `kestrel train --resume --out DIR`; it must succeed.
fn resume(out: &Path) {
    let o = kestrel(&["train", "--resume", "--out", out.to_str().unwrap()]);
    assert_ok(&o, "train --resume");
}

/// `--epochs 2` straight, and `--epochs 2 --stop-after 1` then `--resume`, give identical
/// metrics lines (losses, val metrics, learning rates) but for `seconds`.
#[test]
fn a_resumed_run_repeats_the_straight_run() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("straight"), dir.path().join("resumed"));
    let straight = json_of(&train(&a, &["--epochs", "2", "--json"]), "train");
    // Every finished run has its report and plots.
    let html = read_text(&a.join("report.html"));
    assert!(
        html.contains("data:image/png;base64,"),
        "{}",
        &html[..200.min(html.len())]
    );
    for plot in ["loss.png", "val_metrics.png", "confusion.png", "roc.png"] {
        assert!(a.join("plots").join(plot).is_file(), "{plot}");
    }
    assert_ok(&train(&b, &["--epochs", "2", "--stop-after", "1"]), "train");
    assert_eq!(metrics(&b).len(), 1);

    // Resuming: the run's settings come from its config.toml; a changed one is refused (exit 2)
    // before anything is touched, naming the field.
    let b_s = b.to_str().unwrap();
    let o = kestrel(&[
        "train", "--resume", "--out", b_s, "--epochs", "2", "--lr", "0.1",
    ]);
    assert_exit_2_naming(&o, &["`lr`"]);
    let o = kestrel(&["train", "--resume", "--epochs", "2"]);
    assert_exit_2_naming(&o, &["--out"]);

    let o = kestrel(&["train", "--resume", "--out", b_s, "--json"]);
    let resumed = json_of(&o, "train --resume");
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(ma.len(), 2);
    assert_eq!(ma, mb);
    for key in ["best_epoch", "epochs_run", "val"] {
        assert_eq!(straight[key], resumed[key], "{key}");
    }
    // Gradient norms: step 0 sampled (default every 50 steps), one entry per parameter.
    let grads = read_text(&a.join("grad_norms.jsonl"));
    let first: Value = serde_json::from_str(grads.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["epoch"].as_u64(), first["step"].as_u64()),
        (Some(1), Some(0))
    );
    let layers = first["layers"].as_array().unwrap();
    assert!(layers.len() > 50, "{}", layers.len());
    for l in layers {
        assert!(
            l["name"].is_string() && l["norm"].as_f64().unwrap().is_finite(),
            "{l}"
        );
    }
    assert_eq!(grads, read_text(&b.join("grad_norms.jsonl")));
}

/// The same for segmentation (its own per-epoch shuffle and flip draws).
#[test]
fn a_resumed_segmentation_run_repeats_the_straight_run() {
    let dir = tempfile::tempdir().unwrap();
    let task = ["--task", "segment", "--model", "fcn8s-mobilenet-v2"];
    let (a, b) = (dir.path().join("straight"), dir.path().join("resumed"));
    for (out, stop) in [(&a, "2"), (&b, "1")] {
        train_stopping(out, &task, "2", stop);
    }
    resume(&b);
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(ma.len(), 2);
    assert_eq!(ma, mb);
}

/// `--lr 1e6` with every step sampled: the run stops with exit 1 naming a parameter and what is
/// wrong with its gradient; any checkpoint written before still loads.
#[test]
fn an_absurd_learning_rate_stops_on_a_named_layer() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = train(
        &run,
        &["--epochs", "2", "--lr", "1e6", "--grad-log-every", "1"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // A sampled gradient norm (or, if the weights overflow first, the loss) gives the alarm,
    // naming the parameter.
    let named = err.contains("exploding gradient at ")
        || err.contains("exploding gradient step at ")
        || err.contains("non-finite gradient at ")
        || (err.contains("non-finite training loss") && err.contains("parameter"));
    assert!(named, "{err}");
    assert!(err.contains("epoch ") && err.contains("step "), "{err}");
    if run.join("checkpoints/best.ckpt").exists() {
        let o = kestrel(&["eval", "--run", run.to_str().unwrap(), "--json"]);
        assert_ok(&o, "eval");
    }
}

#[test]
fn a_val_metric_of_another_task_is_refused_naming_the_allowed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(&dir.path().join("run"), &["--val-metric", "miou"]);
    assert_exit_2_naming(&o, &["accuracy, macro_f1", "miou"]);
}

/// The optimiser settings reach the loop: a parameter group's learning rate is logged beside the
/// default one at its scale, and an L1 run reports its share of near-zero weights.
#[test]
fn parameter_groups_and_l1_reach_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("groups.toml");
    std::fs::write(
        &config,
        "[optim]\nkind = \"nesterov\"\n[optim.groups.head]\nmatch = \"classifier.\"\nlr_scale = 10.0\nweight_decay = 0.0\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = train(
        &run,
        &[
            "--config",
            config.to_str().unwrap(),
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--l1",
            "1e-5",
        ],
    );
    assert_ok(&o, "train");
    let line = &metrics(&run)[0];
    let (head, default) = (
        line["lr"]["head"].as_f64().unwrap(),
        line["lr"]["default"].as_f64().unwrap(),
    );
    assert!(
        default > 0.0 && (head / default - 10.0).abs() < 1e-9,
        "{line}"
    );
    let share = line["near_zero_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{line}");
    let saved = read_text(&run.join("config.toml"));
    assert!(
        saved.contains("nesterov") && saved.contains("lr_scale"),
        "{saved}"
    );
    // A group that matches no parameter is bad input, before any run folder exists.
    std::fs::write(
        &config,
        "[optim.groups.typo]\nmatch = \"clasifier.\"\nlr_scale = 10.0\n",
    )
    .unwrap();
    let other = dir.path().join("other");
    let o = train(
        &other,
        &["--config", config.to_str().unwrap(), "--epochs", "1"],
    );
    assert_exit_2_naming(&o, &["typo"]);
    assert!(!other.exists());
}

/// A multi-task run with learned loss weights resumes bit for bit too: the weighting's state
/// (uncertainty's s and its Adam moments) travels in the checkpoint.
#[test]
fn a_resumed_multitask_run_repeats_the_straight_run() {
    let dir = tempfile::tempdir().unwrap();
    let task = ["--task", "multitask", "--weighting", "uncertainty"];
    let (a, b) = (dir.path().join("straight"), dir.path().join("resumed"));
    for (out, stop) in [(&a, "3"), (&b, "1")] {
        train_stopping(out, &task, "3", stop);
    }
    resume(&b);
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(ma.len(), 3);
    assert_eq!(ma, mb);
    // The learned weights moved, and the run has its gradient log and report.
    assert_ne!(ma[0]["task_weights"], ma[2]["task_weights"]);
    assert!(b.join("grad_norms.jsonl").is_file() && b.join("report.html").is_file());
}
