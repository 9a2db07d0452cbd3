//! Segmentation training (`task = segment`): the [`TaskLoop`] of an FCN trained with per-pixel
//! cross-entropy (mask value 255 ignored), validated every epoch by mean IoU (the default
//! `val_metric`) and pixel accuracy, on the shared driver of [`crate::driver`]; test never
//! touched.

pub(crate) mod data;
pub(crate) mod eval;
pub(crate) mod predict;

use crate::config::NORMALIZE;
use crate::config::{Balance, Task, TrainConfig};
use crate::driver::checkpoint::Checkpoint;
use crate::driver::WeightsRecord;
use crate::driver::{ModelMeta, Progress, StepLoss, TaskLoop};
use crate::error::{Result, TrainError};
use crate::loss::CrossEntropy;
use crate::tasks::segment::data::{seg_class_names, SegSet};
use crate::tasks::segment::eval::pixel_confusion_part;
use burn::tensor::Device;
use kestrel_data::imbalance::{inverse_frequency_weights_or_zero, mask_pixel_counts};
use kestrel_data::rng::Rng;
use kestrel_data::{Shard, IGNORE_LABEL};
use kestrel_nn::models::fcn::{Fcn, SegmenterSpec};
use kestrel_nn::ModelSpec;
use std::collections::BTreeMap;
use std::path::Path;

/// Inverse-frequency pixel weights `n / (K · n_c)` over the non-ignored pixels of `masks`
/// (PyTorch's weighted-mean convention then applies); a class with no pixel gets weight 0.
pub fn pixel_class_weights(masks: &[u8], classes: usize) -> Vec<f32> {
    inverse_frequency_weights_or_zero(&mask_pixel_counts(masks, classes))
        .into_iter()
        .map(|w| w as f32)
        .collect()
}

/// The segmentation task (`task = segment`): an FCN trained with per-pixel cross-entropy (mask
/// value 255 ignored; class-weighted for `balance = weights`), validated by mean IoU and pixel
/// accuracy.
pub struct SegmentTask {
    cfg: TrainConfig,
    class_names: Vec<String>,
    seg_spec: SegmenterSpec,
    train_set: SegSet,
    val_set: SegSet,
    loss_fn: CrossEntropy,
    eval_device: Device,
    /// This process's part of every batch (data-parallel training).
    shard: Shard,
    /// The epoch's stream: its shuffle, then each batch's flip/turn draws.
    rng: Rng,
    order: Vec<usize>,
    next: usize,
    correct: u64,
    counted: u64,
}

impl SegmentTask {
    /// Opens the data of `cfg` (masks and images, at `cfg.resolution`); bad data or settings are
    /// bad input.
    pub fn new(cfg: &TrainConfig, progress: Progress) -> Result<Self> {
        let (spec, _) = cfg.validate()?;
        let name = cfg.segmenter_name()?;
        let ds = cfg.open_data(&spec, progress != Progress::Quiet)?;
        let class_names = seg_class_names(&spec, ds.as_ref());
        let k = class_names.len();
        let split = cfg.training_split(ds.as_ref())?;
        let train_set = SegSet::load(ds.as_ref(), &split.train, cfg.resolution, &NORMALIZE, k)?;
        let val_set = SegSet::load(ds.as_ref(), &split.val, cfg.resolution, &NORMALIZE, k)?;
        let seg_spec = SegmenterSpec {
            name,
            width: cfg.width,
            num_classes: k,
            output_stride: cfg.output_stride,
            upsampler: cfg.upsampler,
        };
        let weights =
            (cfg.balance == Balance::Weights).then(|| pixel_class_weights(&train_set.masks, k));
        Ok(Self {
            cfg: cfg.clone(),
            class_names,
            seg_spec,
            train_set,
            val_set,
            loss_fn: CrossEntropy::segmentation().with_weights(weights),
            eval_device: Device::flex(),
            shard: Shard::WHOLE,
            rng: Rng::stream(cfg.seed, 3_000_000),
            order: Vec::new(),
            next: 0,
            correct: 0,
            counted: 0,
        })
    }
}

impl TaskLoop for SegmentTask {
    type Model = Fcn;

    fn name(&self) -> &'static str {
        Task::Segment.name()
    }

    fn init_model(&self, device: &Device) -> Result<Fcn> {
        self.seg_spec
            .init(device)
            .map_err(|e| TrainError::BadInput(format!("bad segmentation model: {e}")))
    }

    fn fit_weights(&self, model: Fcn, path: &Path) -> Result<(Fcn, WeightsRecord)> {
        crate::driver::weights::fit(model, path)
    }

    fn load_model(&self, ckpt: &Checkpoint, device: &Device) -> Result<Fcn> {
        ckpt.segmenter(device)
    }

    fn model_meta(&self) -> ModelMeta {
        ModelMeta {
            spec: ModelSpec::Segmenter(self.seg_spec.clone()),
            class_names: self.class_names.clone(),
        }
    }

    fn steps_per_epoch(&self) -> usize {
        self.train_set.len() / self.cfg.batch_size
    }

    fn start_epoch(&mut self, epoch: usize) -> Result<()> {
        self.rng = Rng::stream(self.cfg.seed, 3_000_000 + epoch as u64);
        self.order = (0..self.train_set.len()).collect();
        self.rng.shuffle(&mut self.order);
        self.next = 0;
        (self.correct, self.counted) = (0, 0);
        Ok(())
    }

    fn next_step(&mut self, model: &Fcn, device: &Device) -> Result<Option<StepLoss>> {
        let bs = self.cfg.batch_size;
        // The last incomplete batch is dropped: a batch of one would break BatchNorm.
        if self.next + bs > self.order.len() {
            return Ok(None);
        }
        let rows = &self.order[self.next..self.next + bs];
        self.next += bs;
        // One draw per image whatever the setting, so that the draws stay where they were.
        let n = self.cfg.augment.ops();
        let ops: Vec<usize> = rows
            .iter()
            .map(|_| self.rng.below(n.unwrap_or(8)))
            .collect();
        // This replica's part of the batch (data-parallel training; the whole batch alone).
        let (rows, ops) = (self.shard.slice(rows), self.shard.slice(&ops));
        let ops = n.map(|_| ops);
        let (x, y, y_host) = self.train_set.batch(rows, ops, device);
        let logits = model.forward(x);
        let pred = crate::tasks::predicted_classes(logits.clone())?;
        for (&t, &p) in y_host.iter().zip(&pred) {
            if t != IGNORE_LABEL {
                self.counted += 1;
                self.correct += u64::from(t as usize == p);
            }
        }
        let loss = self.loss_fn.forward_nchw(logits, y)?;
        Ok(Some(StepLoss {
            loss,
            samples: rows.len(),
        }))
    }

    fn train_accuracy(&self) -> (&'static str, f64) {
        (
            "pixel acc",
            self.correct as f64 / self.counted.max(1) as f64,
        )
    }

    fn shard_batches(&mut self, shard: Shard) -> Result<()> {
        self.shard = crate::tasks::batch_shard(self.cfg.batch_size, shard)?;
        Ok(())
    }

    fn validation_counts(&self, model: &Fcn, shard: Shard) -> Result<Option<Vec<f64>>> {
        let k = self.class_names.len();
        let acc = pixel_confusion_part(model, &self.val_set, k, shard, &self.eval_device)?;
        Ok(Some(acc.confusion().rows().concat()))
    }

    fn metrics_from_counts(&self, counts: &[f64]) -> Result<BTreeMap<String, f64>> {
        let cm = crate::tasks::confusion_from_counts(counts, self.class_names.len())?;
        let scores = kestrel_metrics::iou::iou(&cm);
        Ok([
            ("miou".to_string(), scores.miou.unwrap_or(0.0)),
            (
                "pixel_accuracy".to_string(),
                scores.pixel_accuracy.unwrap_or(0.0),
            ),
        ]
        .into())
    }

    fn val_text(&self, val: &BTreeMap<String, f64>) -> String {
        format!(
            "val mIoU {:.4}  pixel acc {:.4}",
            val["miou"], val["pixel_accuracy"]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_weights_are_inverse_frequency_ignoring_255() {
        // 6 counted pixels: class 0 ×3, class 1 ×2, class 2 ×1; class 3 absent.
        // sklearn's compute_class_weight("balanced"): n / (K · n_c) with K the classes present…
        // here K is the model's class count (4), as the classification weights use.
        let masks = [0, 0, 0, 1, 1, 2, 255, 255];
        let w = pixel_class_weights(&masks, 4);
        let want = [6.0 / 12.0, 6.0 / 8.0, 6.0 / 4.0, 0.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
    }
}
