//! The run folder: `config.toml`, `metrics.jsonl`, `steps.jsonl`, `grad_norms.jsonl`, `checkpoints/{last,best}.ckpt`,
//! `summary.json`.

use super::weights::WeightsRecord;
use crate::error::{Result, TrainError};
use crate::report::plots::PLOTS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File names inside a run folder.
pub const CONFIG: &str = "config.toml";
/// One JSON line per epoch.
pub const METRICS: &str = "metrics.jsonl";
/// The run's outcome.
pub const SUMMARY: &str = "summary.json";
/// Checkpoint folder.
pub const CHECKPOINTS: &str = "checkpoints";
/// The training loss and learning rates of every optimiser step, one JSON line each:
/// `{"epoch": e, "step": s, "loss": x, "lr": {"<group>": lr, ...}}` (epoch 1-based, step the
/// 0-based optimiser step, loss the step's batch loss before any penalty), as TensorBoard's
/// scalars record them. Written with `metrics.jsonl` at the end of every epoch.
pub const STEPS: &str = "steps.jsonl";
/// The sampled per-parameter gradient norms, one JSON line per sample:
/// `{"epoch": e, "step": s, "layers": [{"name": "<param path>", "norm": x}, ...]}` (epoch 1-based,
/// step the 0-based optimiser step; a non-finite norm is written as `null`).
pub const GRAD_NORMS: &str = "grad_norms.jsonl";

/// Path of the `last` checkpoint of `run`.
pub fn last_checkpoint(run: &Path) -> PathBuf {
    run.join(CHECKPOINTS).join("last.ckpt")
}

/// Path of the `best` checkpoint of `run`.
pub fn best_checkpoint(run: &Path) -> PathBuf {
    run.join(CHECKPOINTS).join("best.ckpt")
}

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `classify`, `segment` or `multitask`.
    pub task: String,
    /// Model name.
    pub model: String,
    /// Epoch (1-based) of the best checkpoint.
    pub best_epoch: usize,
    /// Epochs trained.
    pub epochs_run: usize,
    /// Validation metrics of the best checkpoint.
    pub val: BTreeMap<String, f64>,
    /// Whether `kestrel eval --split test` has read the test split.
    pub test_evaluated: bool,
    /// Wall-clock seconds of training.
    pub train_seconds: f64,
    /// Parameters that train and that are frozen (`--freeze`, `--freeze-bn`) in the first epoch.
    #[serde(default)]
    pub params: ParamCounts,
    /// What `--weights` loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsRecord>,
    /// The processes of a data-parallel run (absent for one process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaRecord>,
}

/// How a data-parallel run was spread (`replicas` in `summary.json`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    /// Processes (MPI ranks).
    pub count: usize,
    /// Whether BatchNorm used the statistics of the whole batch (`--sync-bn`).
    pub sync_bn: bool,
    /// Seconds replica 0 spent in collectives in the last session (MPI's clock).
    pub communication_seconds: f64,
}

/// Parameter counts as `kestrel info` gives them (BatchNorm statistics not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Parameters the optimiser updates.
    pub trainable: usize,
    /// Parameters frozen.
    pub frozen: usize,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss per task.
    pub train_loss: BTreeMap<String, f64>,
    /// Training accuracy over the epoch (model in training mode).
    pub train_accuracy: f64,
    /// Validation metrics.
    pub val: BTreeMap<String, f64>,
    /// Learning rate per parameter group at the end of the epoch.
    pub lr: BTreeMap<String, f64>,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
    /// With an L1 penalty: the share of penalised weights with |w| < 1e-3 at the epoch's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near_zero_share: Option<f64>,
    /// Multi-task runs: the weight of each task's loss during the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_weights: Option<BTreeMap<String, f64>>,
}

/// One line of `metrics.jsonl` of a multi-task run: an [`EpochRecord`] and each task's loss
/// weight at the end of the epoch.
/// Creates the run folder and its checkpoint folder; the message names the folder on failure.
pub fn create(run: &Path) -> Result<()> {
    std::fs::create_dir_all(run.join(CHECKPOINTS)).map_err(|e| {
        TrainError::BadInput(format!(
            "cannot create run folder {}: {e}; expected a writable path for --out",
            run.display()
        ))
    })?;
    // Prove the folder writable before spending minutes on training: a folder that is not is
    // the user's to fix (bad input), unlike a write that fails later on (a full disk).
    kestrel_fsio::write_atomic(&run.join(".write-test"), b"").map_err(|e| {
        TrainError::BadInput(format!(
            "cannot write into run folder {}: {}; expected a writable path for --out",
            run.display(),
            e.source
        ))
    })?;
    let _ = std::fs::remove_file(run.join(".write-test"));
    Ok(())
}

/// The first `runs/<model>-<task>-<n>` that does not exist yet.
pub fn default_run_dir(root: &Path, model: &str, task: &str) -> PathBuf {
    (1..)
        .map(|n| root.join(format!("{model}-{task}-{n}")))
        .find(|p| !p.exists())
        .expect("an unused run folder name")
}

/// Writes a file of the run atomically. A failure (a full disk, a file-size limit, a folder made
/// read-only during the run) is a runtime error naming the file: the file as it was is intact.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    kestrel_fsio::write_atomic(path, bytes).map_err(|e| {
        TrainError::Runtime(format!(
            "cannot write {}: {}; the previous version of the file is intact",
            e.path.display(),
            e.source
        ))
    })
}

/// Removes the temporary files that a process killed while writing left in the run folder, its
/// checkpoints and its plots (see [`kestrel_fsio::remove_stale_temporaries`]: those of running
/// writers stay); returns how many.
pub fn remove_stale_temporaries(run: &Path) -> Result<usize> {
    let mut removed = 0;
    for dir in [run.to_path_buf(), run.join(CHECKPOINTS), run.join(PLOTS)] {
        removed += kestrel_fsio::remove_stale_temporaries(&dir).map_err(|e| {
            TrainError::Runtime(format!(
                "cannot clear unfinished temporary files in {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(removed)
}

/// Whether the run in `run` is complete after `epochs` epochs: its `summary.json` says so (a run
/// killed after its last checkpoint and before its summary is not; one killed while writing its
/// report is, and `kestrel report` writes the report again).
pub fn is_complete(run: &Path, epochs: usize) -> bool {
    read_summary(run).is_ok_and(|s| s.epochs_run == epochs)
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("serialisable");
    text.push('\n');
    write(path, text.as_bytes())
}

/// Reads `summary.json` of a run.
pub fn read_summary(run: &Path) -> Result<Summary> {
    let path = run.join(SUMMARY);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        TrainError::BadInput(format!(
            "{}: {e}; expected a finished run folder from `kestrel train`",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::BadInput(format!("{}: bad summary ({e})", path.display())))
}
