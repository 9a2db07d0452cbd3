//! The tasks kestrel trains, one folder each: [`classify`], [`segment`] and [`multitask`], each
//! with its training task (a [`crate::driver::TaskLoop`]), its evaluation, prediction and data
//! pieces; [`eval`] dispatches `kestrel eval` on the checkpoint's model.

pub(crate) mod classify;
pub(crate) mod eval;
pub(crate) mod multitask;
pub(crate) mod predict;
pub(crate) mod segment;

use crate::config::{Task, TrainConfig};
use crate::driver::{self, Progress, RunOptions, Summary};
use crate::error::{Result, TrainError};
use burn::tensor::Tensor;
use kestrel_data::loader::LoaderOptions;
use std::path::Path;

/// Trains as `cfg` says (the task is `cfg.task`), writing the run folder `out`. Returns the
/// summary.
pub fn train(cfg: &TrainConfig, out: &Path, progress: Progress) -> Result<Summary> {
    train_run(
        cfg,
        out,
        &RunOptions {
            progress,
            resume: false,
            stop_after: None,
        },
    )
}

/// [`train`] with every option: `opts.resume` continues the run in `out` from its `last`
/// checkpoint (see `driver::resume`).
pub fn train_run(cfg: &TrainConfig, out: &Path, opts: &RunOptions) -> Result<Summary> {
    let (data, _) = cfg.validate()?;
    let cfg = &TrainConfig {
        augment: cfg.augment.for_data(&data),
        ..cfg.clone()
    };
    if opts.resume {
        // Before minutes of data loading.
        driver::resume::check_config(cfg, out)?;
    }
    match cfg.task {
        Task::Classify => driver::run(
            classify::ClassifyTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
        ),
        Task::Segment => driver::run(
            segment::SegmentTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
        ),
        Task::Multitask => driver::run(
            multitask::MultiTaskTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
        ),
    }
}

/// Threads of a training loader: up to 4, fewer on smaller machines.
pub(crate) fn loader_options() -> LoaderOptions {
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 4);
    LoaderOptions {
        workers,
        prefetch: 2 * workers,
    }
}

/// The class of highest score along dimension 1 of `logits` (classes of `(N, C)` rows, or of every
/// pixel of `(N, C, H, W)` maps), read back to the host in row-major order.
pub(crate) fn predicted_classes<const D: usize>(logits: Tensor<D>) -> Result<Vec<usize>> {
    logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map(|v| v.into_iter().map(|p| p as usize).collect())
        .map_err(|e| TrainError::Runtime(format!("reading predictions: {e:?}")))
}
