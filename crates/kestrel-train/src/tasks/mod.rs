//! The tasks kestrel trains, one folder each: [`classify`], [`segment`] and [`multitask`], each
//! with its training task (a [`crate::driver::TaskLoop`]), its evaluation, prediction and data
//! pieces; [`eval`] dispatches `kestrel eval` on the checkpoint's model; [`shard`] and [`merge`]
//! spread `kestrel eval` and `kestrel predict` over shards and put the parts back together.

pub(crate) mod classify;
pub(crate) mod eval;
pub(crate) mod merge;
pub(crate) mod multitask;
pub(crate) mod predict;
pub(crate) mod segment;
pub(crate) mod shard;

use crate::config::{Task, TrainConfig};
use crate::distributed::Replicas;
use crate::driver::{self, Progress, RunOptions, Summary};
use crate::error::{Result, TrainError};
use burn::tensor::Tensor;
use kestrel_data::loader::LoaderOptions;
use kestrel_data::Shard;
use kestrel_metrics::ConfusionMatrix;
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
    train_replicated(cfg, out, opts, &Replicas::solo())
}

/// [`train_run`] as one process of a data-parallel run over `replicas` (every process calls it
/// with the same configuration and output folder; replica 0 writes the folder).
pub fn train_replicated(
    cfg: &TrainConfig,
    out: &Path,
    opts: &RunOptions,
    replicas: &Replicas,
) -> Result<Summary> {
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
        Task::Classify => driver::run_replicated(
            classify::ClassifyTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
            replicas,
        ),
        Task::Segment => driver::run_replicated(
            segment::SegmentTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
            replicas,
        ),
        Task::Multitask => driver::run_replicated(
            multitask::MultiTaskTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
            replicas,
        ),
    }
}

/// The rows of part `shard` of a list of `len` items scored `batch` at a time: whole batches,
/// so that every forward pass is the one the unsplit list would run.
pub(crate) fn shard_rows(len: usize, batch: usize, shard: Shard) -> Vec<usize> {
    shard_range(len, batch, shard).collect()
}

/// The positions of [`shard_rows`]: the `⌈len / batch⌉` batches shared out by
/// [`Shard::range`] (the first parts one batch longer), so every non-empty part starts at a
/// multiple of `batch`; a part past the last batch is `len..len`. A `batch` of 0 counts as 1.
pub(crate) fn shard_range(len: usize, batch: usize, shard: Shard) -> std::ops::Range<usize> {
    let batch = batch.max(1);
    let batches = shard.range(len.div_ceil(batch));
    let at = |b: usize| b.saturating_mul(batch).min(len);
    at(batches.start)..at(batches.end)
}

/// `shard` as a replica's part of every batch of `batch_size` images: bad input unless every
/// replica gets at least one image.
pub(crate) fn batch_shard(batch_size: usize, shard: Shard) -> Result<Shard> {
    if batch_size < shard.count {
        return Err(TrainError::BadInput(format!(
            "--batch-size {batch_size} is split over {} processes; expected at least one image each",
            shard.count
        )));
    }
    Ok(shard)
}

/// The confusion matrix of `n_classes` classes from its row-major counts (true class by row), as
/// the parts of a split validation sum them.
pub(crate) fn confusion_from_counts(counts: &[f64], n_classes: usize) -> Result<ConfusionMatrix> {
    let mut cm = ConfusionMatrix::new(n_classes)?;
    if counts.len() != n_classes * n_classes {
        return Err(TrainError::Runtime(format!(
            "{} confusion counts for {n_classes} classes",
            counts.len()
        )));
    }
    for (i, &c) in counts.iter().enumerate().filter(|(_, &c)| c > 0.0) {
        cm.add(i / n_classes, i % n_classes, c)?;
    }
    Ok(cm)
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
