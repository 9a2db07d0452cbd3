//! `kestrel bench train`: the time of one optimiser step — forward, cross-entropy, backward and
//! an SGD update (momentum 0.9, no dampening, as `torch.optim.SGD(momentum=0.9)`) — of a
//! classifier with random weights on random images and labels, on the Flex CPU backend with
//! autodiff, BatchNorm in training mode. Reports the minimum and median of the timed steps after
//! warm-up. `bench/train_compare.py` times the same step in PyTorch.

use crate::cmd_bench::{classifier_spec, median, time_runs, MIN_RUNS};
use crate::exit::{print_json, CliError};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::Args;
use kestrel_data::rng::Rng;
use kestrel_train::loss::cross_entropy::CrossEntropy;
use serde::Serialize;

/// Learning rate of the timed steps (its value does not change the cost).
const LR: f64 = 0.01;

/// Flags of `kestrel bench train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model name: mobilenet-v1, mobilenet-v2, resnet18, resnet34, resnet50.
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
    /// Number of classes of the classifier.
    #[arg(long, default_value_t = 10)]
    classes: usize,
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

/// Runs `kestrel bench train`.
pub fn run(a: TrainArgs) -> Result<(), CliError> {
    let threads = check(&a)?;
    let spec = classifier_spec(&a.model, a.width, a.classes, a.resolution)?;
    let (r, b, k) = (a.resolution, a.batch, a.classes);
    let device = Device::flex().autodiff();
    let mut rng = Rng::new(0);
    let input: Vec<f32> = (0..b * 3 * r * r)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let labels: Vec<i64> = (0..b).map(|_| rng.below(k) as i64).collect();
    let x = Tensor::<4>::from_data(TensorData::new(input, [b, 3, r, r]), &device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), &device);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| CliError::Runtime(format!("thread pool: {e}")))?;
    let loss_fn = CrossEntropy::new();
    let (warmup, runs) = (a.warmup, a.runs);
    let model_name = spec.arch.to_string();
    let ms = pool.install(move || {
        let mut model = Some(spec.init(&device));
        let mut optim = SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
            .init();
        time_runs(warmup, runs, || {
            let m = model
                .take()
                .expect("the model is put back after every step");
            let logits = m.forward(x.clone());
            let loss = loss_fn.forward(logits, y.clone())?;
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            model = Some(optim.step(LR, m, grads));
            Ok(())
        })
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
}
