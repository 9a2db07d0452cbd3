//! `kestrel eval`: metrics of a run's best checkpoint on its validation or test split, for any
//! task. The checkpoint's [`ModelSpec`] chooses the task's scorer, here and nowhere else.

use super::{classify, multitask, segment};
use crate::driver::checkpoint::Checkpoint;
use crate::driver::run_dir::{self, Summary};
use crate::error::{Result, TrainError};
use kestrel_data::{DataSpec, Dataset, Split};
use kestrel_nn::ModelSpec;
use serde::Serialize;
use std::path::Path;

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

/// The JSON of `kestrel eval`: the fields of the task's own report.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum EvalReport {
    /// A classifier's.
    Classify(classify::eval::ClassifyEvalReport),
    /// A segmentation model's.
    Segment(segment::eval::SegEvalReport),
    /// A multi-task model's.
    Multitask(multitask::eval::MultiTaskEvalReport),
}

/// Evaluates the best checkpoint of `run` on `split`. Reading the test split sets
/// `test_evaluated` in `summary.json`, so it needs a finished run; the validation split is read
/// from the best checkpoint alone, also in a run that is still training or was interrupted.
pub fn eval_run(run: &Path, split: EvalSplit) -> Result<EvalReport> {
    let summary = match split {
        EvalSplit::Test => Some(run_dir::read_summary(run)?),
        EvalSplit::Val => None,
    };
    let opened = OpenRun::open(run, split)?;
    let report = match &opened.ckpt.meta.spec {
        ModelSpec::Classifier(_) => EvalReport::Classify(classify::eval::eval_split(&opened)?),
        ModelSpec::Segmenter(_) => EvalReport::Segment(segment::eval::eval_split(&opened)?),
        ModelSpec::Multitask(spec) => {
            EvalReport::Multitask(multitask::eval::eval_split(&opened, spec)?)
        }
    };
    if let Some(summary) = summary.filter(|s| !s.test_evaluated) {
        let summary = Summary {
            test_evaluated: true,
            ..summary
        };
        run_dir::write_json(&run.join(run_dir::SUMMARY), &summary)?;
    }
    Ok(report)
}

/// A run opened for evaluation: its best checkpoint and its data.
pub(crate) struct OpenRun<'a> {
    run: &'a Path,
    /// Which split to score.
    pub split: EvalSplit,
    /// The best checkpoint.
    pub ckpt: Checkpoint,
    /// The run's data source.
    pub data: DataSpec,
    /// The dataset.
    pub ds: Box<dyn Dataset>,
    parts: Split,
}

impl<'a> OpenRun<'a> {
    /// Reads the run's best checkpoint and opens its data.
    pub fn open(run: &'a Path, split: EvalSplit) -> Result<Self> {
        let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run))?;
        let cfg = &ckpt.meta.config;
        let (data, _) = cfg.validate()?;
        let ds = kestrel_data::open(&data)?;
        let parts = cfg.split(ds.as_ref())?;
        Ok(Self {
            run,
            split,
            ckpt,
            data,
            ds,
            parts,
        })
    }

    /// Bad input unless the data still has the classes `names` the run was trained on
    /// (`names` as the task reads them from the data).
    pub fn check_classes(&self, names: &[String]) -> Result<()> {
        let trained = &self.ckpt.meta.class_names;
        if names != trained.as_slice() {
            return Err(TrainError::BadInput(format!(
                "data `{}` now has classes {names:?}, the run was trained on {trained:?}",
                self.ckpt.meta.config.data
            )));
        }
        Ok(())
    }

    /// The dataset items of the split; an empty split is bad input naming the run.
    pub fn items(&self) -> Result<&[usize]> {
        let indices = match self.split {
            EvalSplit::Val => &self.parts.val,
            EvalSplit::Test => &self.parts.test,
        };
        if indices.is_empty() {
            return Err(TrainError::BadInput(format!(
                "the {} split of run {} is empty",
                self.split.name(),
                self.run.display()
            )));
        }
        Ok(indices)
    }
}
