//! `kestrel train --weights`, `--freeze`, `--freeze-bn`, `--unfreeze-at` end to end: an FCN on a
//! torchvision backbone (a MobileNetV2 state dict written by PyTorch, tools/torch_fixtures.py), a
//! classifier seeded from another kestrel run with another class count, and the errors.

use serde_json::Value;
use std::path::Path;

mod common;
use common::{assert_exit_2_naming, json_of, kestrel, train_tiny, SMALL_SHAPES};

/// torchvision's `mobilenet_v2(width_mult=0.1, num_classes=10)` with trained-looking weights.
fn torchvision_weights() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kestrel-nn/tests/fixtures/import/mnv2_w010.pth");
    p.to_str().unwrap().to_string()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn an_fcn_trains_on_a_torchvision_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fcn");
    let weights = torchvision_weights();
    let o = kestrel(&[
        "train",
        "--task",
        "segment",
        "--data",
        "shapes:n=24,size=32,classes=3,seed=2",
        "--resolution",
        "32",
        "--width",
        "0.1",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--weights",
        &weights,
        "--freeze",
        "backbone",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let summary = json_of(&o, "train --task segment --weights");
    let w = &summary["weights"];
    // Every tensor of the backbone's 52 convolution + BatchNorm groups; the file's classifier
    // has no place in an FCN.
    assert_eq!(w["loaded"], 260, "{w}");
    let reinit = strings(&w["reinitialised"]);
    assert!(reinit.contains(&"score32.weight"), "{reinit:?}");
    assert!(
        reinit.iter().all(|n| !n.starts_with("backbone.")),
        "{reinit:?}"
    );
    assert_eq!(
        strings(&w["unused"]),
        ["classifier.1.weight", "classifier.1.bias"]
    );
    assert!(w["file"].as_str().unwrap().ends_with("mnv2_w010.pth"));
    // Only the score layers and upsamplers train.
    let params = &summary["params"];
    assert!(params["frozen"].as_u64().unwrap() > 10 * params["trainable"].as_u64().unwrap());
    assert!(summary["val"]["miou"].as_f64().unwrap().is_finite());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("weights: 260 tensors loaded from") && stderr.contains(" frozen"),
        "{stderr}"
    );
}

#[test]
fn a_kestrel_run_seeds_a_classifier_with_another_class_count() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    json_of(
        &train_tiny(SMALL_SHAPES, &source, &["--epochs", "1", "--json"]),
        "train",
    );
    let ckpt = source.join("checkpoints/best.ckpt");
    let out = dir.path().join("four");
    let o = train_tiny(
        "shapes:n=48,size=32,classes=4,seed=3",
        &out,
        &[
            "--epochs",
            "1",
            "--weights",
            ckpt.to_str().unwrap(),
            "--freeze-bn",
            "--json",
        ],
    );
    let summary = json_of(&o, "train --weights CKPT");
    let w = &summary["weights"];
    assert_eq!(
        strings(&w["reinitialised"]),
        ["classifier.weight", "classifier.bias"]
    );
    assert_eq!(
        strings(&w["unused"]),
        ["classifier.weight", "classifier.bias"]
    );
    // The run's config records the weights and the freeze, for --resume and for readers.
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("weights = ") && config.contains("freeze_bn = true"),
        "{config}"
    );
}

#[test]
fn weights_and_freezes_that_do_not_fit_are_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let weights = torchvision_weights();
    // The TINY model is a MobileNetV2 of width 0.25; the file holds width 0.1.
    let o = train_tiny(SMALL_SHAPES, &out, &["--weights", &weights]);
    assert_exit_2_naming(
        &o,
        &[
            "mnv2_w010.pth",
            "do not fit mobilenet-v2",
            "shape mismatches",
        ],
    );
    assert!(!out.exists(), "nothing written");
    let o = train_tiny(
        SMALL_SHAPES,
        &out,
        &["--model", "resnet18", "--weights", &weights],
    );
    assert_exit_2_naming(&o, &["looks like a mobilenet-v2 state dict"]);
    let not_weights = dir.path().join("notes.txt");
    std::fs::write(&not_weights, "not a tensor in sight").unwrap();
    let o = train_tiny(
        SMALL_SHAPES,
        &out,
        &["--weights", not_weights.to_str().unwrap()],
    );
    assert_exit_2_naming(&o, &["notes.txt", "not a weights file"]);
    let o = train_tiny(SMALL_SHAPES, &out, &["--weights", "/nonexistent/w.pth"]);
    assert_exit_2_naming(&o, &["/nonexistent/w.pth"]);

    let o = train_tiny(SMALL_SHAPES, &out, &["--freeze", "backbone"]);
    assert_exit_2_naming(
        &o,
        &["`freeze`", "backbone", "stem, blocks, head, classifier"],
    );
    let o = train_tiny(SMALL_SHAPES, &out, &["--unfreeze-at", "2", "--epochs", "3"]);
    assert_exit_2_naming(&o, &["`unfreeze-at`", "--freeze"]);
    let o = train_tiny(
        SMALL_SHAPES,
        &out,
        &["--freeze", "stem", "--unfreeze-at", "4", "--epochs", "3"],
    );
    assert_exit_2_naming(&o, &["`unfreeze-at`", "2 to --epochs (3)"]);
    assert!(!out.exists(), "nothing written");
}
