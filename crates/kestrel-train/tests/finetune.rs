//! Fine-tuning end to end: a run seeded from another run's checkpoint (`--weights`) with frozen
//! modules (`--freeze`, `--freeze-bn`, `--unfreeze-at`) keeps what is frozen bit for bit, starts
//! updating it at the unfreeze epoch, and resumes across that point exactly.
//!
//! Its own test binary, alone in its process: runs share the process's device RNG (initialisation,
//! dropout), which tests running beside it in the library's test binary would draw from.

use burn::tensor::Device;
use kestrel_nn::import::{model_state_dict, StateDict};
use kestrel_train::run_dir::{best_checkpoint, last_checkpoint};
use kestrel_train::{train_run, Checkpoint, Progress, RunOptions, TrainConfig};
use std::path::Path;

fn tiny(epochs: usize) -> TrainConfig {
    TrainConfig {
        data: "shapes:n=48,size=32,classes=3,seed=2".into(),
        resolution: 32,
        width: 0.25,
        batch_size: 8,
        epochs,
        ..TrainConfig::default()
    }
}

fn run(cfg: &TrainConfig, out: &Path, stop_after: Option<usize>, resume: bool) {
    let opts = RunOptions {
        progress: Progress::Quiet,
        resume,
        stop_after,
    };
    train_run(cfg, out, &opts).unwrap();
}

fn tensors(ckpt: &Path) -> StateDict {
    model_state_dict(
        &Checkpoint::load(ckpt)
            .unwrap()
            .load_model(&Device::flex())
            .unwrap(),
    )
}

/// Whether the tensor `key` holds the same bits in `a` and `b`.
fn same(a: &StateDict, b: &StateDict, key: &str) -> bool {
    a.get(key).unwrap().values == b.get(key).unwrap().values
}

fn is_batch_norm(key: &str) -> bool {
    key.contains(".bn.")
}

#[test]
fn frozen_tensors_keep_their_bits_until_the_unfreeze_epoch_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    run(&tiny(1), &source, None, false);
    let weights = best_checkpoint(&source);
    let seeded = tensors(&weights);

    let cfg = TrainConfig {
        weights: Some(weights),
        freeze: vec!["stem".into(), "blocks.0".into()],
        freeze_bn: true,
        unfreeze_at: Some(2),
        // A new initialisation seed: only the file's weights make the tensors equal.
        seed: 7,
        ..tiny(2)
    };
    let (straight, stopped) = (dir.path().join("straight"), dir.path().join("stopped"));
    run(&cfg, &stopped, Some(1), false);
    let after_one = tensors(&last_checkpoint(&stopped));
    let keys: Vec<&str> = seeded.keys().collect();
    for &k in &keys {
        let frozen = k.starts_with("stem.") || k.starts_with("blocks.0.") || is_batch_norm(k);
        assert_eq!(same(&seeded, &after_one, k), frozen, "epoch 1: {k}");
    }

    run(&cfg, &stopped, None, true);
    run(&cfg, &straight, None, false);
    let resumed = tensors(&last_checkpoint(&stopped));
    let after_two = tensors(&last_checkpoint(&straight));
    for &k in &keys {
        assert!(same(&resumed, &after_two, k), "resume: {k}");
        // Epoch 2 trains the stem and block 0; BatchNorm stays frozen all along.
        assert_eq!(
            same(&seeded, &after_two, k),
            is_batch_norm(k),
            "epoch 2: {k}"
        );
    }
}
