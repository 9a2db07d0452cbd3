//! The segmentation training loop (`task = segment`): an FCN trained with per-pixel
//! cross-entropy (mask value 255 ignored), validated every epoch by mean IoU; `last` and `best`
//! (by val mIoU) checkpoints; test never touched.

use crate::checkpoint::{self, CheckpointMeta};
use crate::config::{Augment, Balance, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loss::CrossEntropy;
use crate::run_dir::{self, EpochRecord, Summary};
use crate::seg_eval::evaluate_segmenter;
use crate::seg_set::{seg_class_names, SegSet, IGNORE};
use crate::trainer::{build_optimizer, schedule_and_bar, Progress, NORMALIZE};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use kestrel_data::rng::Rng;
use kestrel_data::OpenOptions;
use kestrel_nn::fcn::SegmenterSpec;
use kestrel_nn::ClassifierSpec;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Output stride of the backbone of every segmentation run (the FCN paper's: no dilation).
pub const OUTPUT_STRIDE: usize = 32;

/// Inverse-frequency pixel weights `n / (K · n_c)` over the non-ignored pixels of `masks`
/// (PyTorch's weighted-mean convention then applies); a class with no pixel gets weight 0.
pub fn pixel_class_weights(masks: &[u8], classes: usize) -> Vec<f32> {
    let mut counts = vec![0u64; classes];
    for &m in masks {
        if m != IGNORE && (m as usize) < classes {
            counts[m as usize] += 1;
        }
    }
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                (n as f64 / (classes as f64 * c as f64)) as f32
            }
        })
        .collect()
}

/// Trains the FCN of `cfg` (`task = segment`), writing the run folder `out`.
pub fn train_segment(cfg: &TrainConfig, out: &Path, progress: Progress) -> Result<Summary> {
    let (spec, _) = cfg.validate()?;
    let name = cfg.segmenter_name()?;
    let started = Instant::now();
    let opened = kestrel_data::open_with(
        &spec,
        OpenOptions {
            skip_bad: cfg.skip_bad,
        },
    )?;
    if cfg.skip_bad && progress != Progress::Quiet && !opened.skipped.is_empty() {
        eprintln!(
            "--skip-bad: skipped {} unreadable item(s)",
            opened.skipped.len()
        );
    }
    let ds = opened.dataset;
    let class_names = seg_class_names(&spec, ds.as_ref());
    let k = class_names.len();
    let split = cfg.split(ds.as_ref())?;
    if split.train.len() < cfg.batch_size || split.val.is_empty() {
        return Err(TrainError::BadInput(format!(
            "data `{}` gives {} training and {} validation images; expected at least one batch ({}) to train on and one image to validate on",
            cfg.data,
            split.train.len(),
            split.val.len(),
            cfg.batch_size
        )));
    }
    let train_set = SegSet::load(ds.as_ref(), &split.train, cfg.resolution, &NORMALIZE, k)?;
    let val_set = SegSet::load(ds.as_ref(), &split.val, cfg.resolution, &NORMALIZE, k)?;

    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let seg_spec = SegmenterSpec {
        name,
        width: cfg.width,
        num_classes: k,
        output_stride: OUTPUT_STRIDE,
        upsampler: cfg.upsampler,
    };
    let mut model = seg_spec
        .init(&device)
        .map_err(|e| TrainError::BadInput(format!("bad segmentation model: {e}")))?;
    run_dir::create(out)?;
    run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;

    let mut optim = build_optimizer(cfg);
    let weights =
        (cfg.balance == Balance::Weights).then(|| pixel_class_weights(&train_set.masks, k));
    let loss_fn = CrossEntropy::segmentation().with_weights(weights);

    let steps_per_epoch = train_set.len() / cfg.batch_size;
    let (schedule, bar) = schedule_and_bar(cfg, steps_per_epoch, progress);
    let say = |line: String| {
        if progress != Progress::Quiet {
            bar.suspend(|| eprintln!("{line}"));
        }
    };

    let meta_model = ClassifierSpec {
        arch: name.backbone,
        width: cfg.width,
        num_classes: k,
    };
    let mut records = String::new();
    let mut best: Option<(usize, BTreeMap<String, f64>)> = None;
    let mut step = 0usize;
    let eval_device = Device::flex();
    for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        let mut rng = Rng::stream(cfg.seed, 3_000_000 + epoch as u64);
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        rng.shuffle(&mut order);
        let (mut loss_sum, mut seen, mut correct, mut counted) = (0.0f64, 0usize, 0u64, 0u64);
        let mut lr = schedule.lr(step);
        // The last incomplete batch is dropped: a batch of one would break BatchNorm.
        for rows in order.chunks_exact(cfg.batch_size) {
            lr = schedule.lr(step);
            let ops: Vec<usize> = rows.iter().map(|_| rng.below(8)).collect();
            let ops = (cfg.augment == Augment::Flips).then_some(&ops[..]);
            let (x, y, y_host) = train_set.batch(rows, ops, &device);
            let logits = model.forward(x);
            let pred: Vec<i64> = logits
                .clone()
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .map_err(|e| TrainError::Runtime(format!("reading predictions: {e:?}")))?;
            for (&t, &p) in y_host.iter().zip(&pred) {
                if t != IGNORE {
                    counted += 1;
                    correct += u64::from(t as i64 == p);
                }
            }
            let loss = loss_fn.forward_nchw(logits, y)?;
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            if !loss_value.is_finite() {
                bar.finish_and_clear();
                return Err(TrainError::Runtime(format!(
                    "training loss became {loss_value} at epoch {epoch}, step {step}; the last good checkpoint is {}; lower --lr",
                    run_dir::last_checkpoint(out).display()
                )));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            step += 1;
            loss_sum += loss_value * rows.len() as f64;
            seen += rows.len();
            bar.set_message(format!(
                "epoch {epoch}/{}  loss {:.4}  pixel acc {:.3}  {:.1} img/s",
                cfg.epochs,
                loss_sum / seen as f64,
                correct as f64 / counted.max(1) as f64,
                seen as f64 / epoch_start.elapsed().as_secs_f64()
            ));
            bar.inc(1);
        }

        let eval_model = model.valid();
        let scores = evaluate_segmenter(&eval_model, &val_set, k, &eval_device)?;
        let miou = scores.miou.unwrap_or(0.0);
        let val: BTreeMap<String, f64> = [
            ("miou".to_string(), miou),
            (
                "pixel_accuracy".to_string(),
                scores.pixel_accuracy.unwrap_or(0.0),
            ),
        ]
        .into();
        let train_loss = loss_sum / seen.max(1) as f64;
        let record = EpochRecord {
            epoch,
            train_loss: [("segment".to_string(), train_loss)].into(),
            train_accuracy: correct as f64 / counted.max(1) as f64,
            val: val.clone(),
            lr: [("default".to_string(), lr)].into(),
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        records.push_str(&serde_json::to_string(&record).expect("serialisable"));
        records.push('\n');
        run_dir::write(&out.join(run_dir::METRICS), records.as_bytes())?;

        let meta = CheckpointMeta {
            epoch,
            step,
            config: cfg.clone(),
            model: meta_model.clone(),
            segmenter: Some(seg_spec.clone()),
            class_names: class_names.clone(),
            normalize: NORMALIZE,
            val_metric: miou,
        };
        let model_bytes = checkpoint::encode_model(&eval_model)?;
        checkpoint::save(
            &run_dir::last_checkpoint(out),
            &meta,
            &model_bytes,
            Some(&optim),
        )?;
        let improved = best.as_ref().is_none_or(|(_, b)| miou > b["miou"]);
        if improved {
            checkpoint::save(&run_dir::best_checkpoint(out), &meta, &model_bytes, None)?;
            best = Some((epoch, val.clone()));
        }
        say(format!(
            "epoch {epoch}/{}  train loss {train_loss:.4}  pixel acc {:.3}  |  val mIoU {miou:.4}  pixel acc {:.4}{}  |  {:.1} s",
            cfg.epochs,
            record.train_accuracy,
            val["pixel_accuracy"],
            if improved { "  (best)" } else { "" },
            record.seconds
        ));
    }
    bar.finish_and_clear();
    let (best_epoch, best_val) = best.expect("at least one epoch ran");
    let summary = Summary {
        task: "segment".into(),
        model: cfg.model.clone(),
        best_epoch,
        epochs_run: cfg.epochs,
        val: best_val,
        test_evaluated: false,
        train_seconds: started.elapsed().as_secs_f64(),
    };
    run_dir::write_json(&out.join(run_dir::SUMMARY), &summary)?;
    Ok(summary)
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
