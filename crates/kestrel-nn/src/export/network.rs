//! [`Network`]: a classifier as a list of folded layers, the common input of every export format.
//!
//! Values are numbered: 0 is the input image, `i + 1` the output of `layers[i]`.

use kestrel_runtime::Activation;

/// A convolution with batch norm folded into its bias, in PyTorch's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    /// OIHW weights, `out × in/groups × kh × kw`.
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
    /// Zero padding on both sides, along height and width.
    pub padding: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Activation after the bias.
    pub act: Activation,
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
}

impl Layer {
    /// The layer's module path.
    pub fn name(&self) -> &str {
        match self {
            Layer::Conv { name, .. }
            | Layer::MaxPool { name, .. }
            | Layer::Add { name, .. }
            | Layer::GlobalAvgPool { name, .. }
            | Layer::Linear { name, .. } => name,
        }
    }

    /// Values the layer reads.
    pub fn inputs(&self) -> Vec<usize> {
        match self {
            Layer::Conv { input, .. }
            | Layer::MaxPool { input, .. }
            | Layer::GlobalAvgPool { input, .. }
            | Layer::Linear { input, .. } => vec![*input],
            Layer::Add { a, b, .. } => vec![*a, *b],
        }
    }
}

/// A classifier ready for export.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Architecture name (`mobilenet-v2`, ...).
    pub arch: String,
    /// Input channels (3).
    pub in_channels: usize,
    /// Input height and width.
    pub resolution: usize,
    /// Layers in execution order; each reads only earlier values.
    pub layers: Vec<Layer>,
    /// Number of classes (outputs of the last layer).
    pub num_classes: usize,
}

impl Network {
    /// The value holding the logits: the last layer's output.
    pub fn output(&self) -> usize {
        self.layers.len()
    }
}
