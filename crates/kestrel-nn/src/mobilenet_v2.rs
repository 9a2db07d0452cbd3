//! MobileNetV2 (Sandler et al., 2018) exactly as torchvision builds it: the network is the (t, c, n, s)
//! table below and one block type, the inverted residual with a linear bottleneck.
//!
//! Fully convolutional up to the global pooling, so any input of at least 32 px works, square or
//! not.

use crate::conv_bn_act::{Activation, ConvBnAct, ConvBnActConfig};
use crate::divisible::make_divisible;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// The inverted-residual table of the paper (Table 2): expansion t, output channels c, repeats n,
/// first stride s.
pub const MOBILENET_V2_TABLE: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Configuration of one [`InvertedResidual`].
#[derive(Config, Debug)]
pub struct InvertedResidualConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Stride of the depthwise convolution.
    pub stride: usize,
    /// Expansion ratio t.
    pub expand_ratio: usize,
    /// Dilation of the depthwise convolution.
    #[config(default = 1)]
    pub dilation: usize,
}

/// Expand (1×1, ReLU6) → depthwise 3×3 (ReLU6) → project (1×1, linear), plus the input when the
/// shapes agree.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion; absent when t = 1.
    pub expand: Option<ConvBnAct>,
    /// 3×3 depthwise convolution.
    pub depthwise: ConvBnAct,
    /// 1×1 linear projection.
    pub project: ConvBnAct,
    /// Whether the block adds its input (stride 1 and equal channels).
    #[module(skip)]
    pub residual: bool,
}

impl InvertedResidualConfig {
    /// Builds the block from [`InvertedResidualConfig::stages`].
    pub fn init(&self, device: &Device) -> InvertedResidual {
        let mut expand = None;
        let mut depthwise = None;
        let mut project = None;
        for (field, stage) in self.stages() {
            let module = Some(stage.init(device));
            match field {
                "expand" => expand = module,
                "depthwise" => depthwise = module,
                _ => project = module,
            }
        }
        InvertedResidual {
            expand,
            depthwise: depthwise.expect("every block has a depthwise stage"),
            project: project.expect("every block has a projection"),
            residual: self.stride == 1 && self.in_channels == self.out_channels,
        }
    }

    /// The block's convolutions in order, named as its fields: `expand` (absent when t = 1),
    /// `depthwise`, `project`.
    pub fn stages(&self) -> Vec<(&'static str, ConvBnActConfig)> {
        let hidden = self.in_channels * self.expand_ratio;
        let mut stages = Vec::with_capacity(3);
        if self.expand_ratio != 1 {
            stages.push((
                "expand",
                ConvBnActConfig::new(self.in_channels, hidden).with_kernel(1),
            ));
        }
        stages.push((
            "depthwise",
            ConvBnActConfig::new(hidden, hidden)
                .with_stride(self.stride)
                .with_dilation(self.dilation)
                .with_groups(hidden),
        ));
        stages.push((
            "project",
            ConvBnActConfig::new(hidden, self.out_channels)
                .with_kernel(1)
                .with_activation(Activation::Identity),
        ));
        stages
    }
}

impl MobileNetV2Config {
    /// The 17 inverted-residual blocks, from [`MOBILENET_V2_TABLE`] with the width multiplier.
    pub fn blocks(&self) -> Vec<InvertedResidualConfig> {
        let (stem, outs, _) = self.channels();
        let strides = MOBILENET_V2_TABLE
            .iter()
            .flat_map(|&(t, _, n, s)| (0..n).map(move |i| (t, if i == 0 { s } else { 1 })));
        let mut in_c = stem;
        strides
            .zip(outs)
            .map(|((t, stride), out)| {
                let block = InvertedResidualConfig::new(in_c, out, stride, t);
                in_c = out;
                block
            })
            .collect()
    }
}

impl InvertedResidual {
    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = match &self.expand {
            Some(e) => e.forward(x.clone()),
            None => x.clone(),
        };
        let y = self.project.forward(self.depthwise.forward(h));
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

/// Configuration of [`MobileNetV2`].
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Number of output classes.
    pub num_classes: usize,
    /// Width multiplier α; channel counts are rounded to multiples of `round_nearest`.
    #[config(default = 1.0)]
    pub width: f64,
    /// Channel rounding.
    #[config(default = 8)]
    pub round_nearest: usize,
    /// Dropout before the classifier.
    #[config(default = 0.2)]
    pub dropout: f64,
}

/// MobileNetV2: stem, 17 inverted residuals, 1×1 head, global average pooling, dropout, linear.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// 3×3 stride-2 convolution from RGB.
    pub stem: ConvBnAct,
    /// The inverted residuals, in table order.
    pub blocks: Vec<InvertedResidual>,
    /// 1×1 convolution to the last channel count (1280 at α ≤ 1).
    pub head: ConvBnAct,
    /// Dropout before the classifier.
    pub dropout: Dropout,
    /// The classifier.
    pub classifier: Linear,
}

impl MobileNetV2Config {
    /// Channel count of the stem, every block's output, and the head, in order.
    pub fn channels(&self) -> (usize, Vec<usize>, usize) {
        let stem = make_divisible(32.0 * self.width, self.round_nearest);
        let mut blocks = Vec::new();
        for &(_, c, n, _) in MOBILENET_V2_TABLE.iter() {
            let out = make_divisible(c as f64 * self.width, self.round_nearest);
            blocks.extend(std::iter::repeat_n(out, n));
        }
        let head = make_divisible(1280.0 * self.width.max(1.0), self.round_nearest);
        (stem, blocks, head)
    }

    /// Builds the network with torchvision's initialisation (Kaiming-normal fan-out convolutions,
    /// BN γ = 1 and β = 0, classifier weights N(0, 0.01²) and zero bias).
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let (stem_c, _, head_c) = self.channels();
        let stem = ConvBnActConfig::new(3, stem_c).with_stride(2).init(device);
        let mut blocks = Vec::new();
        let mut in_c = stem_c;
        for &(t, c, n, s) in MOBILENET_V2_TABLE.iter() {
            let out = make_divisible(c as f64 * self.width, self.round_nearest);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                blocks.push(InvertedResidualConfig::new(in_c, out, stride, t).init(device));
                in_c = out;
            }
        }
        let head = ConvBnActConfig::new(in_c, head_c)
            .with_kernel(1)
            .init(device);
        let classifier = LinearConfig::new(head_c, self.num_classes)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            })
            .init(device);
        let classifier = Linear {
            bias: classifier.bias.map(|b| b.map(|t| t.zeros_like())),
            ..classifier
        };
        MobileNetV2 {
            stem,
            blocks,
            head,
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier,
        }
    }
}

impl MobileNetV2 {
    /// The feature map before pooling: (N, C_head, H/32, W/32).
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.head.forward(x)
    }

    /// Class logits (N, classes) for images (N, 3, H, W).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.features(x);
        let pooled = crate::pool::global_avg_pool(f);
        self.classifier.forward(self.dropout.forward(pooled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_equals_torchvision() {
        // torchvision.models.mobilenet_v2(): sum(p.numel() for p in m.parameters()) = 3,504,872.
        let device = Device::flex();
        let model = MobileNetV2Config::new(1000).init(&device);
        assert_eq!(crate::params::trainable_params(&model), 3_504_872);
        // torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10): 700,490 (its definition
        // counted layer by layer; the same count gives 3,504,872 at width 1).
        let model = MobileNetV2Config::new(10).with_width(0.5).init(&device);
        assert_eq!(crate::params::trainable_params(&model), 700_490);
    }

    #[test]
    fn any_input_of_at_least_32_px() {
        let device = Device::flex();
        let model = MobileNetV2Config::new(7).with_width(0.35).init(&device);
        for (h, w) in [(32usize, 32usize), (64, 64), (45, 97)] {
            let x = Tensor::<4>::zeros([2, 3, h, w], &device);
            assert_eq!(model.forward(x.clone()).dims(), [2, 7]);
            // Output stride 32, with torchvision's ceil-style rounding for odd sizes.
            let f = model.features(x);
            assert_eq!(
                f.dims(),
                [2, 1280, h.div_ceil(32), w.div_ceil(32)],
                "{h}x{w}"
            );
        }
    }
}
