//! `kestrel bench infer`: inference latency of a model with random weights (a classifier, or an
//! FCN segmenter), on kestrel-runtime or on Burn (Flex), as the median of timed runs after
//! warm-up. `bench train` is in [`crate::cmd_bench_train`].

use crate::exit::{print_json, CliError};
use burn::tensor::{Device, Tensor, TensorData};
use clap::{Args, Subcommand, ValueEnum};
use kestrel_data::rng::Rng;
use kestrel_nn::models::zoo::{ClassifierSpec, ARCH_NAMES};
use kestrel_nn::{InfoError, Model};
use kestrel_runtime::quant::{
    quantize, Int8Engine, Int8Options, Method, QuantPlan, QuantizeOptions,
};
use kestrel_runtime::{Engine, EngineOptions};
use kestrel_train::{InferenceEngine, Int8Plan};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// The fewest timed runs a benchmark reports on.
pub const MIN_RUNS: usize = 10;

/// Flags of `kestrel bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Inference time of a model with random weights.
    Infer(InferArgs),
    /// Time of one training step (forward, loss, backward, SGD update) on random data.
    Train(crate::cmd_bench_train::TrainArgs),
}

/// Which engine runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// kestrel-runtime on the exported plan (batch norm folded, NHWC).
    Runtime,
    /// The Burn model on the Flex CPU backend (eval mode, NCHW).
    Burn,
    /// kestrel-runtime's int8 engine on a quantised plan (`--plan FILE`, or for `bench infer`
    /// without one, the random-weight model calibrated with min/max on 8 random images).
    Int8,
}

/// The inference engine `--engine` and `--plan` name: `--plan FILE` means int8 on that plan;
/// `--engine int8` alone takes `RUN/int8.plan` of `run`.
pub(crate) fn inference_engine(
    kind: EngineKind,
    plan: Option<&std::path::Path>,
    run: Option<&std::path::Path>,
) -> Result<InferenceEngine, CliError> {
    let default_plan = run.map(|r| r.join(INT8_PLAN));
    match (kind, plan) {
        (EngineKind::Burn, Some(_)) => Err(CliError::BadInput(
            "--plan runs on the int8 engine; drop `--engine burn` or `--plan`".into(),
        )),
        (EngineKind::Runtime, None) => Ok(InferenceEngine::Runtime),
        (EngineKind::Burn, None) => Ok(InferenceEngine::Burn),
        (_, Some(p)) => Ok(InferenceEngine::Int8(Int8Plan::load(p)?)),
        (EngineKind::Int8, None) => match default_plan {
            Some(p) if p.exists() => Ok(InferenceEngine::Int8(Int8Plan::load(&p)?)),
            Some(p) => Err(CliError::BadInput(format!(
                "--engine int8: no int8 plan at {} (write it with `kestrel quantize --run ...`, or give --plan FILE)",
                p.display()
            ))),
            None => Err(CliError::BadInput(
                "--engine int8 needs --plan FILE (written by `kestrel quantize`)".into(),
            )),
        },
    }
}

/// The file name `kestrel quantize --run DIR` writes in the run folder by default.
pub(crate) const INT8_PLAN: &str = "int8.plan";

/// Flags of `kestrel bench infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// Model name: mobilenet-v1, mobilenet-v2, resnet18, resnet34, resnet50, or a segmenter
    /// fcn32s-, fcn16s-, fcn8s- followed by mobilenet-v2, resnet18, resnet34 or resnet50.
    #[arg(long)]
    model: String,
    /// Width multiplier α (MobileNets only).
    #[arg(long)]
    width: Option<f64>,
    /// Input size in pixels (square).
    #[arg(long, default_value_t = 224)]
    resolution: usize,
    /// Images per run.
    #[arg(long)]
    batch: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Engine.
    #[arg(long, value_enum, default_value_t = EngineKind::Runtime)]
    engine: EngineKind,
    /// Number of classes (default 1000 for a classifier, 21 for a segmenter, as Pascal VOC).
    #[arg(long)]
    classes: Option<usize>,
    /// Output stride of a segmenter's backbone: 32, 16 or 8.
    #[arg(long, default_value_t = 32)]
    output_stride: usize,
    /// Upsampling layers of a segmenter: nearest, bilinear, bicubic, transposed, pixelshuffle,
    /// carafe, meta.
    #[arg(long, default_value = "bilinear")]
    upsampler: String,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed runs (at least 10).
    #[arg(long, default_value_t = MIN_RUNS)]
    runs: usize,
    /// With `--engine int8`: time this int8 plan (written by `kestrel quantize`) instead of a
    /// random-weight model calibrated on random images.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// With `--engine int8`: calibrate the random-weight model with min/max on these images
    /// (a data spec; torchvision's preprocessing, so `--resolution 224`) instead of random ones,
    /// as another engine's quantiser can be given the same images.
    #[arg(long, value_name = "SPEC", conflicts_with = "plan")]
    calib: Option<String>,
    /// Number of `--calib` images.
    #[arg(long, default_value_t = 32)]
    calib_n: usize,
    /// Also write the benchmarked model (random weights) as ONNX to this file, for comparison
    /// with other engines (`bench/onnx_compare.py`).
    #[arg(long, value_name = "FILE")]
    export_onnx: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// The result, as the CLI contract names its fields.
#[derive(Debug, Serialize)]
struct InferResult {
    model: String,
    engine: EngineKind,
    batch: usize,
    resolution: usize,
    threads: usize,
    min_ms: f64,
    median_ms: f64,
    images_per_s: f64,
}

/// Runs `kestrel bench`.
pub fn run(a: BenchArgs) -> Result<(), CliError> {
    match a.what {
        BenchCommand::Infer(a) => infer(a),
        BenchCommand::Train(a) => crate::cmd_bench_train::run(a),
    }
}

/// One Burn forward pass of `model`, read back to the host.
fn forward(model: &Model, x: Tensor<4>) -> Result<(), CliError> {
    let read = |r: Result<Vec<f32>, _>| {
        r.map(|_| ())
            .map_err(|e| CliError::Runtime(format!("reading the output: {e:?}")))
    };
    match model {
        Model::Classifier(m) => read(m.forward(x).into_data().try_to_vec::<f32>()),
        Model::Segmenter(m) => read(m.forward(x).into_data().try_to_vec::<f32>()),
        Model::Multitask(m) => read(m.forward(x).0.into_data().try_to_vec::<f32>()),
    }
}

/// The model `a` asks for, checked as `kestrel info` checks it.
fn spec(a: &InferArgs) -> Result<ClassifierSpec, CliError> {
    if a.model.parse::<kestrel_nn::Arch>().is_err() {
        return Err(CliError::BadInput(format!(
            "unknown model `{}`; expected one of: {}, or fcn32s-, fcn16s-, fcn8s- followed by \
             mobilenet-v2, resnet18, resnet34 or resnet50",
            a.model,
            ARCH_NAMES.join(", ")
        )));
    }
    classifier_spec(&a.model, a.width, a.classes.unwrap_or(1000), a.resolution)
}

/// The classifier named `model` (width `width`, `classes` outputs), checked at `resolution` as
/// `kestrel info` checks it.
pub(crate) fn classifier_spec(
    model: &str,
    width: Option<f64>,
    classes: usize,
    resolution: usize,
) -> Result<ClassifierSpec, CliError> {
    let (arch, width) = crate::model_arg::arch_and_width(model, width, "")?;
    let spec = ClassifierSpec {
        arch,
        width,
        num_classes: classes,
        // The architecture as its paper builds it (MobileNetV2: ReLU6).
        activation: Default::default(),
    };
    spec.describe(resolution)
        .map_err(|e| describe_error(e, resolution))?;
    Ok(spec)
}

/// A model description's error (a model checked at `resolution` as `kestrel info` checks it) as
/// the CLI reports it: a bad setting names its flag (`--classes` for the FCN's `num-classes`), an
/// input too small names `--resolution`.
pub(crate) fn describe_error(e: InfoError, resolution: usize) -> CliError {
    match e {
        InfoError::BadValue {
            field,
            expected,
            got,
        } => {
            let flag = if field == "num-classes" {
                "classes"
            } else {
                &field
            };
            CliError::BadInput(format!(
                "bad value for `--{flag}`: expected {expected}, got {got}"
            ))
        }
        InfoError::TooSmall { .. } | InfoError::Overflow(_) => {
            CliError::BadInput(format!("`--resolution {resolution}`: {e}"))
        }
        InfoError::Inconsistent { .. } => CliError::Runtime(e.to_string()),
    }
}

/// Times `f` `warmup + runs` times; returns the timed runs' durations in milliseconds, sorted.
pub(crate) fn time_runs(
    warmup: usize,
    runs: usize,
    mut f: impl FnMut() -> Result<(), CliError>,
) -> Result<Vec<f64>, CliError> {
    for _ in 0..warmup {
        f()?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// Median of sorted values.
pub(crate) fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn infer(a: InferArgs) -> Result<(), CliError> {
    // The same random weights on every invocation, so `--export-onnx` of one call is the
    // network another call timed (other engines are compared on it).
    Device::flex().seed(0);
    if a.model.starts_with("fcn") {
        let spec = crate::model_arg::segmenter_spec(
            &a.model,
            a.width,
            a.classes,
            a.output_stride,
            &a.upsampler,
        )?;
        let name = spec.name;
        let model = spec
            .init(&Device::flex())
            .map_err(|e| CliError::BadInput(format!("`--model {}`: {e}", a.model)))?;
        return time_model(&a, name.to_string(), Model::Segmenter(Box::new(model)));
    }
    let spec = spec(&a)?;
    let model = spec.init(&Device::flex());
    time_model(
        &a,
        spec.arch.to_string(),
        Model::Classifier(Box::new(model)),
    )
}

/// Times `model` as `a` asks and prints the result under `name`.
fn time_model(a: &InferArgs, name: String, model: Model) -> Result<(), CliError> {
    if a.batch == 0 {
        return Err(CliError::BadInput(
            "bad value for `--batch`: expected at least 1".into(),
        ));
    }
    if a.runs < MIN_RUNS {
        return Err(CliError::BadInput(format!(
            "bad value for `--runs`: expected at least {MIN_RUNS}, got {}",
            a.runs
        )));
    }
    let threads = match a.threads {
        Some(0) => {
            return Err(CliError::BadInput(
                "bad value for `--threads`: expected at least 1".into(),
            ))
        }
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let (r, b) = (a.resolution, a.batch);
    let device = Device::flex();
    let mut rng = Rng::new(0);
    let input: Vec<f32> = (0..b * 3 * r * r)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    if let Some(path) = &a.export_onnx {
        model
            .save_onnx(r, &[], path)
            .map_err(|e| CliError::BadInput(e.to_string()))?;
    }
    let runtime_err = |e: kestrel_runtime::RuntimeError| CliError::Runtime(e.to_string());
    let ms = match a.engine {
        EngineKind::Runtime => {
            let plan = model
                .to_plan(r)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
            drop(model);
            let mut engine = Engine::new(
                plan,
                EngineOptions {
                    threads,
                    ..Default::default()
                },
            )
            .map_err(runtime_err)?;
            // The layout is irrelevant to the timing; random values either way.
            time_runs(a.warmup, a.runs, || {
                engine.run(&input, b).map(|_| ()).map_err(runtime_err)
            })?
        }
        EngineKind::Int8 => {
            let q = match (&a.plan, &a.calib, model) {
                (Some(path), _, _) => {
                    QuantPlan::load(path).map_err(|e| CliError::BadInput(e.to_string()))?
                }
                (None, Some(spec), Model::Classifier(m)) => {
                    let calib = spec
                        .parse()
                        .map_err(|e| CliError::BadInput(format!("--calib {spec}: {e}")))?;
                    let req = kestrel_train::QuantizeRequest {
                        method: Method::MinMax,
                        method_name: "minmax".into(),
                        depthwise_per_tensor: false,
                        calib: Some(calib),
                        calib_n: a.calib_n,
                    };
                    kestrel_train::quantize_model(*m, &req)?.plan
                }
                (None, Some(_), _) => {
                    return Err(CliError::BadInput(
                        "--calib calibrates classifiers; a segmenter is calibrated on random images (drop --calib)".into(),
                    ))
                }
                (None, None, model) => {
                    let plan = model
                        .to_plan(r)
                        .map_err(|e| CliError::BadInput(e.to_string()))?;
                    let calib: Vec<f32> = (0..8 * 3 * r * r)
                        .map(|_| rng.uniform(-1.0, 1.0) as f32)
                        .collect();
                    let opts = QuantizeOptions {
                        method: Method::MinMax,
                        method_name: "minmax".into(),
                        depthwise_per_tensor: false,
                        threads,
                    };
                    quantize(plan, &calib, 8, &opts).map_err(runtime_err)?.0
                }
            };
            let want = q.plan.input_shape().len() * b;
            if want != input.len() {
                return Err(CliError::BadInput(format!(
                    "--plan {}: takes {} images, not {r}x{r}x3 (set --resolution)",
                    a.plan
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string()),
                    q.plan.input_shape()
                )));
            }
            let opts = Int8Options {
                threads,
                ..Default::default()
            };
            let mut engine = Int8Engine::new(q, opts).map_err(runtime_err)?;
            time_runs(a.warmup, a.runs, || {
                engine.run(&input, b).map(|_| ()).map_err(runtime_err)
            })?
        }
        EngineKind::Burn => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| CliError::Runtime(format!("thread pool: {e}")))?;
            let x = Tensor::<4>::from_data(TensorData::new(input, [b, 3, r, r]), &device);
            let (warmup, runs) = (a.warmup, a.runs);
            pool.install(move || time_runs(warmup, runs, || forward(&model, x.clone())))?
        }
    };
    let median_ms = median(&ms);
    let result = InferResult {
        model: name,
        engine: a.engine,
        batch: b,
        resolution: r,
        threads,
        min_ms: ms[0],
        median_ms,
        images_per_s: b as f64 / (median_ms / 1e3),
    };
    if a.json {
        return print_json(&result);
    }
    println!(
        "{} ({:?}, batch {b}, {r}x{r}, {threads} threads): median {:.3} ms, min {:.3} ms, \
         {:.1} images/s over {} runs",
        result.model, a.engine, median_ms, result.min_ms, result.images_per_s, a.runs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }
}
