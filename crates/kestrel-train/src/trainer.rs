//! The training loop: train on train, validate every epoch, keep `last` and `best` checkpoints, never
//! touch test.

use crate::balance::{epoch_rows, loss_weights};
use crate::checkpoint::{self, CheckpointMeta};
use crate::config::{Augment, Balance, TrainConfig};
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::loss::CrossEntropy;
use crate::run_dir::{self, EpochRecord, Summary};
use crate::schedule::WarmupCosine;
use crate::tensor_set::{batch_tensors, TensorSet, TensorSource};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kestrel_data::loader::{chunk_plan, BatchSource, Loader, LoaderOptions, PlannedSample};
use kestrel_data::rng::Rng;
use kestrel_data::{standard_augment, Dataset, DecodeSource, Normalize, OpenOptions};
use kestrel_metrics::ConfusionMatrix;
use kestrel_nn::ClassifierSpec;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
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

pub(crate) fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
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

/// The learning-rate schedule (warm-up, then cosine decay over every step) and the progress bar
/// (hidden unless `progress` is [`Progress::Bar`]) of a run of `steps_per_epoch` × epochs steps.
pub(crate) fn schedule_and_bar(
    cfg: &TrainConfig,
    steps_per_epoch: usize,
    progress: Progress,
) -> (WarmupCosine, ProgressBar) {
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
    (schedule, bar)
}

/// Threads of the training loader: up to 4, fewer on smaller machines.
fn loader_options() -> LoaderOptions {
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 4);
    LoaderOptions {
        workers,
        prefetch: 2 * workers,
    }
}

/// Trains a classifier (or, for `task = segment`, an FCN: see [`crate::seg_trainer`]) as `cfg` says, writing the run folder `out`. Returns the summary.
pub fn train(cfg: &TrainConfig, out: &Path, progress: Progress) -> Result<Summary> {
    if cfg.task == crate::config::Task::Segment {
        return crate::seg_trainer::train_segment(cfg, out, progress);
    }
    let (spec, arch) = cfg.validate()?;
    let started = Instant::now();
    let opened = kestrel_data::open_with(
        &spec,
        OpenOptions {
            skip_bad: cfg.skip_bad,
        },
    )?;
    if cfg.skip_bad && progress != Progress::Quiet {
        const SHOWN: usize = 5;
        for s in opened.skipped.iter().take(SHOWN) {
            eprintln!("skipped {}: {}", s.key, s.reason);
        }
        if opened.skipped.len() > SHOWN {
            eprintln!("... and {} more", opened.skipped.len() - SHOWN);
        }
        eprintln!(
            "--skip-bad: skipped {} unreadable item(s) of {}",
            opened.skipped.len(),
            opened.skipped.len() + opened.dataset.len()
        );
    }
    let ds: Arc<dyn Dataset> = Arc::from(opened.dataset);
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

    // The training images: decoded once (augment none / flips) or on every epoch (standard).
    let mut train_set = None;
    let mut train_labels: Vec<usize> = {
        let all = ds.labels();
        split.train.iter().map(|&i| all[i]).collect()
    };
    if cfg.augment != Augment::Standard {
        let mut set = TensorSet::load(ds.as_ref(), &split.train, cfg.resolution, &NORMALIZE)?;
        if cfg.balance == Balance::Smote {
            let added = set.smote(&class_names, cfg.seed)?;
            if progress != Progress::Quiet {
                eprintln!("--balance smote: added {added} synthetic training images");
            }
        }
        train_labels = set.labels.clone();
        train_set = Some(Arc::new(set));
    }
    // Checks --interleave (and the re-sampled size) before anything is written.
    let rows_per_epoch = epoch_rows(&train_labels, cfg.balance, cfg.interleave, cfg.seed, 1)?.len();
    if rows_per_epoch < cfg.batch_size {
        return Err(TrainError::BadInput(format!(
            "--balance {:?} leaves {rows_per_epoch} training images per epoch; expected at least one batch ({})",
            cfg.balance, cfg.batch_size
        )));
    }
    let source: Arc<dyn BatchSource> = match &train_set {
        Some(set) => Arc::new(TensorSource {
            set: set.clone(),
            flips: cfg.augment == Augment::Flips,
        }),
        None => Arc::new(DecodeSource::new(
            ds.clone(),
            cfg.resolution as u32,
            NORMALIZE,
            Some(standard_augment(cfg.resolution as u32)),
        )?),
    };
    // Loader indices: rows of the preloaded set, or dataset indices when decoding.
    let to_index = |row: usize| match &train_set {
        Some(_) => row,
        None => split.train[row],
    };

    run_dir::create(out)?;
    run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;

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
    let weighted_loss = match cfg.balance {
        // PyTorch's weighted mean: Σ w_y·loss / Σ w_y.
        Balance::Weights => {
            Some(CrossEntropy::new().with_weights(Some(loss_weights(&train_labels, &class_names)?)))
        }
        _ => None,
    };

    let steps_per_epoch = rows_per_epoch / cfg.batch_size;
    let (schedule, bar) = schedule_and_bar(cfg, steps_per_epoch, progress);
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
        let rows = epoch_rows(&train_labels, cfg.balance, cfg.interleave, cfg.seed, epoch)?;
        // Each sample's seed, drawn here in epoch order, fixes its augmentation whatever thread
        // loads it (for flips: the same draws as the first, single-threaded trainer).
        let mut seeds = Rng::stream(cfg.seed, 2_000_000 + epoch as u64);
        let samples: Vec<PlannedSample> = rows
            .iter()
            .map(|&r| PlannedSample {
                index: to_index(r),
                seed: seeds.next_u64(),
            })
            .collect();
        // Drop the last incomplete batch: a batch of one would break BatchNorm's statistics.
        let plan = chunk_plan(&samples, cfg.batch_size, true);
        let loader = Loader::spawn(source.clone(), plan, loader_options());
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let mut train_confusion = ConfusionMatrix::new(class_names.len())?;
        let mut lr = schedule.lr(step);
        for batch in loader {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    bar.finish_and_clear();
                    return Err(e.into());
                }
            };
            lr = schedule.lr(step);
            let (x, y) = batch_tensors(&batch, cfg.resolution, &device);
            let logits = model.forward(x);
            let pred: Vec<usize> = logits
                .clone()
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .map(|v| v.into_iter().map(|p| p as usize).collect())
                .map_err(|e| TrainError::Runtime(format!("reading predictions: {e:?}")))?;
            let loss = match &weighted_loss {
                Some(w) => w.forward(logits, y)?,
                None => loss_fn.forward(logits, y),
            };
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
            let n = batch.labels.len();
            loss_sum += loss_value * n as f64;
            seen += n;
            train_confusion.update(&batch.labels, &pred, None)?;
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
            segmenter: None,
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
