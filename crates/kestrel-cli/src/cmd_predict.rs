//! `kestrel predict`.

use crate::cmd_bench::EngineKind;
use crate::exit::{print_json, CliError};
use crate::pretrained::Source;
use crate::shard_arg::{write_part, ShardArgs};
use burn::tensor::Device;
use clap::{ArgGroup, Args};
use kestrel_train::{
    predict_imagenet_on, predict_imagenet_shard, predict_run_on, predict_run_shard, Prediction,
};
use std::path::PathBuf;

/// Flags of `kestrel predict`.
#[derive(Args)]
#[command(group(ArgGroup::new("model").required(true).args(["run", "arch"])))]
pub struct PredictArgs {
    #[command(flatten)]
    source: crate::pretrained::ModelSource,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Inference engine: kestrel-runtime on the exported plan (default), or the Burn model.
    #[arg(long, value_enum, default_value_t = EngineKind::Runtime)]
    engine: EngineKind,
    /// An int8 plan of the model (`kestrel quantize`) for `--engine int8` (implied); default
    /// with `--run`: RUN/int8.plan.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    #[command(flatten)]
    shard: ShardArgs,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Image files (png, jpg, bmp).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// Runs `kestrel predict`: the top classes (and, for segmentation models, boxes) of each image
/// from a run's best checkpoint or a pretrained ImageNet model, on the chosen engine; with
/// `--shard`, those of the shard's slice of the images, written to the part file.
pub fn run(a: PredictArgs) -> Result<(), CliError> {
    let source = a.source.resolve(&Device::flex())?;
    let run_dir = match &source {
        Source::Run(run) => Some(*run),
        Source::Pretrained { .. } => None,
    };
    let engine = crate::cmd_bench::inference_engine(a.engine, a.plan.as_deref(), run_dir)?;
    let shard = a.shard.get()?;
    let (images, k) = (&a.images, a.top_k);
    let predictions = match (source, shard) {
        (Source::Run(run), None) => predict_run_on(run, images, k, engine)?,
        (Source::Pretrained { model, .. }, None) => predict_imagenet_on(*model, images, k, engine)?,
        (Source::Run(run), Some((shard, out))) => {
            let part = predict_run_shard(run, images, shard, k, engine)?;
            return write_part(&part, out, a.json);
        }
        (
            Source::Pretrained {
                arch,
                width,
                weights,
                model,
            },
            Some((shard, out)),
        ) => {
            let source = format!("{arch} width {width}");
            let part = predict_imagenet_shard(*model, source, weights, images, shard, k, engine)?;
            return write_part(&part, out, a.json);
        }
    };
    if a.json {
        return print_json(&predictions);
    }
    print_predictions(&predictions);
    Ok(())
}

/// The text of `kestrel predict` (and of `kestrel merge` of its parts).
pub fn print_predictions(predictions: &[Prediction]) {
    for p in predictions {
        let tops: Vec<String> = p
            .top
            .iter()
            .map(|t| format!("{} {:.3}", t.label, t.prob))
            .collect();
        println!("{}: {}", p.image.display(), tops.join(", "));
        for b in p.boxes.iter().flatten() {
            let label = p
                .top
                .iter()
                .find(|t| t.class == b.class)
                .map_or(b.class.to_string(), |t| t.label.clone());
            println!(
                "  box {label}: x {}..{}, y {}..{} (score {:.1})",
                b.x0, b.x1, b.y0, b.y1, b.score
            );
        }
    }
}
