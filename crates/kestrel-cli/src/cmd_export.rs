//! `kestrel export`: a trained model with batch norm folded, as a kestrel-runtime plan or ONNX. A
//! segmentation run exports its FCN (per-pixel class scores of the input's size).

use crate::exit::{print_json, CliError};
use crate::pretrained::Source;
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use kestrel_data::Normalize;
use kestrel_nn::export::ExportError;
use kestrel_nn::Model;
use kestrel_train::{run_dir, Checkpoint};
use serde::Serialize;
use std::path::PathBuf;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// kestrel-runtime plan (NHWC input).
    Plan,
    /// ONNX, opset 17 (NCHW input named `input`, dynamic batch).
    Onnx,
}

/// Flags of `kestrel export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    source: crate::pretrained::ModelSource,
    /// Output format.
    #[arg(long, value_enum)]
    format: Format,
    /// Output file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// What `--json` prints.
#[derive(Serialize)]
struct Exported {
    format: Format,
    out: PathBuf,
    model: String,
    resolution: usize,
    classes: usize,
    bytes: u64,
}

fn export_error(e: ExportError) -> CliError {
    match e {
        ExportError::Plan(_) | ExportError::Read { .. } => CliError::Runtime(e.to_string()),
        _ => CliError::BadInput(e.to_string()),
    }
}

/// Runs `kestrel export`.
pub fn run(a: ExportArgs) -> Result<(), CliError> {
    let device = Device::flex();
    let (model, resolution, arch, class_names, norm) = match a.source.resolve(&device)? {
        Source::Run(run) => {
            let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run))?;
            (
                ckpt.load_model(&device)?,
                ckpt.meta.config.resolution,
                ckpt.meta.spec.name(),
                ckpt.meta.class_names.clone(),
                ckpt.meta.normalize,
            )
        }
        Source::Pretrained { arch, model, .. } => {
            // torchvision's evaluation input: 224 × 224 after resize 256 and centre crop.
            let classes = model.num_classes();
            let names = (0..classes)
                .map(|c| kestrel_nn::imagenet::class_label(c, classes))
                .collect();
            (
                Model::Classifier(model),
                224,
                arch.to_string(),
                names,
                Normalize::IMAGENET,
            )
        }
    };
    match a.format {
        Format::Plan => {
            let plan = model.to_plan(resolution).map_err(export_error)?;
            plan.save(&a.out)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
        }
        Format::Onnx => {
            let metadata = [
                ("kestrel.model", arch.clone()),
                (
                    "kestrel.class_names",
                    serde_json::to_string(&class_names)
                        .map_err(|e| CliError::Runtime(e.to_string()))?,
                ),
                (
                    "kestrel.normalize",
                    format!("{{\"mean\":{:?},\"std\":{:?}}}", norm.mean, norm.std),
                ),
                (
                    "kestrel.input",
                    format!(
                        "RGB scaled to [0, 1], minus mean, divided by std (kestrel.normalize), \
                         resized to {resolution}x{resolution}, NCHW"
                    ),
                ),
            ]
            .map(|(k, v)| (k.to_string(), v));
            model
                .save_onnx(resolution, &metadata, &a.out)
                .map_err(export_error)?
        }
    }
    let bytes = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    let info = Exported {
        format: a.format,
        out: a.out.clone(),
        model: arch,
        resolution,
        classes: class_names.len(),
        bytes,
    };
    if a.json {
        return print_json(&info);
    }
    let input = match a.format {
        Format::Plan => format!("NHWC {resolution}x{resolution}x3"),
        Format::Onnx => format!("NCHW batch x 3 x {resolution} x {resolution}"),
    };
    let output = match (&model, a.format) {
        (Model::Classifier(_), _) => format!("{} logits", info.classes),
        (Model::Segmenter(_) | Model::Multitask(_), Format::Plan) => {
            format!("{resolution}x{resolution}x{} scores (NHWC)", info.classes)
        }
        (Model::Segmenter(_) | Model::Multitask(_), Format::Onnx) => {
            format!(
                "batch x {} x {resolution} x {resolution} scores",
                info.classes
            )
        }
    };
    println!(
        "wrote {} ({} bytes): {} with batch norm folded, input {input} (normalised as in training), \
         {output}",
        a.out.display(),
        bytes,
        info.model
    );
    Ok(())
}
