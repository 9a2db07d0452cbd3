//! The training loop: train on train, validate every epoch, keep `last` and `best` checkpoints, never
//! touch test.

use crate::checkpoint::{self, CheckpointMeta};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::run_dir::{self, EpochRecord, Summary};
use crate::schedule::WarmupCosine;
use crate::tensor_set::TensorSet;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kestrel_data::rng::Rng;
use kestrel_data::Normalize;
use kestrel_metrics::ConfusionMatrix;
use kestrel_nn::ClassifierSpec;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Normalisation of every kestrel model input: the ImageNet statistics, as torchvision.
pub const NORMALIZE: Normalize = Normalize::IMAGENET;

/// How the loop reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar and per-epoch lines on stderr.
    Bar,
    /// Per-epoch lines on stderr only.
    Lines,
    /// Nothing.
    Quiet,
}

fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    match cfg.optimizer {
        crate::config::OptimizerKind::AdamW => AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(cfg.weight_decay as f32)
            .init(),
        crate::config::OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
            .with_weight_decay(
                (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32)),
            )
            .init(),
    }
}

/// Trains a classifier as `cfg` says, writing the run folder `out`. Returns the summary.
pub fn train(cfg: &TrainConfig, out: &Path, progress: Progress) -> Result<Summary> {
    let (spec, arch) = cfg.validate()?;
    let started = Instant::now();
    let ds = kestrel_data::open(&spec)?;
    let class_names = ds.class_names();
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
    run_dir::create(out)?;
    run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;

    let train_set = TensorSet::load(ds.as_ref(), &split.train, cfg.resolution, &NORMALIZE)?;
    let val_set = TensorSet::load(ds.as_ref(), &split.val, cfg.resolution, &NORMALIZE)?;

    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let model_spec = ClassifierSpec {
        arch,
        width: cfg.width,
        num_classes: class_names.len(),
    };
    let mut model = model_spec.init(&device);
    let mut optim = build_optimizer(cfg);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);

    let steps_per_epoch = train_set.len() / cfg.batch_size;
    let total_steps = steps_per_epoch * cfg.epochs;
    let schedule = WarmupCosine {
        peak: cfg.lr,
        warmup: (cfg.warmup_epochs * steps_per_epoch as f64).round() as usize,
        total: total_steps,
    };
    let bar = match progress {
        Progress::Bar => {
            ProgressBar::with_draw_target(Some(total_steps as u64), ProgressDrawTarget::stderr())
        }
        _ => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .expect("valid template"),
    );
    let say = |line: String| {
        if progress != Progress::Quiet {
            bar.suspend(|| eprintln!("{line}"));
        }
    };

    let mut records = String::new();
    let mut best: Option<(usize, BTreeMap<String, f64>)> = None;
    let mut step = 0usize;
    let eval_device = Device::flex();
    for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        Rng::stream(cfg.seed, 1_000_000 + epoch as u64).shuffle(&mut order);
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let mut train_confusion = ConfusionMatrix::new(class_names.len())?;
        let mut lr = schedule.lr(step);
        let mut aug_rng = Rng::stream(cfg.seed, 2_000_000 + epoch as u64);
        // Drop the last incomplete batch: a batch of one would break BatchNorm's statistics.
        for rows in order.chunks_exact(cfg.batch_size) {
            lr = schedule.lr(step);
            let (x, y) = train_set.batch_with(rows, &device, cfg.augment.then_some(&mut aug_rng));
            let logits = model.forward(x);
            let pred: Vec<usize> = logits
                .clone()
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .map(|v| v.into_iter().map(|p| p as usize).collect())
                .map_err(|e| TrainError::Runtime(format!("reading predictions: {e:?}")))?;
            let loss = loss_fn.forward(logits, y);
            let loss_value: f64 = loss.clone().into_scalar::<f32>() as f64;
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
            let truth: Vec<usize> = rows.iter().map(|&r| train_set.labels[r]).collect();
            train_confusion.update(&truth, &pred, None)?;
            let train_accuracy = train_confusion.accuracy().unwrap_or(0.0);
            let elapsed = epoch_start.elapsed().as_secs_f64();
            bar.set_message(format!(
                "epoch {epoch}/{}  loss {:.4}  acc {:.3}  {:.0} img/s",
                cfg.epochs,
                loss_sum / seen as f64,
                train_accuracy,
                seen as f64 / elapsed
            ));
            bar.inc(1);
        }

        let eval_model = model.valid();
        let summary = evaluate(&eval_model, &val_set, &class_names, &eval_device)?;
        let val: BTreeMap<String, f64> = [
            ("accuracy".to_string(), summary.accuracy),
            ("macro_f1".to_string(), summary.macro_f1),
        ]
        .into();
        let train_loss = loss_sum / seen.max(1) as f64;
        let record = EpochRecord {
            epoch,
            train_loss: [("classify".to_string(), train_loss)].into(),
            train_accuracy: train_confusion.accuracy().unwrap_or(0.0),
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
            model: model_spec.clone(),
            class_names: class_names.clone(),
            normalize: NORMALIZE,
            val_metric: summary.accuracy,
        };
        let model_bytes = checkpoint::encode_model(&eval_model)?;
        checkpoint::save(
            &run_dir::last_checkpoint(out),
            &meta,
            &model_bytes,
            Some(&optim),
        )?;
        let improved = best
            .as_ref()
            .is_none_or(|(_, b)| summary.accuracy > b["accuracy"]);
        if improved {
            checkpoint::save(&run_dir::best_checkpoint(out), &meta, &model_bytes, None)?;
            best = Some((epoch, val.clone()));
        }
        say(format!(
            "epoch {epoch}/{}  train loss {train_loss:.4}  acc {:.3}  |  val acc {:.4}  macro-F1 {:.4}{}  |  {:.1} s",
            cfg.epochs,
            record.train_accuracy,
            summary.accuracy,
            summary.macro_f1,
            if improved { "  (best)" } else { "" },
            record.seconds
        ));
    }
    bar.finish_and_clear();
    let (best_epoch, best_val) = best.expect("at least one epoch ran");
    let summary = Summary {
        task: "classify".into(),
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
