//! End-to-end tests of `kestrel train --activation`: a ReLU MobileNetV2 run carries ReLU into its
//! config, checkpoint and exported plan (and quantises); runs, configurations and checkpoints
//! written before the setting existed still work, as ReLU6; other models and tasks refuse it.

use kestrel_runtime::{Activation, Op, Plan};
use std::path::{Path, PathBuf};

mod common;
use common::{assert_exit_2_naming, assert_ok, json_of, kestrel, read_text, train_tiny};

/// 48 `shapes` images of 32 px in 2 classes: the data of the legacy fixtures.
const DATA: &str = "shapes:n=48,size=32,classes=2";

/// A file of kestrel-train's fixtures.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kestrel-train/tests/fixtures")
        .join(name)
}

/// The activations of the convolutions of the plan `kestrel export --run RUN --format plan`
/// writes.
fn exported_activations(run: &Path) -> Vec<Activation> {
    let plan_path = run.join("model.plan");
    let args = ["export", "--run", run.to_str().unwrap(), "--format", "plan"];
    let o = kestrel(&[&args[..], &["--out", plan_path.to_str().unwrap(), "--json"]].concat());
    assert_eq!(json_of(&o, "export")["model"], "mobilenet-v2");
    let plan = Plan::load(&plan_path).unwrap();
    plan.graph
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Conv(c) => Some(c.act),
            _ => None,
        })
        .collect()
}

#[test]
fn relu_is_refused_for_other_models_and_tasks_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    for (extra, model) in [
        (&["--model", "resnet18"][..], "resnet18"),
        (&["--model", "mobilenet-v1"][..], "mobilenet-v1"),
        (&["--task", "segment"][..], "fcn8s-mobilenet-v2"),
    ] {
        let o = train_tiny(DATA, &out, &[&["--activation", "relu"], extra].concat());
        assert_exit_2_naming(&o, &["--activation", model]);
        assert!(!out.exists(), "{model}: a refused run wrote its folder");
    }
    let o = train_tiny(DATA, &out, &["--activation", "gelu"]);
    assert_exit_2_naming(&o, &["--activation", "gelu", "relu6"]);
    // The default is accepted for any model.
    let o = train_tiny(
        DATA,
        &out,
        &[
            "--activation",
            "relu6",
            "--model",
            "resnet18",
            "--epochs",
            "1",
        ],
    );
    assert_ok(&o, "resnet18 with relu6");
}

#[test]
fn a_relu_run_carries_relu_into_its_config_checkpoint_and_plan() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("relu");
    let o = train_tiny(DATA, &run, &["--activation", "relu", "--epochs", "1"]);
    assert_ok(&o, "train --activation relu");
    assert!(read_text(&run.join("config.toml")).contains("activation = \"relu\""));
    let acts = exported_activations(&run);
    assert!(acts.contains(&Activation::Relu), "{acts:?}");
    assert!(!acts.contains(&Activation::Relu6), "{acts:?}");
    // The int8 engine takes it (ReLU clamps instead of ReLU6).
    let run_arg = run.to_str().unwrap();
    let o = kestrel(&["quantize", "--run", run_arg, "--calib-n", "16", "--json"]);
    json_of(&o, "quantize");
    assert!(run.join("int8.plan").is_file());
}

/// The configuration and the `best` checkpoint of a run written by kestrel before `activation`
/// existed (commit e19405b; see kestrel-train's `checkpoints_written_before_activation_load_as_relu6`).
#[test]
fn configs_checkpoints_and_runs_from_before_the_setting_work_as_relu6() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture("legacy-mobilenet-v2.config.toml");
    assert!(!read_text(&config).contains("activation"));
    // An old configuration trains (as ReLU6) and its run resumes.
    let run = dir.path().join("from-old-config");
    let o = kestrel(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_ok(&o, "train --config (old)");
    let written = run.join("config.toml");
    assert!(read_text(&written).contains("activation = \"relu6\""));
    assert!(!exported_activations(&run).contains(&Activation::Relu));
    // A run folder whose config.toml predates the key continues.
    let stripped: String = read_text(&written)
        .lines()
        .filter(|l| !l.starts_with("activation"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&written, stripped).unwrap();
    let run_arg = run.to_str().unwrap();
    let o = kestrel(&["train", "--resume", "--out", run_arg, "--epochs", "2"]);
    assert_ok(&o, "train --resume (old config.toml)");

    // An old checkpoint exports as the ReLU6 network it is.
    let old = dir.path().join("old-run");
    std::fs::create_dir_all(old.join("checkpoints")).unwrap();
    std::fs::copy(
        fixture("legacy-mobilenet-v2.ckpt"),
        old.join("checkpoints/best.ckpt"),
    )
    .unwrap();
    let acts = exported_activations(&old);
    assert!(acts.contains(&Activation::Relu6), "{acts:?}");
    assert!(!acts.contains(&Activation::Relu), "{acts:?}");
}
