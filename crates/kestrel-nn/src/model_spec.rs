//! [`ModelSpec`]: which network a checkpoint or a command holds, and [`Model`], that network
//! built. Every verb that takes "a model" (eval, predict, export, bench) dispatches on these two
//! enums in one place instead of probing a checkpoint for each kind.

use crate::export::{save_onnx, save_segmenter_onnx, segmenter_to_plan, to_plan, ExportError};
use crate::models::fcn::{Fcn, SegmenterSpec};
use crate::models::multitask::{MultiTask, MultiTaskSpec};
use crate::models::zoo::{Classifier, ClassifierSpec};
use crate::upsample::UpsampleError;
use burn::tensor::Device;
use kestrel_runtime::Plan;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What it takes to build any kestrel network: a classifier, an FCN segmenter, or the multi-task
/// model (a segmenter and a classification head on one backbone). Stored in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSpec {
    /// An image classifier.
    Classifier(ClassifierSpec),
    /// A fully convolutional segmentation network.
    Segmenter(SegmenterSpec),
    /// Classification and segmentation on one backbone.
    Multitask(MultiTaskSpec),
}

impl ModelSpec {
    /// The model's name as `kestrel info` and the CLI spell it (`mobilenet-v2`,
    /// `fcn8s-mobilenet-v2`, …); a multi-task model is named by its FCN.
    pub fn name(&self) -> String {
        match self {
            ModelSpec::Classifier(s) => s.arch.to_string(),
            ModelSpec::Segmenter(s) => s.name.to_string(),
            ModelSpec::Multitask(s) => s.backbone.to_string(),
        }
    }

    /// The task the model serves: `classify`, `segment` or `multitask`.
    pub fn task(&self) -> &'static str {
        match self {
            ModelSpec::Classifier(_) => "classify",
            ModelSpec::Segmenter(_) => "segment",
            ModelSpec::Multitask(_) => "multitask",
        }
    }

    /// Checks every setting of the spec without building anything: widths, output strides and
    /// class counts (at most [`MAX_CLASSES`](crate::models::zoo::MAX_CLASSES) image classes and
    /// [`MAX_SEG_CLASSES`](crate::models::fcn::MAX_SEG_CLASSES) segmentation classes), each by
    /// the check its own spec type makes before building. The message names the field.
    pub fn check(&self) -> Result<(), String> {
        match self {
            ModelSpec::Classifier(s) => s.check().map_err(|e| e.to_string()),
            ModelSpec::Segmenter(s) => s.check().map_err(|e| e.to_string()),
            ModelSpec::Multitask(s) => s.check().map_err(|e| e.to_string()),
        }
    }

    /// Builds the network, freshly initialised, on `device`.
    pub fn init(&self, device: &Device) -> Result<Model, UpsampleError> {
        Ok(match self {
            ModelSpec::Classifier(s) => Model::Classifier(Box::new(s.init(device))),
            ModelSpec::Segmenter(s) => Model::Segmenter(Box::new(s.init(device)?)),
            ModelSpec::Multitask(s) => Model::Multitask(Box::new(s.init(device)?)),
        })
    }
}

/// A built network of any kind (see [`ModelSpec`]).
#[derive(Debug)]
pub enum Model {
    /// An image classifier.
    Classifier(Box<Classifier>),
    /// A fully convolutional segmentation network.
    Segmenter(Box<Fcn>),
    /// Classification and segmentation on one backbone.
    Multitask(Box<MultiTask>),
}

impl Model {
    /// The BatchNorm-folded kestrel-runtime plan on `resolution` × `resolution` inputs. A
    /// multi-task model has no single-output export.
    pub fn to_plan(&self, resolution: usize) -> Result<Plan, ExportError> {
        match self {
            Model::Classifier(m) => to_plan(m, resolution),
            Model::Segmenter(m) => segmenter_to_plan(m, resolution),
            Model::Multitask(_) => Err(Self::multitask_unsupported()),
        }
    }

    /// Writes the BatchNorm-folded ONNX model (with `metadata` as its metadata properties) to
    /// `path`, atomically.
    pub fn save_onnx(
        &self,
        resolution: usize,
        metadata: &[(String, String)],
        path: &Path,
    ) -> Result<(), ExportError> {
        match self {
            Model::Classifier(m) => save_onnx(m, resolution, metadata, path),
            Model::Segmenter(m) => save_segmenter_onnx(m, resolution, metadata, path),
            Model::Multitask(_) => Err(Self::multitask_unsupported()),
        }
    }

    fn multitask_unsupported() -> ExportError {
        ExportError::Unsupported {
            layer: "model".into(),
            message: "a multitask model (classify + segment) cannot be exported; expected a \
                      classifier or a segmentation run"
                .into(),
        }
    }
}
