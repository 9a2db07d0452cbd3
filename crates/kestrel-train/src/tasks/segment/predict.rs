//! `kestrel predict --run DIR` for a segmentation run: per-pixel class probabilities, summarised
//! as ranked classes and one box per class.
//!
//! Each image is resized to the run's resolution R and the model's softmax gives a (K, R, R)
//! probability stack. `boxes`: for every class other than the background (class 0), the
//! rectangle that maximises Σ (p − τ) with τ = 0.5 ([`kestrel_data::max_subarray::mask_to_boxes`]);
//! a class with no pixel above τ has no box. The box's `score` is that sum (in model pixels) and
//! its corners are scaled to the original image's pixels (x0, y0 rounded down, x1, y1 up;
//! x1 / y1 exclusive). `top`: the classes other than the background ranked by mean pixel
//! probability over the image, the `top_k` highest.

use crate::driver::checkpoint::Checkpoint;
use crate::error::Result;
use crate::infer::{segmenter_probs, InferenceEngine};
use crate::tasks::predict::{ranked, Prediction};
use burn::tensor::Device;
use kestrel_data::image_io::load_rgb;
use kestrel_data::max_subarray::{mask_to_boxes, MaskBox};
use kestrel_data::preprocess::push_chw;
use std::path::PathBuf;

/// The probability threshold τ of the boxes.
pub const BOX_TAU: f32 = 0.5;

/// One class's box, in the original image's pixels (the score stays the one at the model's
/// resolution).
pub type PredictedBox = MaskBox;

/// Boxes of classes other than 0 in the probability stack `probs` (K × R × R), scaled to an
/// image of `width` × `height`.
pub fn boxes_of(
    probs: &[f32],
    classes: usize,
    r: usize,
    width: usize,
    height: usize,
) -> Result<Vec<PredictedBox>> {
    Ok(mask_to_boxes(probs, classes, r, r, BOX_TAU)?
        .into_iter()
        .filter(|b| b.class != 0)
        .map(|b| b.scaled(r, r, width, height))
        .collect())
}

/// Predicts `images` with a segmentation checkpoint on `engine`; every image is read before any
/// is run.
pub fn predict_segment(
    ckpt: &Checkpoint,
    images: &[PathBuf],
    top_k: usize,
    engine: InferenceEngine,
) -> Result<Vec<Prediction>> {
    let r = ckpt.meta.config.resolution;
    let k = ckpt.meta.class_names.len();
    let mut x = Vec::with_capacity(images.len() * 3 * r * r);
    let mut sizes = Vec::with_capacity(images.len());
    for path in images {
        let img = load_rgb(path)?;
        sizes.push((img.width() as usize, img.height() as usize));
        push_chw(&img, r as u32, r as u32, &ckpt.meta.normalize, &mut x);
    }
    let model = ckpt.segmenter(&Device::flex())?;
    let probs = segmenter_probs(&model, x, images.len(), r, &engine)?;
    let mut out = Vec::with_capacity(images.len());
    for ((path, stack), &(w, h)) in images.iter().zip(probs.chunks_exact(k * r * r)).zip(&sizes) {
        let mean: Vec<f64> = stack
            .chunks_exact(r * r)
            .map(|p| p.iter().map(|&v| v as f64).sum::<f64>() / (r * r) as f64)
            .collect();
        out.push(Prediction {
            image: path.clone(),
            // Classes other than the background, by mean pixel probability.
            top: ranked(&mean, 1..k, top_k, |c| ckpt.meta.class_names[c].clone()),
            boxes: Some(boxes_of(stack, k, r, w, h)?),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_skip_the_background_and_scale_to_the_image() {
        // 2 classes on a 4×4 map: class 1 is certain on rows 1..3, columns 2..4; class 0 elsewhere.
        let r = 4;
        let mut probs = vec![0.0f32; 2 * r * r];
        for y in 0..r {
            for x in 0..r {
                let fg = (1..3).contains(&y) && (2..4).contains(&x);
                probs[y * r + x] = if fg { 0.0 } else { 1.0 };
                probs[r * r + y * r + x] = if fg { 1.0 } else { 0.0 };
            }
        }
        let b = boxes_of(&probs, 2, r, 4, 4).unwrap();
        assert_eq!(
            b,
            vec![PredictedBox {
                class: 1,
                x0: 2,
                y0: 1,
                x1: 4,
                y1: 3,
                score: 4.0 * 0.5
            }]
        );
        // On a 10 × 6 image: columns 2..4 of 4 → 5..10, rows 1..3 of 4 → 1..5 (1.5 down, 4.5 up).
        let b = boxes_of(&probs, 2, r, 10, 6).unwrap();
        assert_eq!((b[0].x0, b[0].y0, b[0].x1, b[0].y1), (5, 1, 10, 5));
    }
}
