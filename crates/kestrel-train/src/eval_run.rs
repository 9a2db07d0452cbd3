//! `kestrel eval`: metrics of a run's best checkpoint on its validation or test split.

use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::run_dir;
use crate::tensor_set::TensorSet;
use burn::tensor::Device;
use kestrel_metrics::ClassificationSummary;
use serde::Serialize;
use std::path::Path;

/// The items of `split` in `parts`; an empty split is bad input naming the run.
pub(crate) fn split_items<'a>(
    parts: &'a kestrel_data::Split,
    split: EvalSplit,
    run: &Path,
) -> Result<&'a [usize]> {
    let indices = match split {
        EvalSplit::Val => &parts.val,
        EvalSplit::Test => &parts.test,
    };
    if indices.is_empty() {
        return Err(TrainError::BadInput(format!(
            "the {} split of run {} is empty",
            split.name(),
            run.display()
        )));
    }
    Ok(indices)
}

/// Which held-out split to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalSplit {
    /// Validation: used for model selection during training.
    Val,
    /// Test: held out; reading it is recorded in `summary.json`.
    Test,
}

impl EvalSplit {
    /// `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            EvalSplit::Val => "val",
            EvalSplit::Test => "test",
        }
    }
}

/// The JSON of `kestrel eval` for a classifier.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// `val` or `test`.
    pub split: String,
    /// The metrics.
    #[serde(flatten)]
    pub metrics: ClassificationSummary,
}

/// Evaluates the best checkpoint of `run` on `split`. Reading the test split sets
/// `test_evaluated` in `summary.json`.
pub fn eval_run(run: &Path, split: EvalSplit) -> Result<EvalReport> {
    let mut summary = run_dir::read_summary(run)?;
    let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run))?;
    let cfg = &ckpt.meta.config;
    let (spec, _) = cfg.validate()?;
    let ds = kestrel_data::open(&spec)?;
    if ds.class_names() != ckpt.meta.class_names {
        return Err(TrainError::BadInput(format!(
            "data `{}` now has classes {:?}, the run was trained on {:?}",
            cfg.data,
            ds.class_names(),
            ckpt.meta.class_names
        )));
    }
    let parts = cfg.split(ds.as_ref())?;
    let indices = split_items(&parts, split, run)?;
    let set = TensorSet::load(ds.as_ref(), indices, cfg.resolution, &ckpt.meta.normalize)?;
    let device = Device::flex();
    let model = ckpt.model(&device)?;
    let metrics = evaluate(&model, &set, &ckpt.meta.class_names, &device)?;
    if split == EvalSplit::Test && !summary.test_evaluated {
        summary.test_evaluated = true;
        run_dir::write_json(&run.join(run_dir::SUMMARY), &summary)?;
    }
    Ok(EvalReport {
        split: split.name().to_string(),
        metrics,
    })
}
