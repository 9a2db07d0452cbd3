//! `kestrel predict` of a classification run: class probabilities of image files.

use crate::driver::checkpoint::Checkpoint;
use crate::error::Result;
use crate::infer::{classifier_probs, InferenceEngine};
use crate::tasks::predict::{ranked, Prediction};
use burn::tensor::Device;
use kestrel_data::image_io::load_rgb;
use kestrel_data::preprocess::push_chw;
use std::path::PathBuf;

/// The `top_k` classes of each of `images` by the classifier of `ckpt`, on `engine`.
pub(crate) fn predict_classifier(
    ckpt: &Checkpoint,
    images: &[PathBuf],
    top_k: usize,
    engine: InferenceEngine,
) -> Result<Vec<Prediction>> {
    let r = ckpt.meta.config.resolution;
    let mut x = Vec::with_capacity(images.len() * 3 * r * r);
    for path in images {
        let img = load_rgb(path)?;
        push_chw(&img, r as u32, r as u32, &ckpt.meta.normalize, &mut x);
    }
    // BatchNorm folded into the convolutions on either engine: the inference graph, as export
    // writes it.
    let model = ckpt.model(&Device::flex())?;
    let probs = classifier_probs(model, x, images.len(), r, &engine)?;
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
