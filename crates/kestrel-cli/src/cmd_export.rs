//! `kestrel export`: a trained model with batch norm folded, as a kestrel-runtime plan or ONNX. A
//! segmentation run exports its FCN (per-pixel class scores of the input's size).

use crate::exit::{print_json, CliError};
use crate::pretrained::Source;
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use kestrel_data::Normalize;
use kestrel_nn::export::{save_onnx, save_segmenter_onnx, segmenter_to_plan, to_plan, ExportError};
use kestrel_nn::fcn::Fcn;
use kestrel_nn::Classifier;
use kestrel_train::checkpoint::Checkpoint;
use kestrel_train::run_dir;
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

/// The model to export.
enum Model {
    Classifier(Box<Classifier>),
    Segmenter(Box<Fcn>),
}

/// Runs `kestrel export`.
pub fn run(a: ExportArgs) -> Result<(), CliError> {
    let device = Device::flex();
    let (model, resolution, arch, class_names, norm) = match a.source.resolve(&device)? {
        Source::Run(run) => {
            let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run))?;
            let model = match ckpt.meta.segmenter {
                Some(_) => Model::Segmenter(Box::new(ckpt.segmenter(&device)?)),
                None => Model::Classifier(Box::new(ckpt.model(&device)?)),
            };
            (
                model,
                ckpt.meta.config.resolution,
                match &ckpt.meta.segmenter {
                    Some(s) => s.name.to_string(),
                    None => ckpt.meta.model.arch.to_string(),
                },
                ckpt.meta.class_names.clone(),
                ckpt.meta.normalize,
            )
        }
        Source::Pretrained { arch, model } => {
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
            let plan = match &model {
                Model::Classifier(m) => to_plan(m, resolution),
                Model::Segmenter(m) => segmenter_to_plan(m, resolution),
            }
            .map_err(export_error)?;
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
            match &model {
                Model::Classifier(m) => save_onnx(m, resolution, &metadata, &a.out),
                Model::Segmenter(m) => save_segmenter_onnx(m, resolution, &metadata, &a.out),
            }
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
        (Model::Segmenter(_), Format::Plan) => {
            format!("{resolution}x{resolution}x{} scores (NHWC)", info.classes)
        }
        (Model::Segmenter(_), Format::Onnx) => {
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
