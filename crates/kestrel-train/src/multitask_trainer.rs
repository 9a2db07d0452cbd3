//! The multi-task training loop (`task = multitask`): one backbone with a classification head and
//! an FCN head ([`MultiTask`]), trained on data with both an image label and a mask per image
//! (`shapes`), the task losses weighted by [`LossWeighting`]. Validated every epoch on both
//! tasks; `last` and `best` checkpoints, best by the mean of val accuracy and val mIoU; test
//! never touched.
//!
//! The step itself lives in [`crate::multitask_step`], the scoring in
//! [`crate::multitask_eval`]; this file only draws batches, steps the optimiser and logs.

use crate::checkpoint::{self, CheckpointMeta};
use crate::config::{Augment, TrainConfig};
use crate::error::{Result, TrainError};
use crate::multitask_eval::{combined_metric, evaluate_multitask, labels_of};
use crate::multitask_step::{train_step, TASKS};
use crate::optim::Optim;
use crate::run_dir::{self, EpochRecord, MultiTaskEpochRecord, Summary};
use crate::seg_set::{seg_class_names, SegSet};
use crate::trainer::{schedule_and_bar, Progress, NORMALIZE};
use crate::weighting::LossWeighting;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kestrel_data::rng::Rng;
use kestrel_data::OpenOptions;
use kestrel_nn::multitask::{MultiTask, MultiTaskSpec};
use kestrel_nn::ClassifierSpec;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// `(task name, value)` pairs of the two tasks as a map.
fn per_task(values: &[f64]) -> BTreeMap<String, f64> {
    TASKS
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

/// Trains the multi-task model of `cfg` (`task = multitask`), writing the run folder `out`.
pub fn train_multitask(cfg: &TrainConfig, out: &Path, progress: Progress) -> Result<Summary> {
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
    let class_names = ds.class_names();
    if class_names.len() < 2 {
        return Err(TrainError::BadInput(format!(
            "data `{}` has {} image class(es); `--task multitask` needs at least 2 image classes and a mask per image (e.g. `shapes`)",
            cfg.data,
            class_names.len()
        )));
    }
    let seg_names = seg_class_names(&spec, ds.as_ref());
    let k = seg_names.len();
    let split = cfg.training_split(ds.as_ref())?;
    let train_set = SegSet::load(ds.as_ref(), &split.train, cfg.resolution, &NORMALIZE, k)?;
    let val_set = SegSet::load(ds.as_ref(), &split.val, cfg.resolution, &NORMALIZE, k)?;
    let train_labels = labels_of(ds.as_ref(), &split.train);
    let val_labels = labels_of(ds.as_ref(), &split.val);

    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let mt_spec = MultiTaskSpec {
        backbone: name,
        width: cfg.width,
        num_classes: class_names.len(),
        seg_classes: k,
        upsampler: cfg.upsampler,
        cascade: cfg.cascade,
    };
    let mut model: MultiTask = mt_spec
        .init(&device)
        .map_err(|e| TrainError::BadInput(format!("bad multitask model: {e}")))?;
    let mut weighting = LossWeighting::new(
        cfg.weighting,
        TASKS.len(),
        &cfg.task_weights,
        cfg.gradnorm_alpha,
    )?;
    // Per-task learning rates: parameter groups by module path (`[optim.groups]`), e.g. one
    // matching `classifier.` for the classification head; built before the run folder, so a
    // group that matches nothing is bad input.
    let steps_per_epoch = train_set.len() / cfg.batch_size;
    let mut optim = Optim::new(cfg, &model, steps_per_epoch)?;
    run_dir::create(out)?;
    run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;
    let (_, bar) = schedule_and_bar(cfg, steps_per_epoch, progress);
    // The learning rate the weighting's own parameters (uncertainty's s) follow: the default
    // group's.
    let main_lr = |lrs: &BTreeMap<String, f64>| {
        lrs.get("default")
            .or_else(|| lrs.values().next())
            .copied()
            .unwrap_or(cfg.lr)
    };
    let say = |line: String| {
        if progress != Progress::Quiet {
            bar.suspend(|| eprintln!("{line}"));
        }
    };

    let meta_model = ClassifierSpec {
        arch: name.backbone,
        width: cfg.width,
        num_classes: class_names.len(),
    };
    let mut records = String::new();
    let mut best: Option<(usize, BTreeMap<String, f64>)> = None;
    let mut step = 0usize;
    let eval_device = Device::flex();
    for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        let mut rng = Rng::stream(cfg.seed, 4_000_000 + epoch as u64);
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        rng.shuffle(&mut order);
        let mut loss_sums = [0.0f64; 2];
        let (mut seen, mut correct) = (0usize, 0usize);
        let mut lrs = optim.lrs(step);
        // The last incomplete batch is dropped: a batch of one would break BatchNorm.
        for rows in order.chunks_exact(cfg.batch_size) {
            lrs = optim.lrs(step);
            let lr = main_lr(&lrs);
            let ops: Vec<usize> = rows.iter().map(|_| rng.below(8)).collect();
            let ops = (cfg.augment == Augment::Flips).then_some(&ops[..]);
            let (x, masks, _) = train_set.batch(rows, ops, &device);
            let batch_labels: Vec<usize> = rows.iter().map(|&r| train_labels[r]).collect();
            let y = Tensor::<1, Int>::from_data(
                TensorData::new(
                    batch_labels.iter().map(|&l| l as i64).collect::<Vec<i64>>(),
                    [rows.len()],
                ),
                &device,
            );
            let (grads, stats) = match train_step(&model, &mut weighting, x, y, masks, lr) {
                Ok(r) => r,
                Err(TrainError::Runtime(why)) => {
                    bar.finish_and_clear();
                    return Err(TrainError::Runtime(format!(
                        "{why} at epoch {epoch}, step {step}; the last good checkpoint is {}; lower --lr",
                        run_dir::last_checkpoint(out).display()
                    )));
                }
                Err(e) => return Err(e),
            };
            model = optim.step(step, model, grads);
            step += 1;
            for (sum, l) in loss_sums.iter_mut().zip(stats.losses) {
                *sum += l * rows.len() as f64;
            }
            seen += rows.len();
            correct += stats
                .class_pred
                .iter()
                .zip(&batch_labels)
                .filter(|(p, t)| p == t)
                .count();
            bar.set_message(format!(
                "epoch {epoch}/{}  loss classify {:.4} segment {:.4}  acc {:.3}  {:.1} img/s",
                cfg.epochs,
                loss_sums[0] / seen as f64,
                loss_sums[1] / seen as f64,
                correct as f64 / seen as f64,
                seen as f64 / epoch_start.elapsed().as_secs_f64()
            ));
            bar.inc(1);
        }
        let mean_losses: Vec<f64> = loss_sums.iter().map(|s| s / seen.max(1) as f64).collect();
        // The weights this epoch trained with (DWA's change at the epoch's end applies next).
        let weights = weighting.weights();
        weighting.end_epoch(&mean_losses);

        let eval_model = model.valid();
        let scores = evaluate_multitask(
            &eval_model,
            &val_set,
            &val_labels,
            &class_names,
            k,
            &eval_device,
        )?;
        let val = scores.val_map();
        let combined = combined_metric(&val);
        let record = MultiTaskEpochRecord {
            record: EpochRecord {
                epoch,
                train_loss: per_task(&mean_losses),
                train_accuracy: correct as f64 / seen.max(1) as f64,
                val: val.clone(),
                lr: lrs.clone(),
                seconds: epoch_start.elapsed().as_secs_f64(),
                near_zero_share: (cfg.l1 > 0.0).then(|| optim.sparsity(&eval_model)),
            },
            task_weights: per_task(&weights),
        };
        records.push_str(&serde_json::to_string(&record).expect("serialisable"));
        records.push('\n');
        run_dir::write(&out.join(run_dir::METRICS), records.as_bytes())?;

        let meta = CheckpointMeta {
            epoch,
            step,
            config: cfg.clone(),
            model: meta_model.clone(),
            segmenter: None,
            class_names: class_names.clone(),
            normalize: NORMALIZE,
            val_metric: combined,
            loop_state: None,
        };
        let model_bytes = checkpoint::encode_model(&eval_model)?;
        checkpoint::save_multitask(
            &run_dir::last_checkpoint(out),
            &meta,
            &mt_spec,
            &model_bytes,
            Some(optim.module_optimizer()),
        )?;
        let improved = best
            .as_ref()
            .is_none_or(|(_, b)| combined > combined_metric(b));
        if improved {
            checkpoint::save_multitask(
                &run_dir::best_checkpoint(out),
                &meta,
                &mt_spec,
                &model_bytes,
                None,
            )?;
            best = Some((epoch, val.clone()));
        }
        say(format!(
            "epoch {epoch}/{}  train loss classify {:.4} segment {:.4}  weights {:.3}/{:.3}  |  val acc {:.4}  macro-F1 {:.4}  mIoU {:.4}  pixel acc {:.4}{}  |  {:.1} s",
            cfg.epochs,
            mean_losses[0],
            mean_losses[1],
            weights[0],
            weights[1],
            val["accuracy"],
            val["macro_f1"],
            val["miou"],
            val["pixel_accuracy"],
            if improved { "  (best)" } else { "" },
            record.record.seconds
        ));
    }
    bar.finish_and_clear();
    let (best_epoch, best_val) = best.expect("at least one epoch ran");
    let summary = Summary {
        task: "multitask".into(),
        model: cfg.model.clone(),
        best_epoch,
        epochs_run: cfg.epochs,
        val: best_val,
        test_evaluated: false,
        train_seconds: started.elapsed().as_secs_f64(),
    };
    run_dir::write_json(&out.join(run_dir::SUMMARY), &summary)?;
    // The report's curves (per-task losses, task weights, learning rates, val metrics); the best
    // model's confusion and IoU plots need the multi-task evaluation, not yet in the report.
    let report = crate::report::ReportInputs::read(out).and_then(|i| crate::report::write(out, &i));
    if let Err(e) = report {
        if progress != Progress::Quiet {
            eprintln!("warning: report.html not written ({e})");
        }
    }
    Ok(summary)
}
