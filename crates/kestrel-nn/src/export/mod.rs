//! Exporting trained classifiers and FCN segmenters ([`lower_segmenter`]) for deployment: batch norm folded into the convolutions, then
//! either a [`kestrel_runtime::Plan`] ([`to_plan`]) or an ONNX model ([`to_onnx`]).
//!
//! Both go through one intermediate description, [`Network`]: [`lower()`] reads a [`Classifier`]'s
//! tensors into a list of folded convolutions, pools, residual adds and the final linear layer,
//! and each format writes that list out. The exported models take the same input as the Burn
//! model — already resized and normalised — and return logits (no softmax).
//!
//! A runtime plan itself, fp32 or int8, can be written as ONNX too ([`qdq`]: an int8 plan in
//! QDQ form).
//!
//! [`Classifier`]: crate::models::zoo::Classifier

mod error;
pub mod layout;
pub mod lower;
pub mod lower_fcn;
pub mod network;
pub mod onnx;
mod onnx_graph;
pub mod plan;
pub mod proto;
pub mod qdq;
#[cfg(test)]
pub(crate) mod synthetic;

pub use error::ExportError;
pub use layout::{nchw_to_nhwc, nhwc_to_nchw};
pub use lower::lower;
pub use lower_fcn::lower_segmenter;
pub use network::{ConvLayer, Layer, Network};
pub use onnx::{
    network_to_onnx, save_onnx, save_segmenter_onnx, to_onnx, to_onnx_with_metadata, ONNX_OPSET,
};
pub use plan::{network_to_plan, segmenter_to_plan, to_plan};
pub use qdq::{plan_to_onnx, quant_plan_to_onnx};
