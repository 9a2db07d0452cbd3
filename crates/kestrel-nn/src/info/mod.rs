//! A per-layer description of a network at a given input size — what `kestrel info` prints —
//! computed by arithmetic on the architecture description alone: nothing is built or run, so
//! describing ResNet-50 at 224 px is instant.
//!
//! Each model's `Config` implements [`Describe`] by walking the same tables and block configs
//! its `init` builds the Burn modules from, feeding every layer to a [`Tracer`], which tracks the
//! feature-map shape and receptive field and counts parameters and multiply-adds.
//!
//! One file per model, beside the tracer: [`mobilenet_v1`], [`mobilenet_v2`], [`resnet`] and
//! [`fcn`] hold each model's layer walk (and the tests of its numbers against the papers and
//! torchvision); [`classifier`] describes a classifier by name ([`crate::ClassifierSpec`]).
//!
//! Conventions (those of the MobileNet papers and torchvision's model table):
//! - `params` are trainable parameters: convolution and linear weights and biases and BatchNorm γ
//!   and β; running statistics are buffers and not counted. A convolution row's `params` include
//!   the BatchNorm that follows it, so the rows sum to the total.
//! - `macs` are the multiply-adds of convolutions and fully connected layers only: out_C · H_out ·
//!   W_out · (in_C / groups) · k² for a convolution, in · out for a linear layer. Pooling,
//!   BatchNorm, activations and residual additions count zero.
//! - `receptive_field` is the theoretical receptive field (see [`ReceptiveField`]) of one unit of
//!   the layer's output, in input pixels, along one axis. For a residual sum it is the larger of
//!   the two branches'.
//! - Inputs are square; shapes are `[C, H, W]` without the batch dimension.
//!
//! [`ReceptiveField`]: crate::geometry::ReceptiveField

pub mod classifier;
pub mod fcn;
pub mod mobilenet_v1;
pub mod mobilenet_v2;
pub mod named;
pub mod resnet;
mod tracer;

pub use tracer::{Cursor, Tracer};

use serde::{Deserialize, Serialize};

/// What a layer row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// A convolution (with its BatchNorm, when it has one); `groups` tells depthwise ones apart.
    Conv,
    /// A fully connected (linear) layer.
    Fc,
    /// Max pooling.
    MaxPool,
    /// Average pooling (global average pooling: the window is the whole map).
    AvgPool,
    /// An upsampling layer (resampling, transposed convolution, pixel shuffle, CARAFE,
    /// Meta-Upscale): `kernel` is its support, the number of input units along one axis that one
    /// output unit depends on; `stride` and `dilation` are 1; the factor is `out / in`.
    Upsample,
}

/// One row of [`ModelInfo::layers`]. Field names and order are the `kestrel info --json` contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Module path in the Burn model (e.g. `layer2.0.conv1`, `blocks.3.depthwise`, `fc`): the
    /// row's parameters are exactly the trainable tensors under `name.`.
    pub name: String,
    /// Layer type.
    pub kind: LayerKind,
    /// Input shape [C, H, W].
    #[serde(rename = "in")]
    pub input: [usize; 3],
    /// Output shape [C, H, W].
    pub out: [usize; 3],
    /// Square kernel (window) size; 1 for a fully connected layer.
    pub kernel: usize,
    /// Stride; 1 for a fully connected layer.
    pub stride: usize,
    /// Dilation; 1 for pooling and fully connected layers.
    pub dilation: usize,
    /// Convolution groups (input channels for a depthwise convolution); 1 for other layers.
    pub groups: usize,
    /// Trainable parameters, including the BatchNorm after a convolution.
    pub params: u64,
    /// Multiply-adds (zero for pooling).
    pub macs: u64,
    /// Receptive field of one output unit, in input pixels.
    pub receptive_field: usize,
}

/// A network described layer by layer at one input size. Field names and order are the
/// `kestrel info --json` contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Command-line name of the network (`resnet50`).
    pub model: String,
    /// Total trainable parameters (the sum of the rows').
    pub params: u64,
    /// Total multiply-adds (the sum of the rows').
    pub macs: u64,
    /// Input shape [C, H, W].
    pub input: [usize; 3],
    /// The layers in execution order (a residual block's shortcut after its main branch).
    pub layers: Vec<LayerInfo>,
}

/// Why a network cannot be described.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// A setting is out of range.
    #[error("bad value for `{field}`: expected {expected}, got {got}")]
    BadValue {
        /// The setting (`width`, `classes`, ...).
        field: String,
        /// What it must be.
        expected: String,
        /// What it was.
        got: String,
    },
    /// The input is too small: some layer's window does not fit its input.
    #[error(
        "input of {resolution}×{resolution} px is too small: layer `{layer}` gets a {size}×{size} map, \
         which its {kernel}×{kernel} window (padding {padding}, dilation {dilation}) does not fit"
    )]
    TooSmall {
        /// Input size asked for.
        resolution: usize,
        /// The first layer that does not fit.
        layer: String,
        /// Its input size.
        size: usize,
        /// Its kernel.
        kernel: usize,
        /// Its padding.
        padding: usize,
        /// Its dilation.
        dilation: usize,
    },
    /// Counts too large for 64 bits (absurd width or resolution).
    #[error("layer `{0}`: parameter or multiply-add count overflows")]
    Overflow(String),
    /// The architecture description is inconsistent (a kestrel bug, not bad input).
    #[error("inconsistent architecture at layer `{layer}`: {why}")]
    Inconsistent {
        /// The layer.
        layer: String,
        /// What does not agree.
        why: String,
    },
}
/// A network configuration that can list its layers without building the network.
pub trait Describe {
    /// Feeds every layer, in execution order, to `tracer` (which starts at the RGB input).
    fn trace(&self, tracer: &mut Tracer) -> Result<(), InfoError>;
}

/// A count for reading, as `kestrel info` and `kestrel train` print parameters: `1234567` →
/// `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Describes `net` (named `model`) on RGB inputs of `resolution` × `resolution` pixels.
pub fn describe(
    model: &str,
    net: &impl Describe,
    resolution: usize,
) -> Result<ModelInfo, InfoError> {
    let mut tracer = Tracer::new(3, resolution);
    net.trace(&mut tracer)?;
    tracer.finish(model)
}
