//! `kestrel eval`: metrics of a run's best checkpoint on its validation or test split, for any
//! task. The checkpoint's [`ModelSpec`] chooses the task's scorer, here and nowhere else.

use super::{classify, multitask, segment};
use crate::driver::checkpoint::Checkpoint;
use crate::driver::run_dir::{self, Summary};
use crate::error::{Result, TrainError};
use kestrel_data::{DataSpec, Dataset, Split};
use kestrel_metrics::{ClassificationAccumulator, SegmentationAccumulator};
use kestrel_nn::ModelSpec;
use serde::{Deserialize, Serialize};
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
    let report = opened.score(opened.items()?)?.report(split.name())?;
    if let Some(summary) = summary {
        record_test_evaluated(run, summary)?;
    }
    Ok(report)
}

/// Sets `test_evaluated` in the `summary.json` of `run`, read as `summary`, unless it is set.
pub(crate) fn record_test_evaluated(run: &Path, summary: Summary) -> Result<()> {
    if summary.test_evaluated {
        return Ok(());
    }
    let summary = Summary {
        test_evaluated: true,
        ..summary
    };
    run_dir::write_json(&run.join(run_dir::SUMMARY), &summary)
}

/// What an evaluation has counted, before its metrics are computed: the task's accumulators,
/// which merge exactly, and the class names its report needs. A shard of `kestrel eval` writes
/// one; `kestrel merge` adds them up in shard order and reports the sum, which is the
/// evaluation of the whole split. Serialises as `{"task": "classify" | "segment" | "multitask",
/// ...}` with the fields of its variant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase", deny_unknown_fields)]
pub enum EvalPartial {
    /// A classifier's.
    Classify {
        /// Labels, probabilities and confusion.
        classification: ClassificationAccumulator,
    },
    /// A segmentation model's.
    Segment {
        /// Mask class names, in index order.
        class_names: Vec<String>,
        /// The pixel confusion.
        segmentation: SegmentationAccumulator,
    },
    /// A multi-task model's.
    Multitask {
        /// The image classification's.
        classification: ClassificationAccumulator,
        /// Mask class names, in index order.
        seg_class_names: Vec<String>,
        /// The pixel confusion.
        segmentation: SegmentationAccumulator,
    },
}

impl EvalPartial {
    /// Adds `other`, the partial of the items that follow. Bad input when the two are of
    /// different tasks, classes or settings.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        let names = |a: &[String], b: &[String]| {
            if a == b {
                Ok(())
            } else {
                Err(TrainError::BadInput(format!(
                    "mask classes {b:?}, expected {a:?}"
                )))
            }
        };
        let incompatible = |e: kestrel_metrics::MetricsError| TrainError::BadInput(e.to_string());
        match (self, other) {
            (
                EvalPartial::Classify { classification: a },
                EvalPartial::Classify { classification: b },
            ) => a.merge(b).map_err(incompatible),
            (
                EvalPartial::Segment {
                    class_names: na,
                    segmentation: a,
                },
                EvalPartial::Segment {
                    class_names: nb,
                    segmentation: b,
                },
            ) => {
                names(na, nb)?;
                a.merge(b).map_err(incompatible)
            }
            (
                EvalPartial::Multitask {
                    classification: ca,
                    seg_class_names: na,
                    segmentation: sa,
                },
                EvalPartial::Multitask {
                    classification: cb,
                    seg_class_names: nb,
                    segmentation: sb,
                },
            ) => {
                names(na, nb)?;
                ca.merge(cb).map_err(incompatible)?;
                sa.merge(sb).map_err(incompatible)
            }
            (a, b) => Err(TrainError::BadInput(format!(
                "a {} evaluation, expected a {} one",
                b.task(),
                a.task()
            ))),
        }
    }

    /// `classify`, `segment` or `multitask`.
    pub fn task(&self) -> &'static str {
        match self {
            EvalPartial::Classify { .. } => "classify",
            EvalPartial::Segment { .. } => "segment",
            EvalPartial::Multitask { .. } => "multitask",
        }
    }

    /// The number of images counted, where the partial knows it (a segmentation model's counts
    /// pixels, not images).
    pub fn images(&self) -> Option<usize> {
        match self {
            EvalPartial::Classify { classification }
            | EvalPartial::Multitask { classification, .. } => Some(classification.len()),
            EvalPartial::Segment { .. } => None,
        }
    }

    /// The report of `kestrel eval` on split `split` (`val` or `test`) from the partial of all
    /// its images.
    pub fn report(&self, split: &str) -> Result<EvalReport> {
        Ok(match self {
            EvalPartial::Classify { classification } => EvalReport::Classify(
                classify::eval::ClassifyEvalReport::new(split, classification)?,
            ),
            EvalPartial::Segment {
                class_names,
                segmentation,
            } => EvalReport::Segment(segment::eval::SegEvalReport::new(
                split,
                class_names,
                segmentation,
            )),
            EvalPartial::Multitask {
                classification,
                seg_class_names,
                segmentation,
            } => EvalReport::Multitask(multitask::eval::MultiTaskEvalReport::new(
                split,
                classification,
                seg_class_names,
                segmentation,
            )?),
        })
    }
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
        Self::with_checkpoint(
            run,
            split,
            Checkpoint::load(&run_dir::best_checkpoint(run))?,
        )
    }

    /// Opens the data of `run` for its best checkpoint `ckpt`, already read.
    pub fn with_checkpoint(run: &'a Path, split: EvalSplit, ckpt: Checkpoint) -> Result<Self> {
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

    /// Images per forward pass of the task's evaluation; a shard of the split starts at a
    /// multiple of it, so that its batches are those of the whole split.
    pub fn eval_batch(&self) -> usize {
        match &self.ckpt.meta.spec {
            ModelSpec::Classifier(_) => classify::eval::EVAL_BATCH,
            ModelSpec::Segmenter(_) => segment::eval::SEG_EVAL_BATCH,
            ModelSpec::Multitask(_) => multitask::eval::MULTITASK_EVAL_BATCH,
        }
    }

    /// The task's partial evaluation of the best checkpoint on the dataset items `items` (the
    /// split's, or a contiguous run of them starting at a multiple of [`OpenRun::eval_batch`]).
    pub fn score(&self, items: &[usize]) -> Result<EvalPartial> {
        Ok(match &self.ckpt.meta.spec {
            ModelSpec::Classifier(_) => EvalPartial::Classify {
                classification: classify::eval::score(self, items)?,
            },
            ModelSpec::Segmenter(_) => {
                let (class_names, segmentation) = segment::eval::score(self, items)?;
                EvalPartial::Segment {
                    class_names,
                    segmentation,
                }
            }
            ModelSpec::Multitask(spec) => {
                let (classification, seg_class_names, segmentation) =
                    multitask::eval::score(self, spec, items)?;
                EvalPartial::Multitask {
                    classification,
                    seg_class_names,
                    segmentation,
                }
            }
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
