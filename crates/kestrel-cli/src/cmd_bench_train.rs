//! `kestrel bench train`: the time of one optimiser step — forward, cross-entropy, backward and
//! an SGD update (momentum 0.9, no dampening, as `torch.optim.SGD(momentum=0.9)`) — of a model
//! with random weights on random images and labels, on the Flex CPU backend with autodiff,
//! BatchNorm in training mode. A classifier gets one label per image and cross-entropy; an FCN
//! segmenter (`fcn8s-mobilenet-v2`, …) one label per pixel and the per-pixel cross-entropy of
//! `kestrel train --task segment` (the mean over pixels). Reports the minimum and median of the
//! timed steps after warm-up. `bench/train_compare.py` times the same step in PyTorch.

use crate::cmd_bench::{classifier_spec, describe_error, median, time_runs, MIN_RUNS};
use crate::exit::{print_json, CliError};
use burn::module::Module;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::Args;
use kestrel_data::rng::Rng;
use kestrel_nn::models::fcn::SegmenterSpec;
use kestrel_nn::models::zoo::ClassifierSpec;
use kestrel_train::loss::cross_entropy::CrossEntropy;
use serde::Serialize;

/// Learning rate of the timed steps (its value does not change the cost).
const LR: f64 = 0.01;

/// `--output-stride` when not given (the only value a classifier takes).
const DEFAULT_OUTPUT_STRIDE: usize = 32;

/// `--upsampler` when not given (the only value a classifier takes).
const DEFAULT_UPSAMPLER: &str = "bilinear";

/// Flags of `kestrel bench train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model name: mobilenet-v1, mobilenet-v2, resnet18, resnet34, resnet50, or a segmenter
    /// fcn32s-, fcn16s-, fcn8s- followed by mobilenet-v2, resnet18, resnet34 or resnet50.
    #[arg(long)]
    model: String,
    /// Width multiplier α (MobileNets only).
    #[arg(long)]
    width: Option<f64>,
    /// Images per step.
    #[arg(long)]
    batch: usize,
    /// Input size in pixels (square).
    #[arg(long)]
    resolution: usize,
    /// Number of classes (of the images, or of a segmenter's pixels).
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Output stride of a segmenter's backbone: 32, 16 or 8 (a classifier takes only 32).
    #[arg(long, default_value_t = DEFAULT_OUTPUT_STRIDE)]
    output_stride: usize,
    /// Upsampling layers of a segmenter: nearest, bilinear, bicubic, transposed, pixelshuffle,
    /// carafe, meta (a classifier takes only bilinear).
    #[arg(long, default_value = DEFAULT_UPSAMPLER)]
    upsampler: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed steps (at least 10).
    #[arg(long, default_value_t = MIN_RUNS)]
    runs: usize,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// The result, as the CLI contract names its fields.
#[derive(Debug, Serialize)]
struct TrainResult {
    model: String,
    batch: usize,
    resolution: usize,
    threads: usize,
    min_ms: f64,
    median_ms: f64,
}

/// Checks the numeric flags; returns the thread count to use.
fn check(a: &TrainArgs) -> Result<usize, CliError> {
    if a.batch < 2 {
        // BatchNorm in training mode needs more than one value per channel for a 1×1 map.
        return Err(CliError::BadInput(format!(
            "bad value for `--batch`: expected at least 2 (BatchNorm trains on batch statistics), got {}",
            a.batch
        )));
    }
    if a.classes < 2 {
        return Err(CliError::BadInput(format!(
            "bad value for `--classes`: expected at least 2, got {}",
            a.classes
        )));
    }
    if a.runs < MIN_RUNS {
        return Err(CliError::BadInput(format!(
            "bad value for `--runs`: expected at least {MIN_RUNS}, got {}",
            a.runs
        )));
    }
    match a.threads {
        Some(0) => Err(CliError::BadInput(
            "bad value for `--threads`: expected at least 1".into(),
        )),
        Some(t) => Ok(t),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The model `a` names: a classifier, or (names starting with `fcn`) a segmenter; each checked
/// at `--resolution` as `kestrel info` checks it. The segmenters' flags given a value other than
/// their default with a classifier are bad input naming the flag.
fn spec(a: &TrainArgs) -> Result<Spec, CliError> {
    if a.model.starts_with("fcn") {
        let spec = crate::model_arg::segmenter_spec(
            &a.model,
            a.width,
            Some(a.classes),
            a.output_stride,
            &a.upsampler,
        )?;
        spec.describe(a.resolution)
            .map_err(|e| describe_error(e, a.resolution))?;
        return Ok(Spec::Segmenter(spec));
    }
    let only_segmenters =
        |flag: &str, got: &dyn std::fmt::Display, default: &dyn std::fmt::Display| {
            CliError::BadInput(format!(
                "bad value for `{flag}`: only segmenters (fcn32s-, fcn16s-, fcn8s-…) take it; \
             `{}` takes only {default}, got {got}",
                a.model
            ))
        };
    if a.output_stride != DEFAULT_OUTPUT_STRIDE {
        return Err(only_segmenters(
            "--output-stride",
            &a.output_stride,
            &DEFAULT_OUTPUT_STRIDE,
        ));
    }
    if a.upsampler != DEFAULT_UPSAMPLER {
        return Err(only_segmenters(
            "--upsampler",
            &a.upsampler,
            &DEFAULT_UPSAMPLER,
        ));
    }
    let spec = classifier_spec(&a.model, a.width, a.classes, a.resolution)?;
    Ok(Spec::Classifier(spec))
}

/// The model a step trains.
enum Spec {
    /// One label per image.
    Classifier(ClassifierSpec),
    /// One label per pixel.
    Segmenter(SegmenterSpec),
}

impl Spec {
    /// The model's name, as the JSON reports it.
    fn name(&self) -> String {
        match self {
            Spec::Classifier(s) => s.arch.to_string(),
            Spec::Segmenter(s) => s.name.to_string(),
        }
    }
}

/// Times `warmup` untimed and `runs` timed SGD steps (momentum 0.9, no dampening) of `model` on
/// the loss `loss(&model)`; returns the timed steps' milliseconds, sorted.
fn time_sgd_steps<M: Module>(
    model: M,
    warmup: usize,
    runs: usize,
    loss: impl Fn(&M) -> Result<Tensor<1>, CliError>,
) -> Result<Vec<f64>, CliError> {
    let mut model = Some(model);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
        .init();
    // As `kestrel train` does: the pool's other workers stay awake between operations.
    let _warm = kestrel_train::WarmWorkers::start();
    time_runs(warmup, runs, || {
        let m = model
            .take()
            .expect("the model is put back after every step");
        let loss = loss(&m)?;
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(LR, m, grads));
        Ok(())
    })
}

/// Runs `kestrel bench train`.
pub fn run(a: TrainArgs) -> Result<(), CliError> {
    let threads = check(&a)?;
    let spec = spec(&a)?;
    let (r, b, k) = (a.resolution, a.batch, a.classes);
    let device = Device::flex().autodiff();
    let mut rng = Rng::new(0);
    let input: Vec<f32> = (0..b * 3 * r * r)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(input, [b, 3, r, r]), &device);
    // One label per image, or per pixel of a segmenter's (B, R, R) mask.
    let labels =
        |n: usize, rng: &mut Rng| -> Vec<i64> { (0..n).map(|_| rng.below(k) as i64).collect() };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| CliError::Runtime(format!("thread pool: {e}")))?;
    let (warmup, runs) = (a.warmup, a.runs);
    let model_name = spec.name();
    let ms = pool.install(move || match spec {
        Spec::Classifier(spec) => {
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels(b, &mut rng), [b]), &device);
            let loss_fn = CrossEntropy::new();
            time_sgd_steps(spec.init(&device), warmup, runs, |m| {
                Ok(loss_fn.forward(m.forward(x.clone()), y.clone())?)
            })
        }
        Spec::Segmenter(spec) => {
            let y = TensorData::new(labels(b * r * r, &mut rng), [b, r, r]);
            let y = Tensor::<3, Int>::from_data(y, &device);
            // The loss `kestrel train --task segment` trains with (unweighted).
            let loss_fn = CrossEntropy::segmentation();
            let model = spec
                .init(&device)
                .map_err(|e| CliError::BadInput(format!("`--model {}`: {e}", spec.name)))?;
            time_sgd_steps(model, warmup, runs, |m| {
                Ok(loss_fn.forward_nchw(m.forward(x.clone()), y.clone())?)
            })
        }
    })?;
    let result = TrainResult {
        model: model_name,
        batch: b,
        resolution: r,
        threads,
        min_ms: ms[0],
        median_ms: median(&ms),
    };
    if a.json {
        return print_json(&result);
    }
    println!(
        "{} training step (batch {b}, {r}x{r}, {k} classes, {threads} threads): median {:.3} ms, \
         min {:.3} ms over {} steps",
        result.model, result.median_ms, result.min_ms, a.runs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: TrainArgs,
    }

    fn args(extra: &[&str]) -> TrainArgs {
        let mut v = vec!["x", "--model", "mobilenet-v2", "--resolution", "32"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).a
    }

    #[test]
    fn rejects_bad_numbers_with_the_flag_named() {
        for (extra, flag) in [
            (&["--batch", "1"][..], "--batch"),
            (&["--batch", "2", "--classes", "1"][..], "--classes"),
            (&["--batch", "2", "--runs", "3"][..], "--runs"),
            (&["--batch", "2", "--threads", "0"][..], "--threads"),
        ] {
            let e = check(&args(extra)).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
        assert_eq!(
            check(&args(&["--batch", "2", "--threads", "3"])).unwrap(),
            3
        );
    }

    /// The flags of `model` at batch 2 and (unless `extra` gives one) resolution 64.
    fn model_args(model: &str, extra: &[&str]) -> TrainArgs {
        let mut v = vec!["x", "--batch", "2", "--model", model];
        if !extra.contains(&"--resolution") {
            v.extend(["--resolution", "64"]);
        }
        v.extend_from_slice(extra);
        Cli::parse_from(v).a
    }

    #[test]
    fn segmenters_are_named_with_their_settings_and_classifiers_refuse_them() {
        let seg = |extra: &[&str]| match spec(&model_args("fcn8s-mobilenet-v2", extra)) {
            Ok(Spec::Segmenter(s)) => s,
            Ok(Spec::Classifier(_)) => panic!("{extra:?}: a classifier"),
            Err(e) => panic!("{extra:?}: {e}"),
        };
        let s = seg(&[]);
        assert_eq!(s.name.to_string(), "fcn8s-mobilenet-v2");
        assert_eq!(
            (s.output_stride, s.upsampler.name(), s.num_classes),
            (32, "bilinear", 10)
        );
        let s = seg(&[
            "--output-stride",
            "8",
            "--upsampler",
            "transposed",
            "--width",
            "0.5",
        ]);
        assert_eq!(
            (s.output_stride, s.upsampler.name(), s.width),
            (8, "transposed", 0.5)
        );
        // A classifier takes the segmenters' defaults, spelt out or not.
        for extra in [
            &[][..],
            &["--output-stride", "32", "--upsampler", "bilinear"],
        ] {
            assert!(matches!(
                spec(&model_args("resnet18", extra)),
                Ok(Spec::Classifier(_))
            ));
        }
        for (model, extra, flag) in [
            (
                "fcn8s-mobilenet-v2",
                &["--output-stride", "12"][..],
                "--output-stride",
            ),
            (
                "fcn8s-mobilenet-v2",
                &["--upsampler", "nope"][..],
                "--upsampler",
            ),
            ("fcn8s-mobilenet-v2", &["--classes", "256"][..], "--classes"),
            ("fcn8s-resnet18", &["--width", "0.5"][..], "--width"),
            ("fcn8s-vgg16", &[][..], "fcn8s-vgg16"),
            (
                "mobilenet-v2",
                &["--output-stride", "16"][..],
                "--output-stride",
            ),
            (
                "mobilenet-v2",
                &["--upsampler", "transposed"][..],
                "--upsampler",
            ),
        ] {
            let e = match spec(&model_args(model, extra)) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{model} {extra:?} accepted"),
            };
            assert!(e.contains(flag), "{model} {extra:?}: {e}");
        }
        // Too small an input for the segmenter names the resolution.
        let e = spec(&model_args("fcn8s-mobilenet-v2", &["--resolution", "0"]));
        assert!(e.is_err_and(|e| e.to_string().contains("--resolution")));
    }
}
