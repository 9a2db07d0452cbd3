//! MobileNetV2 (Sandler et al., 2018) exactly as torchvision builds it: the network is the (t, c, n, s)
//! table below and one block type, the inverted residual with a linear bottleneck.
//!
//! Fully convolutional up to the global pooling, so any input of at least 32 px works, square or
//! not.
//!
//! The activation is ReLU6, as the paper and torchvision have it;
//! [`MobileNetV2Config::activation`] can make it plain ReLU instead (same parameters, unbounded
//! activations), for comparing the two, e.g. once quantised.

use crate::divisible::make_divisible;
use crate::layers::conv_bn_act::{Activation, ConvBnAct, ConvBnActConfig, HiddenActivation};
use crate::layers::fold::MapConvBnAct;
use crate::layers::init::mobilenet_classifier;
use crate::layers::pool::pooled_logits;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
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
    /// Activation of the expansion and the depthwise convolution (the projection is linear).
    #[config(default = "HiddenActivation::Relu6")]
    pub activation: HiddenActivation,
}

/// Expand (1×1, ReLU6) → depthwise 3×3 (ReLU6) → project (1×1, linear), plus the input when the
/// shapes agree (ReLU instead of ReLU6 with [`HiddenActivation::Relu`]).
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
        let act = self.activation.activation();
        let mut stages = Vec::with_capacity(3);
        if self.expand_ratio != 1 {
            stages.push((
                "expand",
                ConvBnActConfig::new(self.in_channels, hidden)
                    .with_kernel(1)
                    .with_activation(act),
            ));
        }
        stages.push((
            "depthwise",
            ConvBnActConfig::new(hidden, hidden)
                .with_stride(self.stride)
                .with_dilation(self.dilation)
                .with_groups(hidden)
                .with_activation(act),
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
    ///
    /// With an output stride below 32, a block that would push the running stride past it keeps
    /// stride 1 and dilates instead (DeepLab's rule: that block still uses the previous rate, the
    /// blocks after it the rate multiplied by the stride it gave up).
    pub fn blocks(&self) -> Vec<InvertedResidualConfig> {
        let (stem, outs, _) = self.channels();
        let strides = MOBILENET_V2_TABLE
            .iter()
            .flat_map(|&(t, _, n, s)| (0..n).map(move |i| (t, if i == 0 { s } else { 1 })));
        let mut in_c = stem;
        // The stem has stride 2.
        let mut current = 2;
        let mut rate = 1;
        strides
            .zip(outs)
            .map(|((t, s), out)| {
                let (stride, dilation) = if current >= self.output_stride {
                    let r = rate;
                    rate *= s;
                    (1, r)
                } else {
                    current *= s;
                    (s, rate)
                };
                let block = InvertedResidualConfig::new(in_c, out, stride, t)
                    .with_dilation(dilation)
                    .with_activation(self.activation);
                in_c = out;
                block
            })
            .collect()
    }

    /// Indices of the blocks whose outputs are the stride-8 and stride-16 feature maps (the last
    /// block of each resolution at output stride 32): FCN-8s and FCN-16s tap them.
    pub fn tap_blocks(&self) -> [usize; 2] {
        let mut ends = Vec::new();
        let mut index = 0;
        for &(_, _, n, _) in MOBILENET_V2_TABLE.iter() {
            index += n;
            ends.push(index - 1);
        }
        // Rows: 16 (s2), 24 (s4), 32 (s8), 64 and 96 (s16), 160 and 320 (s32).
        [ends[2], ends[4]]
    }

    /// Channels of the stride-8 and stride-16 taps.
    pub fn tap_channels(&self) -> [usize; 2] {
        let (_, outs, _) = self.channels();
        self.tap_blocks().map(|i| outs[i])
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
    /// Output stride of the feature map: 32 (the classifier), 16 or 8 (dilated, as DeepLab builds
    /// it: once the running stride reaches this value, later strides become dilation).
    #[config(default = 32)]
    pub output_stride: usize,
    /// Activation of the stem, the head and every block's expansion and depthwise convolution:
    /// ReLU6 (the paper's and torchvision's) or plain ReLU.
    #[config(default = "HiddenActivation::Relu6")]
    pub activation: HiddenActivation,
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
        let act = self.activation.activation();
        let stem = ConvBnActConfig::new(3, stem_c)
            .with_stride(2)
            .with_activation(act)
            .init(device);
        let blocks: Vec<InvertedResidual> = self.blocks().iter().map(|b| b.init(device)).collect();
        let in_c = self.blocks().last().map_or(stem_c, |b| b.out_channels);
        let head = ConvBnActConfig::new(in_c, head_c)
            .with_kernel(1)
            .with_activation(act)
            .init(device);
        let classifier = mobilenet_classifier(head_c, self.num_classes, device);
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

    /// The stride-8, stride-16 and last feature maps (the last is [`MobileNetV2::features`]'s);
    /// `taps` from [`MobileNetV2Config::tap_blocks`].
    pub fn feature_taps(&self, x: Tensor<4>, taps: [usize; 2]) -> [Tensor<4>; 3] {
        let mut x = self.stem.forward(x);
        let mut out = Vec::with_capacity(2);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if taps.contains(&i) {
                out.push(x.clone());
            }
        }
        let last = self.head.forward(x);
        let mut out = out.into_iter();
        match (out.next(), out.next()) {
            (Some(s8), Some(s16)) => [s8, s16, last],
            _ => panic!(
                "tap indices {taps:?} outside the {} blocks",
                self.blocks.len()
            ),
        }
    }

    /// Class logits (N, classes) for images (N, 3, H, W).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        pooled_logits(self.features(x), &self.dropout, &self.classifier)
    }
}

impl MapConvBnAct for InvertedResidual {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        let expand = self.expand.map_conv_bn_act(f);
        let depthwise = f(self.depthwise);
        InvertedResidual {
            expand,
            depthwise,
            project: f(self.project),
            residual: self.residual,
        }
    }
}

impl MapConvBnAct for MobileNetV2 {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        let stem = f(self.stem);
        let blocks = self.blocks.map_conv_bn_act(f);
        MobileNetV2 {
            stem,
            blocks,
            head: f(self.head),
            ..self
        }
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
        assert_eq!(crate::layers::params::trainable_params(&model), 3_504_872);
        // torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10): 700,490 (its definition
        // counted layer by layer; the same count gives 3,504,872 at width 1).
        let model = MobileNetV2Config::new(10).with_width(0.5).init(&device);
        assert_eq!(crate::layers::params::trainable_params(&model), 700_490);
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

    #[test]
    fn output_stride_dilates_like_deeplab() {
        // DeepLab's MobileNetV2 at output stride 8 (TF-slim's rule): the 64-channel row would go
        // to stride 16, so it keeps stride 1 at rate 1 and later blocks use rate 2; the
        // 160-channel row's first block keeps rate 2, the blocks after it rate 4.
        let sd = |os: usize| -> Vec<(usize, usize)> {
            MobileNetV2Config::new(10)
                .with_output_stride(os)
                .blocks()
                .iter()
                .map(|b| (b.stride, b.dilation))
                .collect()
        };
        let d = |n| (1, n);
        assert_eq!(
            sd(8),
            [
                d(1),
                (2, 1),
                d(1),
                (2, 1),
                d(1),
                d(1),
                d(1),
                d(2),
                d(2),
                d(2),
                d(2),
                d(2),
                d(2),
                d(2),
                d(4),
                d(4),
                d(4)
            ]
        );
        assert_eq!(sd(16)[13..], [d(1), d(2), d(2), d(2)]);
        assert_eq!(sd(16)[6], (2, 1));
        assert!(sd(32).iter().all(|&(_, r)| r == 1));

        let device = Device::flex();
        let cfg = MobileNetV2Config::new(3)
            .with_width(0.25)
            .with_output_stride(8);
        let model = cfg.init(&device);
        let x = Tensor::<4>::zeros([1, 3, 64, 48], &device);
        let [s8, s16, last] = model.feature_taps(x, cfg.tap_blocks());
        assert_eq!(s8.dims(), [1, cfg.tap_channels()[0], 8, 6]);
        assert_eq!(s16.dims(), [1, cfg.tap_channels()[1], 8, 6]);
        assert_eq!(last.dims(), [1, 1280, 8, 6]);
        // Taps at OS 32: the 32-channel row ends at block 5, the 96-channel row at block 12.
        let cfg = MobileNetV2Config::new(3);
        assert_eq!(cfg.tap_blocks(), [5, 12]);
        assert_eq!(cfg.tap_channels(), [32, 96]);
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        // The zero-initialised classifier bias included (a `zeros_like` mapped parameter
        // would silently stop tracking gradients).
        let device = Device::flex().autodiff();
        let model = MobileNetV2Config::new(3).with_width(0.25).init(&device);
        let x = Tensor::<4>::ones([2, 3, 32, 32], &device);
        let grads = model.forward(x).sum().backward();
        let bias = model.classifier.bias.as_ref().unwrap();
        assert!(bias.val().grad(&grads).is_some());
        assert!(model.classifier.weight.val().grad(&grads).is_some());
        let v1 = crate::models::mobilenet_v1::MobileNetV1Config::new(3)
            .with_width(0.25)
            .init(&device);
        let grads = v1
            .forward(Tensor::<4>::ones([2, 3, 32, 32], &device))
            .sum()
            .backward();
        let bias = v1.classifier.bias.as_ref().unwrap();
        assert!(bias.val().grad(&grads).is_some());
    }

    /// A training forward and backward with kestrel's kernels (depthwise, ReLU6, BatchNorm)
    /// against the same model on Burn's own operations.
    #[test]
    fn training_kernels_match_burn_operations() {
        use burn::tensor::TensorData;
        let device = Device::flex().autodiff();
        // Seeded weights: Burn's own initialisation draws from one generator that the tests
        // running in parallel share, so it would differ from run to run.
        let model = crate::export::synthetic::randomized(
            MobileNetV2Config::new(5)
                .with_width(0.25)
                .with_dropout(0.0)
                .init(&device),
            3,
        );
        let mut rng = kestrel_data::rng::Rng::new(3);
        // Batch 6: BatchNorm over the 2×2 maps of the last blocks sees 24 values a channel; with
        // fewer, f64 (custom) and f32 (Burn) batch statistics can differ beyond the tolerance for
        // some random initialisations.
        let (n, r) = (6, 40);
        let v: Vec<f32> = (0..n * 3 * r * r)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(v, [n, 3, r, r]), &device);
        let vals = |t: Tensor<4>| -> Vec<f32> { t.into_data().try_to_vec().unwrap() };
        let run = || {
            let logits = model.forward(x.clone());
            let grads = (logits.clone() * logits.clone()).sum().backward();
            let block = &model.blocks[3];
            let bn = block.depthwise.bn.as_ref().unwrap();
            vec![
                logits.into_data().try_to_vec::<f32>().unwrap(),
                vals(block.depthwise.conv.weight.val().grad(&grads).unwrap()),
                bn.gamma
                    .val()
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec()
                    .unwrap(),
                vals(model.stem.conv.weight.val().grad(&grads).unwrap()),
            ]
        };
        let custom = run();
        let plain = crate::ops::with_plain_ops(run);
        for (i, (a, b)) in custom.iter().zip(&plain).enumerate() {
            assert_eq!(a.len(), b.len());
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
            for (p, q) in a.iter().zip(b) {
                assert!(
                    (p - q).abs() <= 2e-3 * scale,
                    "output {i}: {p} vs {q} (scale {scale})"
                );
            }
        }
    }

    /// ReLU and ReLU6 agree on every value up to 6: a ReLU MobileNetV2 with the ReLU6 one's
    /// weights gives the same logits, bit for bit, while no activation exceeds 6 (small inputs),
    /// and other logits once some do (large inputs). Only the non-linear layers change. With
    /// torchvision's initialisation (BN γ = 1, β = 0, zero classifier bias) nothing adds a
    /// constant, so the ReLU network is positively homogeneous, f(a·x) = a·f(x) for a > 0, as a
    /// network clamped at 6 cannot be.
    #[test]
    fn relu_differs_from_relu6_only_through_activations_above_six() {
        use burn::tensor::TensorData;
        let device = Device::flex();
        let cfg = MobileNetV2Config::new(4).with_width(0.35);
        let relu6 = cfg.init(&device);
        let relu = cfg
            .clone()
            .with_activation(HiddenActivation::Relu)
            .init(&device)
            .load_record(relu6.clone().into_record());
        let activations = |m: &MobileNetV2| {
            let mut out = Vec::new();
            m.clone().map_conv_bn_act(&mut |c| {
                out.push(c.activation);
                c
            });
            out
        };
        let expected: Vec<Activation> = activations(&relu6)
            .into_iter()
            .map(|a| match a {
                Activation::Relu6 => Activation::Relu,
                other => other,
            })
            .collect();
        assert_eq!(activations(&relu), expected);
        // Stem and head, and per block an expansion (but the first) and a depthwise convolution.
        let relus = expected.iter().filter(|&&a| a == Activation::Relu).count();
        assert_eq!(relus, 2 + 16 + 17);

        let mut rng = kestrel_data::rng::Rng::new(7);
        let v: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(v, [2, 3, 32, 32]), &device);
        let logits = |m: &MobileNetV2, scale: f32| -> Vec<f32> {
            m.forward(x.clone() * scale)
                .into_data()
                .try_to_vec()
                .unwrap()
        };
        let max_diff = |a: &[f32], b: &[f32]| {
            let d = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            d / b.iter().fold(0f32, |m, v| m.max(v.abs()))
        };
        assert_eq!(logits(&relu, 1e-3), logits(&relu6, 1e-3));
        let big = 1e3;
        let (a, b) = (logits(&relu, big), logits(&relu6, big));
        assert!(max_diff(&a, &b) > 1e-2, "{a:?} vs {b:?}");
        let scaled: Vec<f32> = logits(&relu, 1.0).iter().map(|v| v * big).collect();
        assert!(max_diff(&a, &scaled) < 1e-4, "{a:?} vs {scaled:?}");
        assert!(max_diff(&b, &scaled) > 1e-2, "{b:?} vs {scaled:?}");
    }

    #[test]
    fn seventeen_blocks_with_the_table_strides() {
        let blocks = MobileNetV2Config::new(1000).blocks();
        assert_eq!(blocks.len(), 17);
        let strides: Vec<usize> = blocks.iter().map(|b| b.stride).collect();
        assert_eq!(strides, [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]);
        assert_eq!(blocks[0].stages().len(), 2);
        assert_eq!(blocks[16].out_channels, 320);
    }
}
