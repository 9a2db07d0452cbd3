//! Evaluating a classifier on a split with kestrel-metrics.

use crate::error::{Result, TrainError};
use crate::tensor_set::TensorSet;
use burn::tensor::activation::softmax;
use burn::tensor::Device;
use kestrel_metrics::{ClassificationAccumulator, ClassificationSummary};
use kestrel_nn::Classifier;

/// Images per forward pass during evaluation.
pub const EVAL_BATCH: usize = 128;

/// Class probabilities (row-major, n × classes) of every image of `set`, from a model in eval
/// mode on a plain (non-autodiff) device.
pub fn predict_probs(model: &Classifier, set: &TensorSet, device: &Device) -> Result<Vec<f32>> {
    let mut probs = Vec::new();
    let rows: Vec<usize> = (0..set.len()).collect();
    for chunk in rows.chunks(EVAL_BATCH) {
        let (x, _) = set.batch(chunk, device);
        let p = softmax(model.forward(x), 1);
        let v: Vec<f32> = p
            .into_data()
            .try_to_vec()
            .map_err(|e| TrainError::Runtime(format!("reading probabilities: {e:?}")))?;
        probs.extend(v);
    }
    Ok(probs)
}

/// Accuracy, macro F1, per-class scores, confusion matrix and OvR ROC-AUC of `model` on `set`.
pub fn evaluate(
    model: &Classifier,
    set: &TensorSet,
    class_names: &[String],
    device: &Device,
) -> Result<ClassificationSummary> {
    let probs = predict_probs(model, set, device)?;
    let mut acc = ClassificationAccumulator::with_class_names(class_names.to_vec())?;
    acc.update(&set.labels, &probs)?;
    Ok(acc.summary()?)
}
