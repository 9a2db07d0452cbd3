//! `kestrel predict --run DIR`: the ranked classes of image files (and, for a segmentation
//! model, per-class boxes), dispatched on the checkpoint's model.

use super::{classify, segment};
use crate::driver::checkpoint::Checkpoint;
use crate::driver::run_dir;
use crate::error::{Result, TrainError};
use crate::infer::InferenceEngine;
use kestrel_nn::ModelSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One ranked class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopClass {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub label: String,
    /// Softmax probability.
    pub prob: f64,
}

/// The prediction for one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The image path as given.
    pub image: PathBuf,
    /// The `k` most probable classes, most probable first. For a segmentation model: the
    /// classes other than the background (class 0) ranked by mean pixel probability.
    pub top: Vec<TopClass>,
    /// Segmentation models only: one box per class other than the background, from
    /// `tasks::segment::predict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boxes: Option<Vec<crate::tasks::segment::predict::PredictedBox>>,
}

/// Classifies `images` with the best checkpoint of `run` on kestrel-runtime; every image is read
/// before any is classified, so a bad file fails the command naming that file.
pub fn predict_run(run: &Path, images: &[PathBuf], top_k: usize) -> Result<Vec<Prediction>> {
    predict_run_on(run, images, top_k, InferenceEngine::Runtime)
}

/// [`predict_run`] on the given engine.
pub fn predict_run_on(
    run: &Path,
    images: &[PathBuf],
    top_k: usize,
    engine: InferenceEngine,
) -> Result<Vec<Prediction>> {
    check_top_k(top_k)?;
    let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run))?;
    predict_checkpoint_on(&ckpt, images, top_k, engine)
}

/// [`predict_run_on`] with the run's best checkpoint already read.
pub(crate) fn predict_checkpoint_on(
    ckpt: &Checkpoint,
    images: &[PathBuf],
    top_k: usize,
    engine: InferenceEngine,
) -> Result<Vec<Prediction>> {
    check_top_k(top_k)?;
    match ckpt.meta.spec {
        ModelSpec::Segmenter(_) => segment::predict::predict_segment(ckpt, images, top_k, engine),
        // A multi-task checkpoint is refused by the classifier's loader, naming what it holds.
        ModelSpec::Classifier(_) | ModelSpec::Multitask(_) => {
            classify::predict::predict_classifier(ckpt, images, top_k, engine)
        }
    }
}

/// Bad input unless `top_k` asks for at least one class.
pub(crate) fn check_top_k(top_k: usize) -> Result<()> {
    if top_k == 0 {
        return Err(TrainError::BadInput(
            "bad value for `--top-k`: expected at least 1".into(),
        ));
    }
    Ok(())
}

/// The `k` highest-scoring classes among `candidates`, highest first; the lower index wins ties.
pub(crate) fn ranked<S: Copy + Into<f64>>(
    scores: &[S],
    candidates: std::ops::Range<usize>,
    k: usize,
    label: impl Fn(usize) -> String,
) -> Vec<TopClass> {
    let score = |c: usize| -> f64 { scores[c].into() };
    let mut order: Vec<usize> = candidates.collect();
    order.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|c| TopClass {
            class: c,
            label: label(c),
            prob: score(c),
        })
        .collect()
}
