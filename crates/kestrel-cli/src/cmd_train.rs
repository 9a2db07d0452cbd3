//! `kestrel train`.

use crate::exit::{print_json, CliError};
use clap::Args;
use kestrel_train::{train_replicated, Progress, RunOptions, TrainConfig};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Flags of `kestrel train`; each overrides the same key of `--config`.
#[derive(Args)]
pub struct TrainArgs {
    /// A TOML file of settings (the keys of a run's config.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data: `shapes[:n=..,size=..,classes=..,imbalance=..,seed=..]`, `folder:PATH`, `seg:PATH`, `idx:PATH`.
    #[arg(long)]
    data: Option<String>,
    /// classify (default) or segment (FCN on per-pixel masks: `shapes` or `seg:PATH` data; its
    /// defaults: fcn8s-mobilenet-v2, width 0.5, 64 px, 12 epochs, batch 16, bilinear upsampling)
    /// or multitask (one backbone, a classification and an FCN head, on data with an image label
    /// and a mask per image; the segment defaults).
    #[arg(long)]
    task: Option<String>,
    /// Multitask loss weighting: fixed (--task-weights), uncertainty (Kendall et al. 2018),
    /// gradnorm (Chen et al. 2018), dwa (Liu et al. 2019).
    #[arg(long, value_name = "MODE")]
    weighting: Option<String>,
    /// Multitask fixed weights of the classify and segment losses, e.g. `1,0.5`.
    #[arg(long, value_name = "WC,WS", value_delimiter = ',')]
    task_weights: Option<Vec<f64>>,
    /// Multitask: the classifier also reads the segmentation's predicted class-area shares.
    #[arg(long)]
    cascade: bool,
    /// Upsampling layers of a segmentation model: nearest, bilinear (default), bicubic, transposed,
    /// pixelshuffle, carafe, meta.
    #[arg(long, value_name = "NAME")]
    upsampler: Option<String>,
    /// Output stride of a segmentation model's backbone: 32 (default), or 16 / 8 with the later
    /// strides turned into dilation.
    #[arg(long, value_name = "S")]
    output_stride: Option<usize>,
    /// A split manifest from `kestrel split` fixing train/val/test membership.
    #[arg(long)]
    split_manifest: Option<PathBuf>,
    /// Model name: mobilenet-v1, mobilenet-v2, resnet18/34/50; for --task segment
    /// fcn{32,16,8}s-<mobilenet-v2|resnet18|resnet34|resnet50>.
    #[arg(long)]
    model: Option<String>,
    /// Width multiplier α.
    #[arg(long)]
    width: Option<f64>,
    /// Activation of a mobilenet-v2 classifier: relu6 (default, as the paper) or relu; other
    /// models and tasks take only relu6.
    #[arg(long, value_name = "NAME")]
    activation: Option<String>,
    /// Input resolution (square side, pixels).
    #[arg(long)]
    resolution: Option<usize>,
    /// Number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per optimiser step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the split, initialisation, shuffling and dropout.
    #[arg(long)]
    seed: Option<u64>,
    /// Optimiser, PyTorch's rules: sgd (momentum 0.9), nesterov, adam, adamw (default); per-group
    /// learning rates and weight decays go in `[optim.groups.NAME]` of --config.
    #[arg(long, value_name = "NAME")]
    optimizer: Option<String>,
    /// Weight decay: coupled L2 for sgd/nesterov/adam, decoupled for adamw; BatchNorm and bias
    /// parameters are exempt unless `decay_norm_and_bias = true`.
    #[arg(long, value_name = "WD")]
    weight_decay: Option<f64>,
    /// Learning-rate shape after warm-up: cosine (default), step (x `gamma` every `step_size`
    /// epochs, 0.1 / 30 unless --config says), constant.
    #[arg(long, value_name = "NAME")]
    schedule: Option<String>,
    /// L1 penalty λ·Σ|w| added to the loss (same parameters as weight decay).
    #[arg(long, value_name = "LAMBDA")]
    l1: Option<f64>,
    /// Class imbalance: none, weights (class-weighted cross-entropy, inverse frequency), oversample /
    /// undersample (re-drawn every epoch, seeded, up to the largest / down to the smallest class),
    /// smote (SMOTE on the flattened training images' pixels, once; not with --augment standard).
    /// Validation and test are never re-sampled.
    #[arg(long, value_name = "MODE")]
    balance: Option<String>,
    /// Reorder each epoch so that equal labels stand at least K positions apart (error when no
    /// such order exists; 0 = off).
    #[arg(long, value_name = "K")]
    interleave: Option<usize>,
    /// Training augmentation: auto (default: dihedral on shapes, hflip on real images), none,
    /// dihedral (random flips and quarter turns; formerly `flips`), hflip (random horizontal
    /// flip), standard (random resized crop of 60-100 % of the area, horizontal flip, rotation up
    /// to 15 degrees, colour jitter; decoded on loader threads every epoch).
    #[arg(long, value_name = "MODE")]
    augment: Option<String>,
    /// Leave out unreadable items (corrupt or truncated images, bad masks) and report how many,
    /// instead of stopping at the first with exit 2.
    #[arg(long)]
    skip_bad: bool,
    /// Start from trained weights instead of a random initialisation: a torchvision state dict
    /// (.pth, .safetensors) or a kestrel checkpoint. The backbone must fit; a head that does not
    /// (another class count, another task) is re-initialised, and summary.json says what was
    /// loaded, re-initialised and left unused.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Freeze these modules (comma-separated names, e.g. `backbone`, `stem,blocks.0`, `layer1`):
    /// their parameters get no updates and their BatchNorm layers stay in eval mode.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    freeze: Option<Vec<String>>,
    /// Freeze every BatchNorm layer (γ, β and running statistics) for the whole run, as when
    /// fine-tuning on small batches.
    #[arg(long)]
    freeze_bn: bool,
    /// Unfreeze the --freeze modules when this epoch starts (1-based): a linear probe, then
    /// fine-tuning of the whole network.
    #[arg(long, value_name = "EPOCH")]
    unfreeze_at: Option<usize>,
    /// Before every optimiser step, scale the gradients so that their global L2 norm is at most X
    /// (as torch.nn.utils.clip_grad_norm_); the exploding-gradient stop is then off.
    #[arg(long, value_name = "X")]
    clip_grad_norm: Option<f64>,
    /// Stop after N epochs in a row without a better --val-metric (default: train every epoch).
    #[arg(long, value_name = "N")]
    patience: Option<usize>,
    /// Validation metric that chooses the best checkpoint and drives --patience: accuracy
    /// (default) or macro_f1 for classify; miou (default) or pixel_accuracy for segment.
    #[arg(long, value_name = "NAME")]
    val_metric: Option<String>,
    /// Sample per-parameter gradient norms into grad_norms.jsonl on step 0 and every N steps
    /// (default 50; 0 = off); a non-finite or exploding norm stops the run with exit 1.
    #[arg(long, value_name = "N")]
    grad_log_every: Option<usize>,
    /// Continue the run in --out from checkpoints/last (settings from its config.toml; only
    /// --epochs and --patience may change).
    #[arg(long)]
    resume: bool,
    /// In a run of several processes (`mpirun -np N kestrel train …`, built with the `mpi`
    /// feature): BatchNorm normalises with the statistics of the whole batch, summed over the
    /// processes (PyTorch's SyncBatchNorm), instead of each process's part of it.
    #[arg(long)]
    sync_bn: bool,
    /// In a run of several processes: how long one process waits for the others in any exchange
    /// before it stops with exit 1 (a process failed or hangs).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    collective_timeout: f64,
    /// Stop after epoch N as if interrupted (the schedule still spans --epochs); continue later
    /// with --resume.
    #[arg(long, value_name = "N")]
    stop_after: Option<usize>,
    /// Run folder (default runs/<model>-<task>-<n>).
    // This doc comment is the `--help` text, written for a terminal, so rustdoc must not read
    // `<model>` as HTML.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The absolute path of the existing file `path` (`what` names it in the error): what the run's
/// `config.toml` records, so that `kestrel eval` and `--resume` find it from any folder.
fn absolute(path: &Path, what: &str) -> Result<PathBuf, CliError> {
    std::fs::canonicalize(path)
        .map_err(|e| CliError::BadInput(format!("cannot read {what} {}: {e}", path.display())))
}

/// Runs `kestrel train`: builds the configuration (from `--config`, the run folder's own when
/// resuming, or the task's defaults), applies the flags over it and trains; prints the summary
/// (JSON with `--json`).
pub fn run(a: TrainArgs) -> Result<(), CliError> {
    let task = match a.task.as_deref() {
        None => None,
        Some("classify") => Some(kestrel_train::Task::Classify),
        Some("segment") => Some(kestrel_train::Task::Segment),
        Some("multitask") => Some(kestrel_train::Task::Multitask),
        Some(other) => {
            return Err(CliError::BadInput(format!(
                "bad value for `--task`: `{other}`; expected classify, segment or multitask"
            )))
        }
    };
    if a.resume && a.out.is_none() {
        return Err(CliError::BadInput(
            "--resume needs --out DIR: the run folder to continue".into(),
        ));
    }
    let mut cfg = match (&a.config, task, &a.out) {
        (Some(p), _, _) => TrainConfig::from_file(p)?,
        // Resuming: the run's own settings, which the flags below may only repeat (or, for
        // --epochs and --patience, change).
        (None, _, Some(out)) if a.resume => {
            TrainConfig::from_file(&out.join(kestrel_train::run_dir::CONFIG)).map_err(|e| {
                CliError::BadInput(format!(
                    "--resume: {e}; expected the folder of an earlier `kestrel train --out`"
                ))
            })?
        }
        (None, Some(kestrel_train::Task::Segment), _) => TrainConfig::segment_default(),
        (None, Some(kestrel_train::Task::Multitask), _) => TrainConfig::multitask_default(),
        (None, _, _) => TrainConfig::default(),
    };
    if let Some(t) = task {
        cfg.task = t;
    }
    if let Some(v) = a.data {
        cfg.data = v;
    }
    if let Some(v) = a.upsampler {
        cfg.upsampler = v
            .parse()
            .map_err(|e: kestrel_nn::upsample::UpsampleError| {
                CliError::BadInput(format!("bad value for `--upsampler`: {e}"))
            })?;
    }
    if let Some(v) = a.output_stride {
        cfg.output_stride = v;
    }
    if let Some(v) = a.split_manifest {
        cfg.split_manifest = Some(absolute(&v, "split manifest")?);
    }
    if let Some(v) = a.model {
        cfg.model = v;
    }
    if let Some(v) = a.width {
        cfg.width = v;
    }
    if let Some(v) = a.activation {
        cfg.activation =
            v.parse()
                .map_err(|e: kestrel_nn::layers::conv_bn_act::UnknownActivation| {
                    CliError::BadInput(format!("bad value for `--activation`: {e}"))
                })?;
    }
    if let Some(v) = a.resolution {
        cfg.resolution = v;
    }
    if let Some(v) = a.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = a.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = a.lr {
        cfg.lr = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.optimizer {
        cfg.set_optimizer_kind(v.parse()?);
    }
    if let Some(v) = a.weight_decay {
        cfg.weight_decay = v;
    }
    if let Some(v) = a.schedule {
        cfg.schedule = v.parse()?;
    }
    if let Some(v) = a.l1 {
        cfg.l1 = v;
    }
    if let Some(v) = a.balance {
        cfg.balance = v.parse()?;
    }
    if let Some(v) = a.interleave {
        cfg.interleave = v;
    }
    if let Some(v) = a.augment {
        cfg.augment = v.parse()?;
    }
    if a.skip_bad {
        cfg.skip_bad = true;
    }
    if let Some(v) = a.weights {
        cfg.weights = Some(absolute(&v, "weights file")?);
    }
    if let Some(v) = a.freeze {
        cfg.freeze = v;
    }
    if a.freeze_bn {
        cfg.freeze_bn = true;
    }
    if let Some(v) = a.unfreeze_at {
        cfg.unfreeze_at = Some(v);
    }
    if let Some(v) = a.clip_grad_norm {
        cfg.clip_grad_norm = Some(v);
    }
    if let Some(v) = a.patience {
        cfg.patience = Some(v);
    }
    if let Some(v) = a.val_metric {
        cfg.val_metric = Some(v);
    }
    if let Some(v) = a.grad_log_every {
        cfg.grad_log_every = v;
    }
    if let Some(v) = a.weighting {
        cfg.weighting = v.parse()?;
    }
    if let Some(v) = a.task_weights {
        cfg.task_weights = v;
    }
    if a.cascade {
        cfg.cascade = true;
    }
    cfg.validate()?;
    let out = a.out.unwrap_or_else(|| {
        kestrel_train::run_dir::default_run_dir("runs".as_ref(), &cfg.model, cfg.task.name())
    });
    let progress = if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Lines
    };
    if !(a.collective_timeout.is_finite() && a.collective_timeout > 0.0) {
        return Err(CliError::BadInput(format!(
            "bad value for `--collective-timeout`: {}; expected seconds > 0",
            a.collective_timeout
        )));
    }
    let replicas = crate::replicas::join(
        a.sync_bn,
        std::time::Duration::from_secs_f64(a.collective_timeout),
    )?;
    let leader = replicas.is_leader();
    crate::replicas::announce(&replicas, cfg.batch_size);
    if leader {
        let activation = if cfg.activation == kestrel_nn::HiddenActivation::default() {
            String::new()
        } else {
            format!(", activation {}", cfg.activation)
        };
        eprintln!(
            "{} {} (width {}{activation}) on {} -> {}",
            if a.resume { "resuming" } else { "training" },
            cfg.model,
            cfg.width,
            cfg.data,
            out.display()
        );
    }
    let summary = train_replicated(
        &cfg,
        &out,
        &RunOptions {
            progress,
            resume: a.resume,
            stop_after: a.stop_after,
        },
        &replicas,
    );
    let summary = match summary {
        Ok(s) => s,
        Err(e) if replicas.is_distributed() => {
            // MPI's finalisation would wait for the processes that failed: leave without it.
            std::mem::forget(replicas);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    if !leader {
        return Ok(());
    }
    if let Some(r) = &summary.replicas {
        eprintln!(
            "{} processes: {:.1} s of {:.1} s in collectives on process 0",
            r.count, r.communication_seconds, summary.train_seconds
        );
    }
    if a.json {
        print_json(&summary)?;
    } else if cfg.task == kestrel_train::Task::Multitask {
        println!(
            "best epoch {} of {}: val accuracy {:.4}, macro-F1 {:.4}, mIoU {:.4}, pixel accuracy {:.4}; {:.0} s; run folder {}",
            summary.best_epoch,
            summary.epochs_run,
            summary.val["accuracy"],
            summary.val["macro_f1"],
            summary.val["miou"],
            summary.val["pixel_accuracy"],
            summary.train_seconds,
            out.display()
        );
    } else if cfg.task == kestrel_train::Task::Segment {
        println!(
            "best epoch {} of {}: val mIoU {:.4}, pixel accuracy {:.4}; {:.0} s; run folder {}",
            summary.best_epoch,
            summary.epochs_run,
            summary.val["miou"],
            summary.val["pixel_accuracy"],
            summary.train_seconds,
            out.display()
        );
    } else {
        println!(
            "best epoch {} of {}: val accuracy {:.4}, macro-F1 {:.4}; {:.0} s; run folder {}",
            summary.best_epoch,
            summary.epochs_run,
            summary.val["accuracy"],
            summary.val["macro_f1"],
            summary.train_seconds,
            out.display()
        );
    }
    Ok(())
}
