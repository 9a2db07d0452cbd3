//! `kestrel predict`.

use crate::exit::{print_json, CliError};
use crate::pretrained::Source;
use burn::tensor::Device;
use clap::Args;
use kestrel_train::{predict_imagenet, predict_run};
use std::path::PathBuf;

/// Flags of `kestrel predict`.
#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    source: crate::pretrained::ModelSource,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Image files (png, jpg, bmp).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run(a: PredictArgs) -> Result<(), CliError> {
    let predictions = match a.source.resolve(&Device::flex())? {
        Source::Run(run) => predict_run(run, &a.images, a.top_k)?,
        Source::Pretrained { model, .. } => predict_imagenet(*model, &a.images, a.top_k)?,
    };
    if a.json {
        return print_json(&predictions);
    }
    for p in &predictions {
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
    Ok(())
}
