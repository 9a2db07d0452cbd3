//! `kestrel predict --run DIR`: class probabilities for image files.

use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};
use crate::infer::{classifier_probs, InferenceEngine};
use crate::run_dir;
use burn::tensor::Device;
use kestrel_data::image_io::load_rgb;
use kestrel_data::preprocess::push_chw;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One ranked class.
#[derive(Clone, Debug, Serialize)]
pub struct TopClass {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub label: String,
    /// Softmax probability.
    pub prob: f64,
}

/// The prediction for one image.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    /// The image path as given.
    pub image: PathBuf,
    /// The `k` most probable classes, most probable first. For a segmentation model: the
    /// classes other than the background (class 0) ranked by mean pixel probability.
    pub top: Vec<TopClass>,
    /// Segmentation models only: one box per class other than the background, from
    /// [`crate::seg_predict`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boxes: Option<Vec<crate::seg_predict::PredictedBox>>,
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
    if top_k == 0 {
        return Err(TrainError::BadInput(
            "bad value for `--top-k`: expected at least 1".into(),
        ));
    }
    let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run))?;
    if ckpt.meta.segmenter.is_some() {
        return crate::seg_predict::predict_segment(&ckpt, images, top_k, engine);
    }
    let r = ckpt.meta.config.resolution;
    let mut x = Vec::with_capacity(images.len() * 3 * r * r);
    for path in images {
        let img = load_rgb(path)?;
        push_chw(&img, r as u32, r as u32, &ckpt.meta.normalize, &mut x);
    }
    // BatchNorm folded into the convolutions on either engine: the inference graph, as export
    // writes it.
    let model = ckpt.model(&Device::flex())?;
    let probs = classifier_probs(model, x, images.len(), r, engine)?;
    let k = ckpt.meta.class_names.len();
    Ok(images
        .iter()
        .zip(probs.chunks_exact(k))
        .map(|(path, row)| Prediction {
            image: path.clone(),
            top: ranked(row, 0..k, top_k, |c| ckpt.meta.class_names[c].clone()),
            boxes: None,
        })
        .collect())
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
