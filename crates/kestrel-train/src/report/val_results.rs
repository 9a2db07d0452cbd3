//! The best checkpoint's validation results that the report plots: for a classifier the labels
//! and class probabilities of every validation image (confusion matrix, one-vs-rest ROC and PR
//! curves), for a segmentation model the pixel confusion matrix and per-class IoU.
//!
//! Computed as `kestrel eval --split val` computes its numbers (same checkpoint, data, split and
//! preprocessing, through [`crate::tasks::classify::eval::predict_probs`] and
//! [`crate::tasks::segment::eval::pixel_confusion`]), so the plots agree with `eval`'s JSON.

use crate::error::{Result, TrainError};
use crate::tasks::eval::{EvalSplit, OpenRun};
use crate::tasks::{classify, segment};
use burn::tensor::Device;
use kestrel_metrics::{Predictions, Report};
use kestrel_nn::ModelSpec;
use std::path::Path;

/// Validation results of a run's best checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum ValResults {
    /// A classifier's outputs on the validation split.
    Classification {
        /// Class names, in index order.
        class_names: Vec<String>,
        /// True class of each image.
        labels: Vec<usize>,
        /// Class probabilities, row-major `labels.len() × class_names.len()`.
        probs: Vec<f64>,
    },
    /// A segmentation model's pixel counts on the validation split (mask value 255 ignored).
    Segmentation {
        /// Class names, in index order (0 is the background for `shapes`).
        class_names: Vec<String>,
        /// Pixel confusion matrix: row per true class, column per predicted class.
        confusion: Vec<Vec<u64>>,
        /// IoU of each class; `None` when a class is neither present nor predicted.
        iou_per_class: Vec<Option<f64>>,
    },
}

impl ValResults {
    /// The predictions and their `kestrel metrics` report, for a classifier's results.
    ///
    /// # Errors
    /// Runtime error when the stored probabilities do not form a valid predictions matrix.
    pub fn classification_report(&self) -> Result<Option<(Predictions, Report)>> {
        let ValResults::Classification {
            class_names,
            labels,
            probs,
        } = self
        else {
            return Ok(None);
        };
        let p = Predictions::multiclass(class_names.clone(), labels, probs.clone())?;
        let report = Report::from_predictions(&p, 0.5)?;
        Ok(Some((p, report)))
    }
}

/// Computes the validation results of `run`'s best checkpoint.
///
/// # Errors
/// Bad input when the run folder, its checkpoint or its data source cannot be read, or the data
/// now has other classes than the run was trained on.
pub fn val_results(run: &Path) -> Result<ValResults> {
    let opened = OpenRun::open(run, EvalSplit::Val)?;
    let device = Device::flex();
    if let ModelSpec::Segmenter(_) = opened.ckpt.meta.spec {
        let (names, set) = segment::eval::split_set(&opened)?;
        let model = opened.ckpt.segmenter(&device)?;
        let acc = segment::eval::pixel_confusion(&model, &set, names.len(), &device)?;
        let confusion = acc.confusion().counts().ok_or_else(|| {
            TrainError::Runtime("the pixel confusion matrix holds non-integer counts".into())
        })?;
        Ok(ValResults::Segmentation {
            class_names: names,
            confusion,
            iou_per_class: acc.summary().iou_per_class,
        })
    } else {
        let set = classify::eval::split_set(&opened)?;
        let model = opened.ckpt.model(&device)?;
        let probs = classify::eval::predict_probs(&model, &set, &device)?;
        Ok(ValResults::Classification {
            class_names: opened.ckpt.meta.class_names.clone(),
            labels: set.labels.clone(),
            probs: probs.into_iter().map(f64::from).collect(),
        })
    }
}
