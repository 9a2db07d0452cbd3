//! Int8 deployment of a classifier: `kestrel quantize` (calibrate the BN-folded plan of a run's
//! best checkpoint or of a pretrained model on sample images) and `kestrel eval --plan` (the fp32
//! model and its int8 plan on one split, side by side, with their top-1 agreement).

use super::data::TensorSet;
use super::eval::{predict_probs, split_set};
use crate::driver::checkpoint::Checkpoint;
use crate::driver::run_dir;
use crate::error::{Result, TrainError};
use crate::infer::{softmax_rows, Int8Plan};
use crate::tasks::eval::{record_test_evaluated, EvalSplit, OpenRun};
use burn::tensor::Device;
use kestrel_data::{CenterCropEval, DataSpec};
use kestrel_metrics::{ClassificationAccumulator, ClassificationSummary};
use kestrel_nn::export::{nchw_to_nhwc, to_plan};
use kestrel_nn::Classifier;
use kestrel_runtime::quant::{quantize, Method, QuantPlan, QuantizeOptions, ValueReport};
use kestrel_runtime::Plan;
use serde::Serialize;
use std::path::Path;

/// What `kestrel quantize` was asked for.
#[derive(Clone, Debug)]
pub struct QuantizeRequest {
    /// Range estimator.
    pub method: Method,
    /// Its name as given (`minmax`, `percentile`, `entropy`).
    pub method_name: String,
    /// Per-tensor weight scales for depthwise layers (the ablation).
    pub depthwise_per_tensor: bool,
    /// Calibration images: this data source, or (for a run, when `None`) the run's own training
    /// split.
    pub calib: Option<DataSpec>,
    /// Number of calibration images.
    pub calib_n: usize,
}

/// A quantised plan and what `kestrel quantize` prints about it.
#[derive(Debug)]
pub struct Quantized {
    /// The plan.
    pub plan: QuantPlan,
    /// Every value: range, scale, zero point, SQNR.
    pub values: Vec<ValueReport>,
    /// Where the calibration images came from.
    pub calibration_source: String,
}

/// Quantises the best checkpoint of the classification run `run`.
pub fn quantize_run(run: &Path, req: &QuantizeRequest) -> Result<Quantized> {
    let ckpt = Checkpoint::load(&run_dir::best_checkpoint(run))?;
    let meta = &ckpt.meta;
    let r = meta.config.resolution;
    let model = ckpt.model(&Device::flex())?;
    let (ds, items, source) = match &req.calib {
        Some(spec) => {
            let ds = kestrel_data::open(spec)?;
            let items = spread(ds.len(), req.calib_n, spec)?;
            (ds, items, spec.to_string())
        }
        None => {
            let (data, _) = meta.config.validate()?;
            let ds = kestrel_data::open(&data)?;
            let parts = meta.config.split(ds.as_ref())?;
            let n = req.calib_n.min(parts.train.len());
            let items = parts.train[..n].to_vec();
            (ds, items, format!("{} (train split)", meta.config.data))
        }
    };
    if items.is_empty() {
        return Err(TrainError::BadInput(format!(
            "calibration data `{source}` has no images"
        )));
    }
    let set = TensorSet::load(ds.as_ref(), &items, r, &meta.normalize)?;
    finish(to_plan(&model, r), &set.images, set.len(), req, source)
}

/// Quantises a pretrained ImageNet-style classifier, calibrating on `req.calib` (required) with
/// torchvision's evaluation preprocessing (resize 256, centre crop 224).
pub fn quantize_model(model: Classifier, req: &QuantizeRequest) -> Result<Quantized> {
    let Some(spec) = &req.calib else {
        return Err(TrainError::BadInput(
            "--calib is required with --arch/--weights: name the data to calibrate on (e.g. folder:DIR)"
                .into(),
        ));
    };
    let ds = kestrel_data::open(spec)?;
    let items = spread(ds.len(), req.calib_n, spec)?;
    let t = CenterCropEval::IMAGENET;
    let side = t.crop as usize;
    let mut x = Vec::with_capacity(items.len() * 3 * side * side);
    for &i in &items {
        let item = ds.get(i)?;
        t.push_chw(&item.image, &mut x)
            .map_err(|e| TrainError::BadInput(format!("{spec}: item {i}: {e}")))?;
    }
    finish(
        to_plan(&model, side),
        &x,
        items.len(),
        req,
        spec.to_string(),
    )
}

/// `n` items spread evenly over a dataset of `len` (all of them when `n ≥ len`).
fn spread(len: usize, n: usize, spec: &DataSpec) -> Result<Vec<usize>> {
    if len == 0 {
        return Err(TrainError::BadInput(format!(
            "calibration data `{spec}` has no images"
        )));
    }
    let n = n.min(len);
    Ok((0..n).map(|i| i * len / n).collect())
}

fn finish(
    plan: std::result::Result<Plan, kestrel_nn::export::ExportError>,
    nchw: &[f32],
    n: usize,
    req: &QuantizeRequest,
    calibration_source: String,
) -> Result<Quantized> {
    let plan = plan.map_err(|e| {
        TrainError::BadInput(format!(
            "cannot export the model to a plan to quantise: {e}"
        ))
    })?;
    let is = plan.input_shape();
    let x = nchw_to_nhwc(nchw, n, is.c, is.h * is.w);
    let opts = QuantizeOptions {
        method: req.method,
        method_name: req.method_name.clone(),
        depthwise_per_tensor: req.depthwise_per_tensor,
        threads: 0,
    };
    let (plan, values) = quantize(plan, &x, n, &opts)
        .map_err(|e| TrainError::Runtime(format!("quantising: {e}")))?;
    Ok(Quantized {
        plan,
        values,
        calibration_source,
    })
}

/// The JSON of `kestrel eval --plan`: one split scored by the fp32 model and by its int8 plan.
#[derive(Clone, Debug, Serialize)]
pub struct Int8EvalReport {
    /// `val` or `test`.
    pub split: String,
    /// The int8 plan file.
    pub plan: String,
    /// Images scored.
    pub images: usize,
    /// The fp32 model's metrics (as `kestrel eval` reports them).
    pub fp32: ClassificationSummary,
    /// The int8 plan's metrics.
    pub int8: ClassificationSummary,
    /// Fraction of images whose top class is the same under both.
    pub top1_agreement: f64,
    /// `fp32.accuracy − int8.accuracy`, in points (percent).
    pub accuracy_drop_points: f64,
}

/// Scores split `split` of the classification run `run` with its best checkpoint in fp32 and
/// with the int8 plan `q`.
pub fn eval_int8(run: &Path, split: EvalSplit, q: &Int8Plan) -> Result<Int8EvalReport> {
    let summary = match split {
        EvalSplit::Test => Some(run_dir::read_summary(run)?),
        EvalSplit::Val => None,
    };
    let opened = OpenRun::open(run, split)?;
    let meta = &opened.ckpt.meta;
    if !matches!(meta.spec, kestrel_nn::ModelSpec::Classifier(_)) {
        return Err(TrainError::BadInput(format!(
            "int8 plan {}: `eval --plan` scores classification runs; {} is not one",
            q.path.display(),
            run.display()
        )));
    }
    let k = meta.class_names.len();
    let r = meta.config.resolution;
    q.check_fits(r, k)?;
    let set = split_set(&opened)?;
    let device = Device::flex();
    let model = opened.ckpt.model(&device)?;
    let fp = predict_probs(&model, &set, &device)?;
    let n = set.len();
    let mut int8 = q.run_nhwc(&nchw_to_nhwc(&set.images, n, 3, r * r), n)?;
    softmax_rows(&mut int8, k);
    let summary_of = |probs: &[f32]| -> Result<ClassificationSummary> {
        let mut acc = ClassificationAccumulator::with_class_names(meta.class_names.clone())?;
        acc.update(&set.labels, probs)?;
        Ok(acc.summary()?)
    };
    let (fp32, int8s) = (summary_of(&fp)?, summary_of(&int8)?);
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0
    };
    let agree = fp
        .chunks_exact(k)
        .zip(int8.chunks_exact(k))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    if let Some(summary) = summary {
        record_test_evaluated(run, summary)?;
    }
    Ok(Int8EvalReport {
        split: split.name().to_string(),
        plan: q.path.display().to_string(),
        images: n,
        accuracy_drop_points: 100.0 * (fp32.accuracy - int8s.accuracy),
        fp32,
        int8: int8s,
        top1_agreement: agree as f64 / n as f64,
    })
}
