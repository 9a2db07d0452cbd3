//! `kestrel export`: a trained model with batch norm folded, as a kestrel-runtime plan or ONNX. A
//! segmentation run exports its FCN (per-pixel class scores of the input's size). `--plan FILE`
//! writes a plan file as ONNX instead: an int8 plan in QDQ form, an fp32 plan in float.

use crate::exit::{print_json, CliError};
use crate::pretrained::Source;
use burn::tensor::Device;
use clap::{ArgGroup, Args, ValueEnum};
use kestrel_data::Normalize;
use kestrel_nn::export::ExportError;
use kestrel_nn::Model;
use kestrel_train::{run_dir, Checkpoint};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
#[command(group(ArgGroup::new("model").required(true).args(["run", "arch", "plan"])))]
pub struct ExportArgs {
    #[command(flatten)]
    source: crate::pretrained::ModelSource,
    /// A plan file to write as ONNX (`--format onnx`): an int8 plan gives a QDQ model (uint8
    /// activations, int8 per-channel weights, int32 biases), an fp32 plan a float one.
    #[arg(long, conflicts_with = "weights")]
    plan: Option<PathBuf>,
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
    /// Whether the model is quantised (an int8 plan written as QDQ ONNX).
    int8: bool,
}

fn export_error(e: ExportError) -> CliError {
    match e {
        ExportError::Plan(_) | ExportError::Read { .. } => CliError::Runtime(e.to_string()),
        _ => CliError::BadInput(e.to_string()),
    }
}

/// Runs `kestrel export`.
pub fn run(a: ExportArgs) -> Result<(), CliError> {
    if let Some(plan) = &a.plan {
        return export_plan(plan, &a);
    }
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
        int8: false,
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

/// `e` as a message naming `path` (once).
fn naming(path: &Path, e: impl std::fmt::Display) -> CliError {
    let (p, e) = (path.display().to_string(), e.to_string());
    CliError::BadInput(if e.contains(&p) {
        e
    } else {
        format!("{p}: {e}")
    })
}

/// `kestrel export --plan FILE --format onnx`: the plan file as ONNX, QDQ for an int8 plan.
/// Every failure names the file and exits 2.
fn export_plan(path: &Path, a: &ExportArgs) -> Result<(), CliError> {
    use kestrel_runtime::quant::{is_int8_plan, QuantPlan};
    if a.format != Format::Onnx {
        return Err(naming(
            path,
            "`--plan` writes a plan file as `--format onnx` (it is a plan already)",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| naming(path, e))?;
    let int8 = is_int8_plan(&bytes);
    let input = "the plan's input as NCHW float32 (kestrel-runtime reads it as NHWC), \
                 preprocessed as for the plan";
    let mut metadata = vec![("kestrel.input".to_string(), input.to_string())];
    let (onnx, plan) = if int8 {
        let q = QuantPlan::from_bytes(&bytes, path).map_err(|e| naming(path, e))?;
        let c = &q.table.calibration;
        let quant = serde_json::json!({
            "format": "QDQ: uint8 activations, int8 weights per output channel, int32 biases",
            "calibration": c.method, "images": c.images,
            "depthwise_per_tensor": c.depthwise_per_tensor,
        });
        metadata.push(("kestrel.quantization".into(), quant.to_string()));
        let onnx = kestrel_nn::export::quant_plan_to_onnx(&q, &metadata);
        (onnx, q.plan)
    } else {
        let plan = kestrel_runtime::Plan::from_bytes(&bytes, path).map_err(|e| naming(path, e))?;
        (kestrel_nn::export::plan_to_onnx(&plan, &metadata), plan)
    };
    let onnx = onnx.map_err(|e| naming(path, e))?;
    kestrel_data::fsio::write_atomic(&a.out, &onnx)
        .map_err(|e| naming(&a.out, format!("writing: {e}")))?;
    let (s, o) = (plan.input_shape(), plan.output_shape());
    let info = Exported {
        format: a.format,
        out: a.out.clone(),
        model: path.display().to_string(),
        resolution: s.h,
        classes: o.c,
        bytes: onnx.len() as u64,
        int8,
    };
    if a.json {
        return print_json(&info);
    }
    let output = if o.h == 1 && o.w == 1 {
        format!("batch x {}", o.c)
    } else {
        format!("batch x {} x {} x {}", o.c, o.h, o.w)
    };
    println!(
        "wrote {} ({} bytes): {} plan {} as {}ONNX, input NCHW batch x {} x {} x {}, output {output}",
        a.out.display(),
        info.bytes,
        if int8 { "int8" } else { "fp32" },
        path.display(),
        if int8 { "QDQ " } else { "" },
        s.c,
        s.h,
        s.w,
    );
    Ok(())
}
