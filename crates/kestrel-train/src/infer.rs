//! The engine that runs `kestrel predict`: kestrel-runtime on the exported plan (batch norm
//! folded, NHWC; the default) or the Burn model on Flex. Both take the same NCHW preprocessed
//! images and return softmax probabilities in the same layout, so callers do not care which ran.
//!
//! Either engine runs the images in batches of [`InferenceEngine::batch`], counted from the
//! first image given: `kestrel predict --shard` cuts the image list at multiples of it, so every
//! batch a shard runs is one the unsharded command runs too, and the probabilities are the same
//! bits.

use crate::error::{Result, TrainError};
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use kestrel_nn::export::{nchw_to_nhwc, nhwc_to_nchw, segmenter_to_plan, to_plan, ExportError};
use kestrel_nn::models::fcn::Fcn;
use kestrel_nn::Classifier;
use kestrel_runtime::quant::{Int8Engine, Int8Options, QuantPlan};
use kestrel_runtime::{Engine, EngineOptions, Plan};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which engine runs inference.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum InferenceEngine {
    /// kestrel-runtime on the model exported as a plan, all cores.
    #[default]
    Runtime,
    /// The Burn model (eval mode, batch norm folded) on the Flex backend.
    Burn,
    /// kestrel-runtime's int8 engine on a quantised plan of the model (`kestrel quantize`).
    Int8(Int8Plan),
}

/// A quantised plan read from a file, for [`InferenceEngine::Int8`].
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Plan {
    /// The file it came from (named in errors).
    pub path: PathBuf,
    /// The plan.
    pub plan: Arc<QuantPlan>,
}

impl Int8Plan {
    /// Reads and validates an int8 plan file; a bad file is bad input naming it.
    pub fn load(path: &Path) -> Result<Self> {
        let plan = QuantPlan::load(path).map_err(|e| TrainError::BadInput(e.to_string()))?;
        Ok(Int8Plan {
            path: path.to_path_buf(),
            plan: Arc::new(plan),
        })
    }

    /// Bad input unless the plan takes `side`×`side` RGB images and returns `classes` scores
    /// per pixel (1×1 for a classifier): the plan must be of the model it stands in for.
    pub fn check_fits(&self, side: usize, classes: usize) -> Result<()> {
        let (i, o) = (self.plan.plan.input_shape(), self.plan.plan.output_shape());
        if i != kestrel_runtime::Shape::new(side, side, 3) || o.c != classes {
            return Err(TrainError::BadInput(format!(
                "int8 plan {}: takes {i} images and gives {} classes, but the model takes {side}x{side}x3 and gives {classes}",
                self.path.display(),
                o.c
            )));
        }
        Ok(())
    }

    /// Runs the plan on NHWC images `x` (`n` of them) in batches of
    /// [`InferenceEngine::batch`], returning the NHWC output.
    pub fn run_nhwc(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let q = (*self.plan).clone();
        let is = q.plan.input_shape();
        let mut engine = Int8Engine::new(q, Int8Options::default())
            .map_err(|e| TrainError::Runtime(format!("kestrel-runtime int8: {e}")))?;
        let mut out = Vec::with_capacity(n * self.plan.plan.output_shape().len());
        for chunk in x.chunks(InferenceEngine::Runtime.batch() * is.len()) {
            let y = engine
                .run(chunk, chunk.len() / is.len())
                .map_err(|e| TrainError::Runtime(format!("kestrel-runtime int8: {e}")))?;
            out.extend_from_slice(y);
        }
        Ok(out)
    }
}

impl InferenceEngine {
    /// Images per run of the engine. Burn's is smaller: its activations of a large model at
    /// 224 px take far more memory than the runtime's arena.
    pub fn batch(&self) -> usize {
        match self {
            InferenceEngine::Runtime | InferenceEngine::Int8(_) => 64,
            InferenceEngine::Burn => 8,
        }
    }

    /// `runtime`, `burn` or `int8`, as `--engine` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            InferenceEngine::Runtime => "runtime",
            InferenceEngine::Burn => "burn",
            InferenceEngine::Int8(_) => "int8",
        }
    }
}

fn export_error(e: ExportError) -> TrainError {
    match e {
        ExportError::Unsupported { .. } | ExportError::Resolution { .. } => TrainError::BadInput(
            format!("cannot run the model on kestrel-runtime: {e} (`--engine burn` runs it)"),
        ),
        other => TrainError::Runtime(format!("exporting the model to kestrel-runtime: {other}")),
    }
}

/// Softmax over each consecutive run of `k` values, in place.
pub(crate) fn softmax_rows(x: &mut [f32], k: usize) {
    for row in x.chunks_exact_mut(k) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut s = 0.0f64;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v as f64;
        }
        for v in row.iter_mut() {
            *v = (*v as f64 / s) as f32;
        }
    }
}

/// Runs `plan` on NCHW images `x` (`n` of them), [`InferenceEngine::batch`] at a time, and
/// returns the NHWC output.
fn run_plan(plan: Plan, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let per_image = plan.input_shape().len();
    debug_assert_eq!(x.len(), n * per_image);
    run_plan_batches(plan, x.chunks(InferenceEngine::Runtime.batch() * per_image))
}

/// Runs `plan` once per item of `batches` (NCHW images, whole ones), one engine for all, and
/// returns the NHWC outputs one after another.
fn run_plan_batches<B: AsRef<[f32]>>(
    plan: Plan,
    batches: impl Iterator<Item = B>,
) -> Result<Vec<f32>> {
    let is = plan.input_shape();
    let mut engine = Engine::new(plan, EngineOptions::default())
        .map_err(|e| TrainError::Runtime(format!("kestrel-runtime: {e}")))?;
    let mut out = Vec::new();
    for x in batches {
        let (x, n) = (x.as_ref(), x.as_ref().len() / is.len());
        let y = engine
            .run(&nchw_to_nhwc(x, n, is.c, is.h * is.w), n)
            .map_err(|e| TrainError::Runtime(format!("kestrel-runtime: {e}")))?;
        out.extend_from_slice(y);
    }
    Ok(out)
}

/// `f` (a Burn forward pass and softmax) on the NCHW images `x` of `r` × `r`,
/// [`InferenceEngine::batch`] at a time, on the device `model` lives on; the outputs in order.
fn burn_batches<M: Module>(
    model: &M,
    x: &[f32],
    r: usize,
    f: impl Fn(Tensor<4>) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    let plane = 3 * r * r;
    let mut out = Vec::new();
    for chunk in x.chunks(InferenceEngine::Burn.batch() * plane) {
        out.extend(f(input_for(model, chunk.to_vec(), chunk.len() / plane, r))?);
    }
    Ok(out)
}

fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec()
        .map_err(|e| TrainError::Runtime(format!("reading probabilities: {e:?}")))
}

/// `n` NCHW images of `r` × `r` as a tensor on the device `model` lives on.
fn input_for<M: Module>(model: &M, x: Vec<f32>, n: usize, r: usize) -> Tensor<4> {
    let device = model
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex);
    Tensor::<4>::from_data(TensorData::new(x, [n, 3, r, r]), &device)
}

/// Softmax probabilities over the channels of the output of `plan` on `n` NHWC-ordered inputs
/// `x`, in the plan's NHWC output layout, and the channel count.
fn plan_probs(
    plan: std::result::Result<Plan, ExportError>,
    x: &[f32],
    n: usize,
) -> Result<(Vec<f32>, usize)> {
    let plan = plan.map_err(export_error)?;
    let k = plan.output_shape().c;
    let mut p = run_plan(plan, x, n)?;
    softmax_rows(&mut p, k);
    Ok((p, k))
}

/// Softmax class probabilities (row-major, images × classes) of `model` on kestrel-runtime, one
/// engine run per item of `batches` (NCHW images of `r` × `r`), so that callers choose the
/// batches; `None` when the runtime cannot run the model (a layer it does not export, an input
/// too small, a non-finite weight), for the caller to run the Burn model instead.
pub(crate) fn runtime_classifier_probs(
    model: &Classifier,
    r: usize,
    batches: impl Iterator<Item = Vec<f32>>,
) -> Result<Option<Vec<f32>>> {
    let plan = match to_plan(model, r) {
        Ok(plan) => plan,
        Err(
            ExportError::Unsupported { .. }
            | ExportError::Resolution { .. }
            | ExportError::NonFinite { .. },
        ) => return Ok(None),
        Err(e) => return Err(export_error(e)),
    };
    let k = plan.output_shape().c;
    let mut out = run_plan_batches(plan, batches)?;
    softmax_rows(&mut out, k);
    Ok(Some(out))
}

/// Softmax class probabilities (`n × classes`) of `model` on `n` NCHW images of `r` × `r`.
pub fn classifier_probs(
    model: Classifier,
    x: Vec<f32>,
    n: usize,
    r: usize,
    engine: &InferenceEngine,
) -> Result<Vec<f32>> {
    match engine {
        InferenceEngine::Runtime => {
            let (p, _) = plan_probs(to_plan(&model, r), &x, n)?;
            Ok(p)
        }
        InferenceEngine::Burn => {
            let model = model.valid().fold_bn();
            burn_batches(&model, &x, r, |t| read(softmax(model.forward(t), 1)))
        }
        InferenceEngine::Int8(q) => {
            let k = model.num_classes();
            q.check_fits(r, k)?;
            let mut p = q.run_nhwc(&nchw_to_nhwc(&x, n, 3, r * r), n)?;
            softmax_rows(&mut p, k);
            Ok(p)
        }
    }
}

/// Per-pixel softmax probabilities (`n × classes × r × r`, NCHW) of an FCN on `n` NCHW images
/// of `r` × `r`.
pub fn segmenter_probs(
    model: &Fcn,
    x: Vec<f32>,
    n: usize,
    r: usize,
    engine: &InferenceEngine,
) -> Result<Vec<f32>> {
    match engine {
        InferenceEngine::Runtime => {
            let (p, k) = plan_probs(segmenter_to_plan(model, r), &x, n)?;
            Ok(nhwc_to_nchw(&p, n, k, r * r))
        }
        InferenceEngine::Burn => burn_batches(model, &x, r, |t| read(softmax(model.forward(t), 1))),
        InferenceEngine::Int8(q) => Err(TrainError::BadInput(format!(
            "int8 plan {}: int8 inference runs classifiers; segmentation models run in fp32 (`--engine runtime`)",
            q.path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip_and_softmax_normalises() {
        let x: Vec<f32> = (0..2 * 3 * 5).map(|i| i as f32).collect();
        let y = nchw_to_nhwc(&x, 2, 3, 5);
        // image 1, pixel 2, channel 1: NCHW index (1·3 + 1)·5 + 2 = 22.
        assert_eq!(y[(5 + 2) * 3 + 1], 22.0);
        assert_eq!(nhwc_to_nchw(&y, 2, 3, 5), x);
        let mut p = vec![1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0];
        softmax_rows(&mut p, 3);
        // softmax([1, 2, 3]) = [0.09003057, 0.24472847, 0.66524096] (scipy.special.softmax).
        for (a, b) in p[..3].iter().zip([0.09003057, 0.24472847, 0.66524096]) {
            assert!((a - b).abs() < 1e-6, "{p:?}");
        }
        assert!(p[3..].iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6));
    }
}
