//! Scoring a multi-task model on a split — classification (accuracy, macro F1, …) and
//! segmentation (mIoU, pixel accuracy) from one forward pass per batch — and `kestrel eval` for a
//! multi-task run.

use crate::error::{Result, TrainError};
use crate::tasks::eval::OpenRun;
use crate::tasks::segment::data::{seg_class_names, SegSet};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use kestrel_metrics::{
    ClassificationAccumulator, ClassificationSummary, SegmentationAccumulator, SegmentationScores,
};
use kestrel_nn::models::multitask::{MultiTask, MultiTaskSpec};
use serde::Serialize;
use std::collections::BTreeMap;

/// Images per forward pass during evaluation.
pub const MULTITASK_EVAL_BATCH: usize = 32;

/// Both tasks' scores.
#[derive(Clone, Debug)]
pub struct MultiTaskScores {
    /// Image classification.
    pub classification: ClassificationSummary,
    /// Segmentation.
    pub segmentation: SegmentationScores,
}

impl MultiTaskScores {
    /// The `val` map of `metrics.jsonl` and `summary.json`: accuracy, macro_f1, miou,
    /// pixel_accuracy.
    pub fn val_map(&self) -> BTreeMap<String, f64> {
        [
            ("accuracy", self.classification.accuracy),
            ("macro_f1", self.classification.macro_f1),
            ("miou", self.segmentation.miou.unwrap_or(0.0)),
            (
                "pixel_accuracy",
                self.segmentation.pixel_accuracy.unwrap_or(0.0),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[cfg(test)]
    /// The metric that selects the best checkpoint: the mean of accuracy and mIoU (each task's
    /// headline metric, both in [0, 1], weighted alike).
    pub fn combined(&self) -> f64 {
        combined_metric(&self.val_map())
    }
}

/// Mean of `accuracy` and `miou` of a `val` map (0 for a missing one).
pub fn combined_metric(val: &BTreeMap<String, f64>) -> f64 {
    let get = |k: &str| val.get(k).copied().unwrap_or(0.0);
    0.5 * (get("accuracy") + get("miou"))
}

/// The scores of `model` (eval mode, plain device) on every image of `set`, whose image labels
/// are `labels`; `class_names` are the image classes, `seg_classes` the mask classes.
pub fn evaluate_multitask(
    model: &MultiTask,
    set: &SegSet,
    labels: &[usize],
    class_names: &[String],
    seg_classes: usize,
    device: &Device,
) -> Result<MultiTaskScores> {
    let (cls, seg) = accumulate_multitask(model, set, labels, class_names, seg_classes, device)?;
    Ok(MultiTaskScores {
        classification: cls.summary()?,
        segmentation: seg.summary(),
    })
}

/// Both tasks' accumulators of `model` on every image of `set` (arguments as
/// [`evaluate_multitask`], which summarises them), in batches of [`MULTITASK_EVAL_BATCH`].
pub fn accumulate_multitask(
    model: &MultiTask,
    set: &SegSet,
    labels: &[usize],
    class_names: &[String],
    seg_classes: usize,
    device: &Device,
) -> Result<(ClassificationAccumulator, SegmentationAccumulator)> {
    if labels.len() != set.len() {
        return Err(TrainError::BadInput(format!(
            "{} image labels for {} images; expected one per image",
            labels.len(),
            set.len()
        )));
    }
    let mut cls = ClassificationAccumulator::with_class_names(class_names.to_vec())?;
    let mut seg = SegmentationAccumulator::new(seg_classes)?;
    let rows: Vec<usize> = (0..set.len()).collect();
    let read = |t: Tensor<2>| -> Result<Vec<f32>> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec()
            .map_err(|e| TrainError::Runtime(format!("reading predictions: {e:?}")))
    };
    for chunk in rows.chunks(MULTITASK_EVAL_BATCH) {
        let (x, _, truth) = set.batch(chunk, None, device);
        let (class_logits, seg_logits) = model.forward(x);
        let probs = read(softmax(class_logits, 1))?;
        let chunk_labels: Vec<usize> = chunk.iter().map(|&r| labels[r]).collect();
        cls.update(&chunk_labels, &probs)?;
        let pred = crate::tasks::predicted_classes(seg_logits)?;
        let truth: Vec<usize> = truth.into_iter().map(usize::from).collect();
        seg.update(&truth, &pred)?;
    }
    Ok((cls, seg))
}

/// The JSON of `kestrel eval` for a multi-task run: the classification report's fields, then
/// the segmentation report's.
#[derive(Clone, Debug, Serialize)]
pub struct MultiTaskEvalReport {
    /// `val` or `test`.
    pub split: String,
    /// Classification metrics (accuracy, macro_f1, per_class, roc_auc_ovr_macro, confusion).
    #[serde(flatten)]
    pub classification: ClassificationSummary,
    /// Mean IoU over the classes with a defined IoU.
    pub miou: Option<f64>,
    /// Correct pixels over scored pixels.
    pub pixel_accuracy: Option<f64>,
    /// IoU of each mask class (null when neither present nor predicted).
    pub iou_per_class: Vec<Option<f64>>,
    /// Mask class names, in index order.
    pub seg_class_names: Vec<String>,
}

/// The image labels of `indices` of `ds`.
pub fn labels_of(ds: &dyn kestrel_data::Dataset, indices: &[usize]) -> Vec<usize> {
    let all = ds.labels();
    indices.iter().map(|&i| all[i]).collect()
}

impl MultiTaskEvalReport {
    /// The report of split `split` from both tasks' accumulators of all its images;
    /// `seg_class_names` are the mask classes.
    pub(crate) fn new(
        split: &str,
        cls: &ClassificationAccumulator,
        seg_class_names: &[String],
        seg: &SegmentationAccumulator,
    ) -> Result<Self> {
        let seg_scores = seg.summary();
        Ok(Self {
            split: split.to_string(),
            classification: cls.summary()?,
            miou: seg_scores.miou,
            pixel_accuracy: seg_scores.pixel_accuracy,
            iou_per_class: seg_scores.iou_per_class,
            seg_class_names: seg_class_names.to_vec(),
        })
    }
}

/// Both tasks' accumulators of the best checkpoint of the multi-task run `run` (whose model
/// `spec` is) on the dataset items `items` (its split or a shard of it), with the mask class
/// names.
pub(crate) fn score(
    run: &OpenRun,
    spec: &MultiTaskSpec,
    items: &[usize],
) -> Result<(
    ClassificationAccumulator,
    Vec<String>,
    SegmentationAccumulator,
)> {
    let meta = &run.ckpt.meta;
    let cfg = &meta.config;
    run.check_classes(&run.ds.class_names())?;
    let seg_names = seg_class_names(&run.data, run.ds.as_ref());
    if seg_names.len() != spec.seg_classes {
        return Err(TrainError::BadInput(format!(
            "data `{}` now has {} mask classes, the run was trained on {}",
            cfg.data,
            seg_names.len(),
            spec.seg_classes
        )));
    }
    let set = SegSet::load(
        run.ds.as_ref(),
        items,
        cfg.resolution,
        &meta.normalize,
        spec.seg_classes,
    )?;
    let labels = labels_of(run.ds.as_ref(), items);
    let device = Device::flex();
    let model = run.ckpt.multitask_model(&device)?;
    let (cls, seg) = accumulate_multitask(
        &model,
        &set,
        &labels,
        &meta.class_names,
        spec.seg_classes,
        &device,
    )?;
    Ok((cls, seg_names, seg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_nn::models::multitask::MultiTaskSpec;
    use kestrel_nn::upsample::UpsamplerKind;

    #[test]
    fn an_untrained_model_scores_as_chance_and_background() {
        // Zero score layers: every pixel is predicted background, so pixel accuracy is the
        // background share (brute force over the masks). A zero-weight classifier gives equal
        // logits: argmax takes class 0, so accuracy is the share of label 0.
        let ds = kestrel_data::Shapes::new(kestrel_data::ShapesConfig {
            n: 6,
            size: 32,
            classes: 3,
            imbalance: 1.0,
            seed: 3,
        })
        .unwrap();
        let rows: Vec<usize> = (0..6).collect();
        let set = SegSet::load(&ds, &rows, 32, &kestrel_data::Normalize::IMAGENET, 4).unwrap();
        let labels = labels_of(&ds, &rows);
        let device = Device::flex();
        let mut model = MultiTaskSpec {
            backbone: "fcn8s-mobilenet-v2".parse().unwrap(),
            width: 0.25,
            num_classes: 3,
            seg_classes: 4,
            upsampler: UpsamplerKind::Bilinear,
            cascade: false,
        }
        .init(&device)
        .unwrap();
        model.classifier.weight =
            burn::module::Param::from_tensor(model.classifier.weight.val().zeros_like());
        let names: Vec<String> = ds.class_names();
        let s = evaluate_multitask(&model, &set, &labels, &names, 4, &device).unwrap();
        let bg = set.masks.iter().filter(|&&m| m == 0).count() as f64 / set.masks.len() as f64;
        assert!((s.segmentation.pixel_accuracy.unwrap() - bg).abs() < 1e-12);
        let zeros = labels.iter().filter(|&&l| l == 0).count() as f64 / labels.len() as f64;
        assert!((s.classification.accuracy - zeros).abs() < 1e-12);
        let val = s.val_map();
        assert_eq!(
            val.keys().collect::<Vec<_>>(),
            ["accuracy", "macro_f1", "miou", "pixel_accuracy"]
        );
        assert!((s.combined() - 0.5 * (val["accuracy"] + val["miou"])).abs() < 1e-15);
        let e = evaluate_multitask(&model, &set, &labels[..2], &names, 4, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels"), "{e}");
    }
}
