//! End to end: `kestrel report --run DIR` on tiny classification and segmentation runs.

use std::path::Path;

mod common;
use common::{assert_exit_2_naming, json_of, kestrel, run_json, train_tiny, SMALL_SHAPES};

/// Trains a tiny run of `task` into `run`.
fn train(run: &Path, task: &str, data: &str, epochs: &str) {
    let o = train_tiny(data, run, &["--task", task, "--epochs", epochs, "--json"]);
    json_of(&o, "train");
}

/// Runs `kestrel report --run DIR --json`; checks the files it lists are PNGs and that the HTML
/// has no external reference and one inline PNG per plot file. Returns the plot file names.
fn report(run: &Path) -> Vec<String> {
    let v = run_json(&["report", "--run", run.to_str().unwrap(), "--json"]);
    let html = std::fs::read_to_string(v["report"].as_str().unwrap()).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("src=\"http") && !html.contains("<script"));
    let plots: Vec<String> = v["plots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    for p in &plots {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{p}");
    }
    assert_eq!(
        html.matches("<img src=\"data:image/png;base64,iVBORw0KGgo")
            .count(),
        plots.len()
    );
    plots
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn report_rewrites_the_report_of_a_classification_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("cls");
    train(
        &run,
        "classify",
        "shapes:n=96,size=32,classes=3,seed=1",
        "2",
    );
    let names = report(&run);
    for want in [
        "loss.png",
        "val_metrics.png",
        "lr.png",
        "confusion.png",
        "roc.png",
        "pr.png",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(run.join("report.html").is_file());
}

#[test]
fn report_of_a_segmentation_run_has_iou_bars() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("seg");
    train(&run, "segment", SMALL_SHAPES, "1");
    let names = report(&run);
    for want in ["loss.png", "confusion.png", "iou.png"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "roc.png"));
}

#[test]
fn report_of_a_missing_folder_exits_2_naming_it() {
    let o = kestrel(&["report", "--run", "/no/such/run-folder"]);
    assert_exit_2_naming(&o, &["/no/such/run-folder"]);
    let dir = tempfile::tempdir().unwrap();
    let o = kestrel(&["report", "--run", dir.path().to_str().unwrap()]);
    assert_exit_2_naming(&o, &["metrics.jsonl"]);
}
