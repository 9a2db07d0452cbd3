//! Scoring a segmentation model: the pixel confusion matrix (mask value 255 ignored), per-class
//! IoU, mean IoU and pixel accuracy; and `kestrel eval` for a segmentation run.

use crate::error::Result;
use crate::tasks::eval::OpenRun;
use crate::tasks::segment::data::{seg_class_names, SegSet};
use burn::tensor::Device;
use kestrel_data::Shard;
use kestrel_metrics::SegmentationAccumulator;
use kestrel_nn::models::fcn::Fcn;
use serde::Serialize;

/// Images per forward pass during evaluation.
pub const SEG_EVAL_BATCH: usize = 32;

/// The scores of `model` (eval mode, plain device) on every image of `set` (`kestrel eval`
/// summarises [`pixel_confusion`]'s accumulator itself, so that shards can merge it first).
#[cfg(test)]
pub fn evaluate_segmenter(
    model: &Fcn,
    set: &SegSet,
    classes: usize,
    device: &Device,
) -> Result<kestrel_metrics::SegmentationScores> {
    Ok(pixel_confusion(model, set, classes, device)?.summary())
}

/// The pixel confusion matrix (inside its accumulator) of `model` on every image of `set`: what
/// `kestrel eval` summarises, kept whole for the report's confusion plot.
pub fn pixel_confusion(
    model: &Fcn,
    set: &SegSet,
    classes: usize,
    device: &Device,
) -> Result<SegmentationAccumulator> {
    pixel_confusion_part(model, set, classes, Shard::WHOLE, device)
}

/// [`pixel_confusion`] of part `shard` of `set` (whole evaluation batches): the parts'
/// matrices add up to the whole set's.
pub fn pixel_confusion_part(
    model: &Fcn,
    set: &SegSet,
    classes: usize,
    shard: Shard,
    device: &Device,
) -> Result<SegmentationAccumulator> {
    let mut acc = SegmentationAccumulator::new(classes)?;
    let rows = crate::tasks::shard_rows(set.len(), SEG_EVAL_BATCH, shard);
    for chunk in rows.chunks(SEG_EVAL_BATCH) {
        let (x, _, truth) = set.batch(chunk, None, device);
        let pred = crate::tasks::predicted_classes(model.forward(x))?;
        let truth: Vec<usize> = truth.into_iter().map(usize::from).collect();
        acc.update(&truth, &pred)?;
    }
    Ok(acc)
}

/// The JSON of `kestrel eval` for a segmentation run.
#[derive(Clone, Debug, Serialize)]
pub struct SegEvalReport {
    /// `val` or `test`.
    pub split: String,
    /// Mean IoU over the classes with a defined IoU.
    pub miou: Option<f64>,
    /// Correct pixels over scored pixels.
    pub pixel_accuracy: Option<f64>,
    /// IoU of each class (null when the class is neither present nor predicted).
    pub iou_per_class: Vec<Option<f64>>,
    /// Class names, in index order (index 0 is the background for `shapes`).
    pub class_names: Vec<String>,
}

impl SegEvalReport {
    /// The report of split `split`, whose mask classes are `class_names`, from the accumulator
    /// of all its images.
    pub(crate) fn new(split: &str, class_names: &[String], acc: &SegmentationAccumulator) -> Self {
        let scores = acc.summary();
        Self {
            split: split.to_string(),
            miou: scores.miou,
            pixel_accuracy: scores.pixel_accuracy,
            iou_per_class: scores.iou_per_class,
            class_names: class_names.to_vec(),
        }
    }
}

/// The class names and the images and masks of the split of `run`, preprocessed as in
/// training; bad input unless the data still has the run's classes.
pub(crate) fn split_set(run: &OpenRun) -> Result<(Vec<String>, SegSet)> {
    set_of(run, run.items()?)
}

/// The class names and the images and masks of the dataset items `items` of `run`,
/// preprocessed as in training; bad input unless the data still has the run's classes.
fn set_of(run: &OpenRun, items: &[usize]) -> Result<(Vec<String>, SegSet)> {
    let meta = &run.ckpt.meta;
    let names = seg_class_names(&run.data, run.ds.as_ref());
    run.check_classes(&names)?;
    let set = SegSet::load(
        run.ds.as_ref(),
        items,
        meta.config.resolution,
        &meta.normalize,
        names.len(),
    )?;
    Ok((names, set))
}

/// The class names and the pixel confusion of the best checkpoint of the segmentation run `run`
/// on the dataset items `items` (its split or a shard of it), in batches of [`SEG_EVAL_BATCH`]
/// from the first.
pub(crate) fn score(
    run: &OpenRun,
    items: &[usize],
) -> Result<(Vec<String>, SegmentationAccumulator)> {
    let (names, set) = set_of(run, items)?;
    let device = Device::flex();
    let model = run.ckpt.segmenter(&device)?;
    let acc = pixel_confusion(&model, &set, names.len(), &device)?;
    Ok((names, acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_nn::models::fcn::SegmenterSpec;
    use kestrel_nn::upsample::UpsamplerKind;

    #[test]
    fn an_untrained_fcn_predicts_background_everywhere() {
        // Zero-initialised score layers give equal logits; argmax takes the first class, so the
        // IoU of the background is its pixel share and every other class scores 0.
        let ds = kestrel_data::Shapes::new(kestrel_data::ShapesConfig {
            n: 4,
            size: 32,
            classes: 2,
            imbalance: 1.0,
            seed: 0,
        })
        .unwrap();
        let set = SegSet::load(
            &ds,
            &[0, 1, 2, 3],
            32,
            &kestrel_data::Normalize::IMAGENET,
            3,
        )
        .unwrap();
        let device = Device::flex();
        let model = SegmenterSpec {
            name: "fcn8s-mobilenet-v2".parse().unwrap(),
            width: 0.25,
            num_classes: 3,
            output_stride: 32,
            upsampler: UpsamplerKind::Bilinear,
        }
        .init(&device)
        .unwrap();
        let s = evaluate_segmenter(&model, &set, 3, &device).unwrap();
        let bg = set.masks.iter().filter(|&&m| m == 0).count() as f64 / set.masks.len() as f64;
        assert!((s.pixel_accuracy.unwrap() - bg).abs() < 1e-12);
        assert!((s.iou_per_class[0].unwrap() - bg).abs() < 1e-12);
    }
}
