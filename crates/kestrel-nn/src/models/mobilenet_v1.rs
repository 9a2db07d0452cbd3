//! MobileNet V1 (Howard et al., 2017), as the paper's Table 1 lays it out: a full 3×3 stride-2
//! convolution to 32 channels, 13 depthwise-separable blocks (3×3 depthwise + BN + ReLU, then 1×1
//! pointwise + BN + ReLU), global average pooling and a fully connected classifier.
//!
//! - Width multiplier α: every layer has int(c·α) channels — plain truncation, as the paper and the
//!   Keras and TF-slim reference implementations (not MobileNetV2's `make_divisible`); at least 1.
//! - Resolution multiplier ρ: simply the input size; the network is fully convolutional up to the
//!   global pooling, so any input of at least 32 px works.
//! - The last depthwise block has stride 1: Table 1's "Conv dw / s2" on the 7×7 row is a known
//!   typo (the feature map stays 7×7, and the reference implementations use stride 1).
//! - ReLU, not ReLU6 (the paper's Figure 3; TF-slim's checkpoints use ReLU6, which has the same
//!   parameters and multiply-adds).

use crate::layers::conv_bn_act::{Activation, ConvBnAct, ConvBnActConfig};
use crate::layers::fold::MapConvBnAct;
use crate::layers::init::mobilenet_classifier;
use crate::layers::pool::pooled_logits;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{Device, Tensor};

/// Channels of the first, full convolution (before α).
pub const MOBILENET_V1_STEM: usize = 32;

/// The 13 depthwise-separable blocks of the paper's Table 1: (output channels before α, stride of
/// the depthwise convolution).
pub const MOBILENET_V1_TABLE: [(usize, usize); 13] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
];

/// Configuration of one [`DepthwiseSeparable`] block.
#[derive(Config, Debug)]
pub struct DepthwiseSeparableConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Stride of the depthwise convolution.
    pub stride: usize,
}

/// 3×3 depthwise convolution + BN + ReLU, then 1×1 pointwise convolution + BN + ReLU.
#[derive(Module, Debug)]
pub struct DepthwiseSeparable {
    /// The 3×3 depthwise convolution (groups = channels).
    pub depthwise: ConvBnAct,
    /// The 1×1 pointwise convolution.
    pub pointwise: ConvBnAct,
}

impl DepthwiseSeparableConfig {
    /// The depthwise stage.
    pub fn depthwise(&self) -> ConvBnActConfig {
        ConvBnActConfig::new(self.in_channels, self.in_channels)
            .with_stride(self.stride)
            .with_groups(self.in_channels)
            .with_activation(Activation::Relu)
    }

    /// The pointwise stage.
    pub fn pointwise(&self) -> ConvBnActConfig {
        ConvBnActConfig::new(self.in_channels, self.out_channels)
            .with_kernel(1)
            .with_activation(Activation::Relu)
    }

    /// Builds the block.
    pub fn init(&self, device: &Device) -> DepthwiseSeparable {
        DepthwiseSeparable {
            depthwise: self.depthwise().init(device),
            pointwise: self.pointwise().init(device),
        }
    }
}

impl DepthwiseSeparable {
    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pointwise.forward(self.depthwise.forward(x))
    }
}

/// Configuration of [`MobileNetV1`].
#[derive(Config, Debug)]
pub struct MobileNetV1Config {
    /// Number of output classes.
    pub num_classes: usize,
    /// Width multiplier α: every layer has int(c·α) channels.
    #[config(default = 1.0)]
    pub width: f64,
    /// Dropout before the classifier; the paper uses none (Keras and TF-slim use 0.001).
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// MobileNet V1: stem, 13 depthwise-separable blocks, global average pooling, dropout, linear.
#[derive(Module, Debug)]
pub struct MobileNetV1 {
    /// 3×3 stride-2 convolution from RGB.
    pub stem: ConvBnAct,
    /// The depthwise-separable blocks, in table order.
    pub blocks: Vec<DepthwiseSeparable>,
    /// Dropout before the classifier.
    pub dropout: Dropout,
    /// The classifier.
    pub classifier: Linear,
}

impl MobileNetV1Config {
    /// `c` channels thinned by α: int(c·α), at least 1.
    pub fn thin(&self, channels: usize) -> usize {
        ((channels as f64 * self.width) as usize).max(1)
    }

    /// The stem convolution.
    pub fn stem(&self) -> ConvBnActConfig {
        ConvBnActConfig::new(3, self.thin(MOBILENET_V1_STEM))
            .with_stride(2)
            .with_activation(Activation::Relu)
    }

    /// The 13 blocks, from [`MOBILENET_V1_TABLE`] thinned by α.
    pub fn blocks(&self) -> Vec<DepthwiseSeparableConfig> {
        let mut in_c = self.thin(MOBILENET_V1_STEM);
        MOBILENET_V1_TABLE
            .iter()
            .map(|&(c, stride)| {
                let out = self.thin(c);
                let block = DepthwiseSeparableConfig::new(in_c, out, stride);
                in_c = out;
                block
            })
            .collect()
    }

    /// Channels of the last feature map (1024·α).
    pub fn feature_channels(&self) -> usize {
        self.thin(MOBILENET_V1_TABLE[MOBILENET_V1_TABLE.len() - 1].0)
    }

    /// Builds the network: Kaiming-normal (fan-out) convolutions, BN γ = 1 and β = 0, classifier
    /// weights N(0, 0.01²) and zero bias, as torchvision initialises its MobileNets.
    pub fn init(&self, device: &Device) -> MobileNetV1 {
        let classifier = mobilenet_classifier(self.feature_channels(), self.num_classes, device);
        MobileNetV1 {
            stem: self.stem().init(device),
            blocks: self.blocks().iter().map(|b| b.init(device)).collect(),
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier,
        }
    }
}

impl MobileNetV1 {
    /// The feature map before pooling: (N, 1024·α, ⌈H/32⌉, ⌈W/32⌉).
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }

    /// Class logits (N, classes) for images (N, 3, H, W).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        pooled_logits(self.features(x), &self.dropout, &self.classifier)
    }
}

impl MapConvBnAct for DepthwiseSeparable {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        DepthwiseSeparable {
            depthwise: f(self.depthwise),
            pointwise: f(self.pointwise),
        }
    }
}

impl MapConvBnAct for MobileNetV1 {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        MobileNetV1 {
            stem: f(self.stem),
            blocks: self.blocks.map_conv_bn_act(f),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::describe;
    use crate::layers::params::trainable_params;

    #[test]
    fn channels_follow_table_1_thinned_by_truncation() {
        let c = MobileNetV1Config::new(1000);
        let outs: Vec<usize> = c.blocks().iter().map(|b| b.out_channels).collect();
        assert_eq!(
            outs,
            [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
        );
        let strides: Vec<usize> = c.blocks().iter().map(|b| b.stride).collect();
        assert_eq!(strides, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]);
        // Keras `MobileNet(alpha=0.75)`: int(32·0.75) = 24 ... int(1024·0.75) = 768.
        let c = MobileNetV1Config::new(1000).with_width(0.75);
        assert_eq!(c.stem().out_channels, 24);
        assert_eq!(c.feature_channels(), 768);
        // Truncation, not rounding: int(32·0.35) = 11 (make_divisible would give 16).
        let c = MobileNetV1Config::new(1000).with_width(0.35);
        assert_eq!(c.stem().out_channels, 11);
        assert_eq!(c.blocks()[0].out_channels, 22);
    }

    #[test]
    fn parameter_count_equals_the_reference() {
        // Keras `MobileNet(alpha=1.0)` (1000 classes): 4,231,976 trainable parameters
        // (4,253,864 in all, the rest BatchNorm moving statistics). Paper: 4.2 M.
        let device = Device::flex();
        let model = MobileNetV1Config::new(1000).init(&device);
        assert_eq!(trainable_params(&model), 4_231_976);
    }

    #[test]
    fn forward_shapes_at_small_inputs() {
        let device = Device::flex();
        let config = MobileNetV1Config::new(5).with_width(0.25);
        let model = config.init(&device);
        for (h, w) in [(64usize, 64usize), (32, 48), (97, 45)] {
            let x = Tensor::<4>::zeros([2, 3, h, w], &device);
            let f = model.features(x.clone());
            assert_eq!(
                f.dims(),
                [2, 256, h.div_ceil(32), w.div_ceil(32)],
                "{h}x{w}"
            );
            assert_eq!(model.forward(x).dims(), [2, 5]);
            if h == w {
                // The description agrees with the real feature map.
                let info = describe("mobilenet-v1", &config, h).unwrap();
                let last = &info.layers[info.layers.len() - 3];
                assert_eq!(last.out, [256, h.div_ceil(32), w.div_ceil(32)]);
            }
        }
    }
}
