//! `kestrel quantize`.

use crate::exit::{print_json, CliError};
use crate::pretrained::Source;
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use kestrel_data::DataSpec;
use kestrel_runtime::quant::Method;
use kestrel_train::{quantize_model, quantize_run, QuantizeRequest, Quantized};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    /// Smallest and largest value seen.
    Minmax,
    /// The 0.01 % tails clipped (99.99th percentile).
    Percentile,
    /// The clipping threshold minimising the KL divergence between the fp32 histogram and its
    /// 8-bit quantisation.
    Entropy,
}

/// Flags of `kestrel quantize`.
#[derive(Args)]
pub struct QuantizeArgs {
    #[command(flatten)]
    source: crate::pretrained::ModelSource,
    /// Data spec of the calibration images (default with `--run`: the run's training split;
    /// required with `--arch`).
    #[arg(long)]
    calib: Option<String>,
    /// Number of calibration images.
    #[arg(long, default_value_t = 256)]
    calib_n: usize,
    /// How each activation's range is chosen.
    #[arg(long, value_enum, default_value = "minmax")]
    method: MethodArg,
    /// One weight scale per depthwise layer instead of one per channel (an ablation: it loses
    /// accuracy).
    #[arg(long)]
    depthwise_per_tensor: bool,
    /// The int8 plan file to write (default with `--run`: RUN/int8.plan, which `--engine int8`
    /// reads).
    #[arg(long)]
    out: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// The JSON of `kestrel quantize`.
#[derive(Serialize)]
struct QuantizeReport<'a> {
    out: String,
    method: &'a str,
    calibration: &'a str,
    calibration_images: usize,
    depthwise_per_tensor: bool,
    values: &'a [kestrel_runtime::quant::ValueReport],
}

/// Runs `kestrel quantize`: calibrates the model's BN-folded plan on sample images, writes the
/// int8 plan, prints each layer's range and signal-to-quantisation-noise ratio.
pub fn run(a: QuantizeArgs) -> Result<(), CliError> {
    if a.calib_n == 0 {
        return Err(CliError::BadInput(
            "--calib-n must be at least 1 (calibration images)".into(),
        ));
    }
    let calib = a
        .calib
        .as_deref()
        .map(|s| {
            s.parse::<DataSpec>()
                .map_err(|e| CliError::BadInput(format!("--calib {s}: {e}")))
        })
        .transpose()?;
    let (method, name) = match a.method {
        MethodArg::Minmax => (Method::MinMax, "minmax"),
        MethodArg::Percentile => (Method::Percentile(99.99), "percentile"),
        MethodArg::Entropy => (Method::Entropy, "entropy"),
    };
    let req = QuantizeRequest {
        method,
        method_name: name.to_string(),
        depthwise_per_tensor: a.depthwise_per_tensor,
        calib,
        calib_n: a.calib_n,
    };
    let (q, out): (Quantized, PathBuf) = match a.source.resolve(&Device::flex())? {
        Source::Run(run) => {
            let out = a
                .out
                .unwrap_or_else(|| run.join(crate::cmd_bench::INT8_PLAN));
            (quantize_run(run, &req)?, out)
        }
        Source::Pretrained { model, .. } => {
            let Some(out) = a.out else {
                return Err(CliError::BadInput(
                    "--out FILE is required with --arch/--weights".into(),
                ));
            };
            (quantize_model(*model, &req)?, out)
        }
    };
    q.plan
        .save(&out)
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let report = QuantizeReport {
        out: out.display().to_string(),
        method: name,
        calibration: &q.calibration_source,
        calibration_images: q.plan.table.calibration.images,
        depthwise_per_tensor: a.depthwise_per_tensor,
        values: &q.values,
    };
    if a.json {
        return print_json(&report);
    }
    println!(
        "calibrated on {} images of {} ({name}); wrote {}",
        report.calibration_images, report.calibration, report.out
    );
    println!(
        "{:>5} {:<16} {:>12} {:>22} {:>10} {:>4} {:>9}",
        "value", "op", "shape", "range", "scale", "zero", "SQNR dB"
    );
    for v in report.values {
        let sqnr = v.sqnr_db.map_or("-".to_string(), |s| format!("{s:.1}"));
        println!(
            "{:>5} {:<16} {:>12} {:>22} {:>10.3e} {:>4} {:>9}",
            v.value,
            v.op,
            v.shape,
            format!("[{:.3}, {:.3}]", v.range[0], v.range[1]),
            v.scale,
            v.zero_point,
            sqnr
        );
    }
    Ok(())
}
