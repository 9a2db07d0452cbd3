//! Evaluating a classifier on a split with kestrel-metrics, and `kestrel eval` of a
//! classification run.

use crate::error::{Result, TrainError};
use crate::infer::runtime_classifier_probs;
use crate::tasks::classify::data::TensorSet;
use crate::tasks::eval::OpenRun;
use burn::tensor::activation::softmax;
use burn::tensor::Device;
use kestrel_data::Shard;
use kestrel_metrics::classification::averaged_scores;
use kestrel_metrics::{Average, ClassificationAccumulator, ClassificationSummary};
use kestrel_nn::Classifier;
use serde::Serialize;
use std::collections::BTreeMap;

/// Images per forward pass during evaluation.
pub const EVAL_BATCH: usize = 128;

/// Class probabilities (row-major, n × classes) of every image of `set`, from a model in eval
/// mode on a plain (non-autodiff) device.
pub fn predict_probs(model: &Classifier, set: &TensorSet, device: &Device) -> Result<Vec<f32>> {
    let rows: Vec<usize> = (0..set.len()).collect();
    predict_rows(model, set, &rows, device)
}

/// [`predict_probs`] of the images `rows` of `set`, `EVAL_BATCH` at a time: on kestrel-runtime
/// (the exported plan, batch norm folded: the engine `kestrel predict` runs and deployment uses,
/// several times faster than the Burn model on small images), or on the Burn model on `device`
/// when the runtime cannot run it.
fn predict_rows(
    model: &Classifier,
    set: &TensorSet,
    rows: &[usize],
    device: &Device,
) -> Result<Vec<f32>> {
    let batches = rows.chunks(EVAL_BATCH).map(|chunk| set.nchw(chunk));
    if let Some(probs) = runtime_classifier_probs(model, set.resolution, batches)? {
        return Ok(probs);
    }
    let mut probs = Vec::new();
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

/// The labels and probabilities of `model` on every image of `set`, in their accumulator: what
/// `kestrel eval` summarises (accuracy, macro F1, per-class scores, confusion matrix and OvR
/// ROC-AUC), and what a shard of it keeps to merge.
pub fn accumulate(
    model: &Classifier,
    set: &TensorSet,
    class_names: &[String],
    device: &Device,
) -> Result<ClassificationAccumulator> {
    let rows: Vec<usize> = (0..set.len()).collect();
    let acc = ClassificationAccumulator::with_class_names(class_names.to_vec())?;
    accumulate_rows(model, set, &rows, acc, device)
}

/// `acc` with the labels and probabilities of `model` on the images `rows` of `set` added.
fn accumulate_rows(
    model: &Classifier,
    set: &TensorSet,
    rows: &[usize],
    mut acc: ClassificationAccumulator,
    device: &Device,
) -> Result<ClassificationAccumulator> {
    let probs = predict_rows(model, set, rows, device)?;
    let labels: Vec<usize> = rows.iter().map(|&r| set.labels[r]).collect();
    acc.update(&labels, &probs)?;
    Ok(acc)
}

/// The confusion matrix (row-major counts, true class by row) of `model` on part `shard` of
/// `set`: the parts' matrices add up to the whole set's.
pub(crate) fn confusion_counts(
    model: &Classifier,
    set: &TensorSet,
    n_classes: usize,
    shard: Shard,
    device: &Device,
) -> Result<Vec<f64>> {
    let rows = crate::tasks::shard_rows(set.len(), EVAL_BATCH, shard);
    let acc = ClassificationAccumulator::new(n_classes)?.without_roc_auc();
    let acc = accumulate_rows(model, set, &rows, acc, device)?;
    Ok(acc.confusion().rows().concat())
}

/// Validation accuracy and macro-F1 from a confusion matrix's counts (as
/// [`confusion_counts`] gives them, possibly summed over parts).
pub(crate) fn val_metrics(counts: &[f64], n_classes: usize) -> Result<BTreeMap<String, f64>> {
    let cm = crate::tasks::confusion_from_counts(counts, n_classes)?;
    Ok([
        ("accuracy".to_string(), cm.accuracy().unwrap_or(0.0)),
        (
            "macro_f1".to_string(),
            averaged_scores(&cm, 1.0, Average::Macro)?.f_score,
        ),
    ]
    .into())
}

/// The JSON of `kestrel eval` for a classifier.
#[derive(Clone, Debug, Serialize)]
pub struct ClassifyEvalReport {
    /// `val` or `test`.
    pub split: String,
    /// The metrics.
    #[serde(flatten)]
    pub metrics: ClassificationSummary,
}

impl ClassifyEvalReport {
    /// The report of split `split` from the accumulator of all its images.
    pub(crate) fn new(split: &str, acc: &ClassificationAccumulator) -> Result<Self> {
        Ok(Self {
            split: split.to_string(),
            metrics: acc.summary()?,
        })
    }
}

/// The images of the split of `run`, preprocessed as in training; bad input unless the data
/// still has the run's classes.
pub(crate) fn split_set(run: &OpenRun) -> Result<TensorSet> {
    set_of(run, run.items()?)
}

/// The dataset items `items` of `run`, preprocessed as in training; bad input unless the data
/// still has the run's classes.
fn set_of(run: &OpenRun, items: &[usize]) -> Result<TensorSet> {
    let meta = &run.ckpt.meta;
    run.check_classes(&run.ds.class_names())?;
    TensorSet::load(
        run.ds.as_ref(),
        items,
        meta.config.resolution,
        &meta.normalize,
    )
}

/// The accumulator of the best checkpoint of the classification run `run` on the dataset items
/// `items` (its split or a shard of it), evaluated in batches of [`EVAL_BATCH`] from the first.
pub(crate) fn score(run: &OpenRun, items: &[usize]) -> Result<ClassificationAccumulator> {
    let set = set_of(run, items)?;
    let device = Device::flex();
    let model = run.ckpt.model(&device)?;
    accumulate(&model, &set, &run.ckpt.meta.class_names, &device)
}
