//! `kestrel predict`.

use crate::exit::{print_json, CliError};
use burn::tensor::Device;
use clap::Args;
use kestrel_train::{predict_imagenet, predict_run};
use std::path::PathBuf;

/// Flags of `kestrel predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The run folder written by `kestrel train`.
    #[arg(long, required_unless_present = "arch", conflicts_with_all = ["arch", "weights"])]
    run: Option<PathBuf>,
    /// Architecture of pretrained weights (with `--weights`): mobilenet-v2, resnet18, resnet34,
    /// resnet50. Images get torchvision's preprocessing (resize 256, centre crop 224, ImageNet
    /// mean/std); a 1000-class model gets the ImageNet class names.
    #[arg(long, requires = "weights")]
    arch: Option<String>,
    /// A torchvision state dict: `.pth` (zip or legacy format) or `.safetensors`. Read without
    /// running any code: only the pickle globals a state dict needs are accepted.
    #[arg(long, requires = "arch")]
    weights: Option<PathBuf>,
    /// Width multiplier of a MobileNetV2 `--arch` (torchvision's `width_mult`).
    #[arg(long, default_value_t = 1.0, requires = "arch")]
    width: f64,
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
    let predictions = match (&a.run, &a.arch, &a.weights) {
        (Some(run), _, _) => predict_run(run, &a.images, a.top_k)?,
        (None, Some(arch), Some(weights)) => {
            let model = crate::pretrained::load(arch, a.width, weights, &Device::flex())?;
            predict_imagenet(model, &a.images, a.top_k)?
        }
        _ => {
            return Err(CliError::BadInput(
                "give `--run DIR`, or `--arch NAME --weights FILE`".into(),
            ))
        }
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
