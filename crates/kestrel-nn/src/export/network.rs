//! [`Network`]: a classifier or an FCN segmenter as a list of folded layers, the common input of
//! every export format.
//!
//! Values are numbered: 0 is the input image, `i + 1` the output of `layers[i]`.

use crate::upsample::ResizeTo;
use kestrel_runtime::kernels::ConvGeometry;
use kestrel_runtime::{Activation, ResizeMode};

/// A convolution with batch norm folded into its bias, or a transposed convolution, in PyTorch's
/// layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    /// Weights: OIHW, `out × in/groups × kh × kw`, for a convolution; `in × out/groups × kh × kw`
    /// for a transposed one.
    pub weight: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding on both sides, along height and width (removed from both sides of the
    /// output of a transposed convolution).
    pub padding: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Activation after the bias.
    pub act: Activation,
}

impl ConvLayer {
    /// The window as the runtime describes it.
    pub fn geometry(&self) -> ConvGeometry {
        ConvGeometry {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

/// One step of the network.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// A folded convolution and its activation.
    Conv {
        /// Module path, e.g. `blocks.3.depthwise`.
        name: String,
        /// Input value.
        input: usize,
        /// The layer.
        conv: ConvLayer,
    },
    /// Max pooling (padding never wins, as in PyTorch).
    MaxPool {
        /// Module path.
        name: String,
        /// Input value.
        input: usize,
        /// Window height and width.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Padding on both sides.
        padding: [usize; 2],
    },
    /// `act(a + b)`: a residual connection.
    Add {
        /// Module path of the block.
        name: String,
        /// The main branch.
        a: usize,
        /// The shortcut.
        b: usize,
        /// Activation after the sum.
        act: Activation,
    },
    /// Mean over height and width.
    GlobalAvgPool {
        /// Module path.
        name: String,
        /// Input value.
        input: usize,
    },
    /// Fully connected layer on the pooled features.
    Linear {
        /// Module path.
        name: String,
        /// Input value.
        input: usize,
        /// Weights `[out][in]` (PyTorch's layout).
        weight: Vec<f32>,
        /// Bias, one per output.
        bias: Vec<f32>,
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// Resampling by interpolation (PyTorch's `F.interpolate`).
    Resize {
        /// Module path.
        name: String,
        /// Input value.
        input: usize,
        /// Interpolation kernel.
        mode: ResizeMode,
        /// PyTorch's `align_corners` (bilinear and bicubic).
        align_corners: bool,
        /// Scale factors or output size.
        resize: ResizeTo,
    },
    /// Transposed convolution.
    ConvTranspose {
        /// Module path.
        name: String,
        /// Input value.
        input: usize,
        /// The layer (weights `in × out/groups × kh × kw`).
        conv: ConvLayer,
        /// Extra rows / columns at the bottom / right of the output.
        output_padding: [usize; 2],
    },
    /// Depth to space (PyTorch's `pixel_shuffle`).
    PixelShuffle {
        /// Module path.
        name: String,
        /// Input value.
        input: usize,
        /// Upscale factor.
        factor: usize,
    },
    /// CARAFE's reassembly of `input` by `factor` with the k×k kernels whose logits (the
    /// content encoder's output, `factor²·kernel²` channels, before pixel shuffle and softmax)
    /// value `kernels` holds.
    Carafe {
        /// Module path.
        name: String,
        /// The features to reassemble.
        input: usize,
        /// The kernels' logits.
        kernels: usize,
        /// Upsampling factor σ.
        factor: usize,
        /// Reassembly kernel side k.
        kernel: usize,
    },
    /// The top-left corner of `input` with the height and width of value `like`.
    Crop {
        /// Module path.
        name: String,
        /// Input value.
        input: usize,
        /// The value whose size to crop to.
        like: usize,
    },
}

impl Layer {
    /// The layer's module path.
    pub fn name(&self) -> &str {
        match self {
            Layer::Conv { name, .. }
            | Layer::MaxPool { name, .. }
            | Layer::Add { name, .. }
            | Layer::GlobalAvgPool { name, .. }
            | Layer::Linear { name, .. }
            | Layer::Resize { name, .. }
            | Layer::ConvTranspose { name, .. }
            | Layer::PixelShuffle { name, .. }
            | Layer::Carafe { name, .. }
            | Layer::Crop { name, .. } => name,
        }
    }

    /// Values the layer reads.
    pub fn inputs(&self) -> Vec<usize> {
        match self {
            Layer::Conv { input, .. }
            | Layer::MaxPool { input, .. }
            | Layer::GlobalAvgPool { input, .. }
            | Layer::Linear { input, .. }
            | Layer::Resize { input, .. }
            | Layer::ConvTranspose { input, .. }
            | Layer::PixelShuffle { input, .. } => vec![*input],
            Layer::Crop { input, like, .. } => vec![*input, *like],
            Layer::Carafe { input, kernels, .. } => vec![*input, *kernels],
            Layer::Add { a, b, .. } => vec![*a, *b],
        }
    }
}

/// A model ready for export: a classifier (ends with [`Layer::Linear`]: logits per image) or a
/// segmenter (per-pixel class scores of the input's size).
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Architecture name (`mobilenet-v2`, `fcn8s-resnet18`, ...).
    pub arch: String,
    /// Input channels (3).
    pub in_channels: usize,
    /// Input height and width.
    pub resolution: usize,
    /// Layers in execution order; each reads only earlier values.
    pub layers: Vec<Layer>,
    /// Number of classes (output channels of the last layer).
    pub num_classes: usize,
}

impl Network {
    /// The value holding the logits: the last layer's output.
    pub fn output(&self) -> usize {
        self.layers.len()
    }

    /// Whether the output is a per-pixel score map (a segmenter) rather than logits per image.
    pub fn is_dense(&self) -> bool {
        !matches!(self.layers.last(), Some(Layer::Linear { .. }))
    }
}
