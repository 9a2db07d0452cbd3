//! ResNet-18/34/50 (He et al., 2016) with torchvision's layout, so parameter counts (and names,
//! up to kestrel's `ConvBnAct` grouping) match torchvision's models:
//!
//! - stem: 7×7 stride-2 convolution to 64 channels + BN + ReLU, then 3×3 stride-2 max pooling
//!   with padding 1;
//! - four stages `layer1`..`layer4` of widths 64, 128, 256, 512; the first block of stages 2–4
//!   has stride 2;
//! - blocks: [`BlockKind::Basic`] (two 3×3 convolutions, expansion 1) for ResNet-18/34,
//!   [`BlockKind::Bottleneck`] (1×1 reduce, 3×3, 1×1 expand ×4) for ResNet-50, with the stride on
//!   the 3×3 convolution ("ResNet v1.5", as torchvision; the paper put it on the first 1×1);
//! - shortcut: identity, or a 1×1 convolution + BN (the `downsample`) when the stride is not 1 or
//!   the channel count changes;
//! - global average pooling and a fully connected layer.
//!
//! Parameters (1000 classes): ResNet-18 11,689,512; ResNet-34 21,797,672; ResNet-50 25,557,032.

use crate::layers::conv_bn_act::{Activation, ConvBnAct, ConvBnActConfig};
use crate::layers::fold::MapConvBnAct;
use burn::config::Config;
use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Channels of the stem and width of each of the four stages.
pub const RESNET_STEM: usize = 64;
/// Base width of each stage (output channels = width · expansion).
pub const RESNET_WIDTHS: [usize; 4] = [64, 128, 256, 512];

/// The residual block type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// Two 3×3 convolutions; output channels = width.
    Basic,
    /// 1×1 to width, 3×3 (with the stride), 1×1 to 4·width.
    Bottleneck,
}

impl BlockKind {
    /// Output channels over the block's width: 1 (basic) or 4 (bottleneck).
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Configuration of one [`ResidualBlock`].
#[derive(Config, Debug)]
pub struct ResidualBlockConfig {
    /// Block type.
    pub kind: BlockKind,
    /// Input channels.
    pub in_channels: usize,
    /// Width (the bottleneck's inner channels; a basic block's output channels).
    pub width: usize,
    /// Stride (on the first 3×3 convolution).
    #[config(default = 1)]
    pub stride: usize,
    /// Start the last BatchNorm's γ at zero, so the block starts as its shortcut.
    #[config(default = false)]
    pub zero_init_last_bn: bool,
    /// Dilation of the 3×3 convolutions (both of a basic block's; torchvision allows it only in
    /// bottlenecks).
    #[config(default = 1)]
    pub dilation: usize,
}

/// A residual block: `relu(convs(x) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// First convolution (3×3 with the stride for a basic block; 1×1 reduce for a bottleneck).
    pub conv1: ConvBnAct,
    /// Second convolution (3×3; with the stride in a bottleneck).
    pub conv2: ConvBnAct,
    /// Third convolution (1×1 expand), bottleneck only.
    pub conv3: Option<ConvBnAct>,
    /// The 1×1 convolution + BN on the shortcut; absent for the identity.
    pub downsample: Option<ConvBnAct>,
}

impl ResidualBlockConfig {
    /// Output channels: width · expansion.
    pub fn out_channels(&self) -> usize {
        self.width * self.kind.expansion()
    }

    /// The main branch's convolutions, named as the module's fields; the last has no activation
    /// (the ReLU comes after the sum).
    pub fn convs(&self) -> Vec<(&'static str, ConvBnActConfig)> {
        let (w, s, d) = (self.width, self.stride, self.dilation);
        let relu = Activation::Relu;
        let linear = Activation::Identity;
        match self.kind {
            BlockKind::Basic => vec![
                (
                    "conv1",
                    ConvBnActConfig::new(self.in_channels, w)
                        .with_stride(s)
                        .with_dilation(d)
                        .with_activation(relu),
                ),
                (
                    "conv2",
                    ConvBnActConfig::new(w, w)
                        .with_dilation(d)
                        .with_activation(linear),
                ),
            ],
            BlockKind::Bottleneck => vec![
                (
                    "conv1",
                    ConvBnActConfig::new(self.in_channels, w)
                        .with_kernel(1)
                        .with_activation(relu),
                ),
                (
                    "conv2",
                    ConvBnActConfig::new(w, w)
                        .with_stride(s)
                        .with_dilation(d)
                        .with_activation(relu),
                ),
                (
                    "conv3",
                    ConvBnActConfig::new(w, self.out_channels())
                        .with_kernel(1)
                        .with_activation(linear),
                ),
            ],
        }
    }

    /// The shortcut's 1×1 convolution + BN, when the stride or the channel count changes.
    pub fn downsample(&self) -> Option<ConvBnActConfig> {
        (self.stride != 1 || self.in_channels != self.out_channels()).then(|| {
            ConvBnActConfig::new(self.in_channels, self.out_channels())
                .with_kernel(1)
                .with_stride(self.stride)
                .with_activation(Activation::Identity)
        })
    }

    /// Builds the block.
    pub fn init(&self, device: &Device) -> ResidualBlock {
        let convs = self.convs();
        let last = convs.len() - 1;
        let mut built = convs.iter().enumerate().map(|(i, (_, c))| {
            let mut m = c.init(device);
            if let (true, Some(bn)) = (self.zero_init_last_bn && i == last, m.bn.as_mut()) {
                bn.gamma = Initializer::Zeros.init([c.out_channels], device);
            }
            m
        });
        let (Some(conv1), Some(conv2)) = (built.next(), built.next()) else {
            unreachable!("every block kind has at least two convolutions")
        };
        ResidualBlock {
            conv1,
            conv2,
            conv3: built.next(),
            downsample: self.downsample().map(|d| d.init(device)),
        }
    }
}

impl ResidualBlock {
    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let mut y = self.conv2.forward(self.conv1.forward(x));
        if let Some(c3) = &self.conv3 {
            y = c3.forward(y);
        }
        relu(y + shortcut)
    }
}

/// Configuration of [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Number of output classes.
    pub num_classes: usize,
    /// Blocks per stage: [2, 2, 2, 2] (ResNet-18), [3, 4, 6, 3] (ResNet-34 and -50).
    pub layers: [usize; 4],
    /// Block type.
    pub block: BlockKind,
    /// Zero-initialise the last BatchNorm γ of every block (torchvision's `zero_init_residual`;
    /// off by default, as there).
    #[config(default = false)]
    pub zero_init_residual: bool,
    /// Output stride of the last feature map: 32 (the classifier), 16 (stage 4 dilated) or 8
    /// (stages 3 and 4 dilated), as torchvision's `replace_stride_with_dilation` and DeepLab do.
    #[config(default = 32)]
    pub output_stride: usize,
}

/// ResNet: stem, max pooling, four stages of residual blocks, global average pooling, linear.
#[derive(Module, Debug)]
pub struct ResNet {
    /// 7×7 stride-2 convolution + BN + ReLU.
    pub conv1: ConvBnAct,
    /// 3×3 stride-2 max pooling, padding 1.
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 4 overall, 64·expansion channels).
    pub layer1: Vec<ResidualBlock>,
    /// Stage 2 (stride 8).
    pub layer2: Vec<ResidualBlock>,
    /// Stage 3 (stride 16).
    pub layer3: Vec<ResidualBlock>,
    /// Stage 4 (stride 32, 512·expansion channels).
    pub layer4: Vec<ResidualBlock>,
    /// The classifier.
    pub fc: Linear,
}

impl ResNetConfig {
    /// ResNet-18: basic blocks [2, 2, 2, 2].
    pub fn resnet18(num_classes: usize) -> Self {
        Self::new(num_classes, [2, 2, 2, 2], BlockKind::Basic)
    }

    /// ResNet-34: basic blocks [3, 4, 6, 3].
    pub fn resnet34(num_classes: usize) -> Self {
        Self::new(num_classes, [3, 4, 6, 3], BlockKind::Basic)
    }

    /// ResNet-50: bottleneck blocks [3, 4, 6, 3].
    pub fn resnet50(num_classes: usize) -> Self {
        Self::new(num_classes, [3, 4, 6, 3], BlockKind::Bottleneck)
    }

    /// The stem convolution.
    pub fn stem(&self) -> ConvBnActConfig {
        ConvBnActConfig::new(3, RESNET_STEM)
            .with_kernel(7)
            .with_stride(2)
            .with_activation(Activation::Relu)
    }

    /// The max pooling after the stem: (kernel, stride, padding).
    pub fn max_pool(&self) -> (usize, usize, usize) {
        (3, 2, 1)
    }

    /// The blocks of each of the four stages.
    ///
    /// A stage that would take the stride past the output stride keeps stride 1 and multiplies
    /// the dilation by 2 instead; its first block still uses the previous dilation (torchvision's
    /// `_make_layer`).
    pub fn stages(&self) -> [Vec<ResidualBlockConfig>; 4] {
        let mut in_c = RESNET_STEM;
        // Stem and max pooling: stride 4.
        let mut current = 4;
        let mut dilation = 1;
        std::array::from_fn(|stage| {
            let mut stage_stride = if stage > 0 { 2 } else { 1 };
            let previous = dilation;
            if stage_stride > 1 && current >= self.output_stride {
                dilation *= stage_stride;
                stage_stride = 1;
            }
            current *= stage_stride;
            (0..self.layers[stage])
                .map(|i| {
                    let (stride, d) = if i == 0 {
                        (stage_stride, previous)
                    } else {
                        (1, dilation)
                    };
                    let block = ResidualBlockConfig::new(self.block, in_c, RESNET_WIDTHS[stage])
                        .with_stride(stride)
                        .with_dilation(d)
                        .with_zero_init_last_bn(self.zero_init_residual);
                    in_c = block.out_channels();
                    block
                })
                .collect()
        })
    }

    /// Channels of the outputs of stages 2, 3 and 4 ([`ResNet::feature_taps`]).
    pub fn tap_channels(&self) -> [usize; 3] {
        let e = self.block.expansion();
        [
            RESNET_WIDTHS[1] * e,
            RESNET_WIDTHS[2] * e,
            RESNET_WIDTHS[3] * e,
        ]
    }

    /// Channels of the last feature map (512 · expansion).
    pub fn feature_channels(&self) -> usize {
        RESNET_WIDTHS[3] * self.block.expansion()
    }

    /// Builds the network with torchvision's initialisation: Kaiming-normal (fan-out, ReLU)
    /// convolutions, BN γ = 1 (0 for the last of each block with `zero_init_residual`) and β = 0,
    /// and PyTorch's default linear layer (uniform ±1/√fan_in weights and bias).
    pub fn init(&self, device: &Device) -> ResNet {
        let (k, s, p) = self.max_pool();
        let [layer1, layer2, layer3, layer4] = self
            .stages()
            .map(|blocks| blocks.iter().map(|b| b.init(device)).collect::<Vec<_>>());
        ResNet {
            conv1: self.stem().init(device),
            maxpool: MaxPool2dConfig::new([k, k])
                .with_strides([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: LinearConfig::new(self.feature_channels(), self.num_classes).init(device),
        }
    }
}

impl ResNet {
    /// The feature map before pooling: (N, 512·expansion, H/32, W/32) (rounded up).
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.maxpool.forward(self.conv1.forward(x));
        for stage in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in stage {
                x = block.forward(x);
            }
        }
        x
    }

    /// The outputs of stages 2, 3 and 4 (strides 8, 16 and 32 at output stride 32), which FCN
    /// heads tap.
    pub fn feature_taps(&self, x: Tensor<4>) -> [Tensor<4>; 3] {
        let run = |mut x: Tensor<4>, stage: &[ResidualBlock]| {
            for block in stage {
                x = block.forward(x);
            }
            x
        };
        let x = self.maxpool.forward(self.conv1.forward(x));
        let s8 = run(run(x, &self.layer1), &self.layer2);
        let s16 = run(s8.clone(), &self.layer3);
        let s32 = run(s16.clone(), &self.layer4);
        [s8, s16, s32]
    }

    /// Class logits (N, classes) for images (N, 3, H, W).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.features(x);
        self.fc.forward(crate::layers::pool::global_avg_pool(f))
    }
}

/// torchvision's `resnet*(zero_init_residual=True)` (Goyal et al. 2017) on a built ResNet: zeroes
/// the last BatchNorm γ of every residual block (bn2 of a basic block, bn3 of a bottleneck), so
/// each block starts as its shortcut; returns how many blocks. Call it right after building the
/// model, before the optimiser exists (the γ are fresh parameters, trainable, with new ids).
pub fn zero_init_resnet(model: &mut ResNet) -> usize {
    let mut n = 0;
    for block in model
        .layer1
        .iter_mut()
        .chain(model.layer2.iter_mut())
        .chain(model.layer3.iter_mut())
        .chain(model.layer4.iter_mut())
    {
        let last = match block.conv3.as_mut() {
            Some(c) => c,
            None => &mut block.conv2,
        };
        if let Some(bn) = last.bn.as_mut() {
            let gamma = bn.gamma.val();
            bn.gamma = Initializer::Zeros.init(gamma.dims(), &gamma.device());
            n += 1;
        }
    }
    n
}

impl MapConvBnAct for ResidualBlock {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        let conv1 = f(self.conv1);
        let conv2 = f(self.conv2);
        let conv3 = self.conv3.map_conv_bn_act(f);
        ResidualBlock {
            conv1,
            conv2,
            conv3,
            downsample: self.downsample.map_conv_bn_act(f),
        }
    }
}

impl MapConvBnAct for ResNet {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        let conv1 = f(self.conv1);
        let layer1 = self.layer1.map_conv_bn_act(f);
        let layer2 = self.layer2.map_conv_bn_act(f);
        let layer3 = self.layer3.map_conv_bn_act(f);
        ResNet {
            conv1,
            layer1,
            layer2,
            layer3,
            layer4: self.layer4.map_conv_bn_act(f),
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
    fn parameter_counts_equal_torchvision() {
        // sum(p.numel() for p in torchvision.models.resnetXX().parameters()).
        let device = Device::flex();
        for (config, want) in [
            (ResNetConfig::resnet18(1000), 11_689_512),
            (ResNetConfig::resnet34(1000), 21_797_672),
            (ResNetConfig::resnet50(1000), 25_557_032),
        ] {
            let model = config.init(&device);
            assert_eq!(trainable_params(&model), want, "{:?}", config.layers);
        }
    }

    #[test]
    fn downsample_only_where_stride_or_channels_change() {
        let has = |c: &ResNetConfig| -> Vec<Vec<bool>> {
            c.stages()
                .iter()
                .map(|s| s.iter().map(|b| b.downsample().is_some()).collect())
                .collect()
        };
        // ResNet-18: stage 1 keeps 64 channels at stride 1: no downsample there.
        assert_eq!(
            has(&ResNetConfig::resnet18(10)),
            [[false, false], [true, false], [true, false], [true, false]]
        );
        // ResNet-50: stage 1's first block goes 64 → 256 channels: a downsample at stride 1.
        let r50 = ResNetConfig::resnet50(10);
        assert_eq!(has(&r50)[0], [true, false, false]);
        assert_eq!(r50.stages()[0][0].downsample().unwrap().stride, 1);
        // v1.5: the stride sits on the 3×3 convolution (conv2), not on conv1.
        let first = &r50.stages()[1][0];
        let strides: Vec<(&str, usize, usize)> = first
            .convs()
            .iter()
            .map(|(n, c)| (*n, c.kernel, c.stride))
            .collect();
        assert_eq!(strides, [("conv1", 1, 1), ("conv2", 3, 2), ("conv3", 1, 1)]);
    }

    #[test]
    fn zero_init_residual_zeroes_the_last_gamma_of_every_block() {
        let device = Device::flex();
        let sum = |t: Tensor<1>| -> f32 { t.sum().into_scalar::<f32>() };
        let model = ResNetConfig::resnet18(10)
            .with_zero_init_residual(true)
            .init(&device);
        for block in model.layer1.iter().chain(&model.layer4) {
            assert_eq!(sum(block.conv2.bn.as_ref().unwrap().gamma.val()), 0.0);
            assert!(sum(block.conv1.bn.as_ref().unwrap().gamma.val()) > 0.0);
        }
        let model = ResNetConfig::resnet50(10)
            .with_zero_init_residual(true)
            .init(&device);
        let block = &model.layer2[1];
        assert_eq!(
            sum(block
                .conv3
                .as_ref()
                .unwrap()
                .bn
                .as_ref()
                .unwrap()
                .gamma
                .val()),
            0.0
        );
        assert!(sum(block.conv2.bn.as_ref().unwrap().gamma.val()) > 0.0);
        // Default off: every γ starts at 1.
        let model = ResNetConfig::resnet18(10).init(&device);
        assert_eq!(
            sum(model.layer1[0].conv2.bn.as_ref().unwrap().gamma.val()),
            64.0
        );
    }

    #[test]
    fn forward_shapes_at_small_inputs() {
        let device = Device::flex();
        for config in [ResNetConfig::resnet18(7), ResNetConfig::resnet50(7)] {
            let model = config.init(&device);
            let c = config.feature_channels();
            for (h, w) in [(64usize, 64usize), (48, 80)] {
                let x = Tensor::<4>::zeros([2, 3, h, w], &device);
                let f = model.features(x.clone());
                assert_eq!(f.dims(), [2, c, h.div_ceil(32), w.div_ceil(32)], "{h}x{w}");
                assert_eq!(model.forward(x).dims(), [2, 7]);
            }
            // The description's last feature map agrees with the real one at 64 px.
            let info = describe("resnet", &config, 64).unwrap();
            let pool = &info.layers[info.layers.len() - 2];
            assert_eq!(pool.input, [c, 2, 2]);
        }
    }

    #[test]
    fn output_stride_turns_later_strides_into_dilation() {
        // torchvision resnet50(replace_stride_with_dilation=[False, True, True]) (DeepLab's OS 8):
        // layer3.0.conv2 stride 1 dilation 1, layer3.1+ dilation 2, layer4.0.conv2 dilation 2,
        // layer4.1+ dilation 4; the downsample 1×1 convolutions keep stride 1.
        let c = ResNetConfig::resnet50(21).with_output_stride(8);
        let st = c.stages();
        let sd = |b: &ResidualBlockConfig| (b.stride, b.dilation);
        assert_eq!(sd(&st[1][0]), (2, 1));
        assert_eq!(sd(&st[2][0]), (1, 1));
        assert_eq!(sd(&st[2][1]), (1, 2));
        assert_eq!(sd(&st[3][0]), (1, 2));
        assert_eq!(sd(&st[3][2]), (1, 4));
        assert_eq!(st[3][0].downsample().unwrap().stride, 1);
        let conv2 = &st[3][2].convs()[1].1;
        assert_eq!((conv2.kernel, conv2.dilation), (3, 4));
        // OS 16: only stage 4 dilated.
        let st = ResNetConfig::resnet18(21).with_output_stride(16).stages();
        assert_eq!(sd(&st[2][0]), (2, 1));
        assert_eq!(sd(&st[3][0]), (1, 1));
        assert_eq!(sd(&st[3][1]), (1, 2));

        let device = Device::flex();
        for (os, cfg) in [
            (8, ResNetConfig::resnet18(5).with_output_stride(8)),
            (16, ResNetConfig::resnet50(5).with_output_stride(16)),
        ] {
            let model = cfg.init(&device);
            let x = Tensor::<4>::zeros([1, 3, 64, 64], &device);
            let [s8, s16, s32] = model.feature_taps(x.clone());
            assert_eq!(s8.dims()[2], 8);
            assert_eq!(s16.dims()[2], 64 / os.min(16));
            assert_eq!(s32.dims()[2..], [64 / os, 64 / os]);
            assert_eq!(s32.dims()[1], cfg.tap_channels()[2]);
            assert_eq!(model.features(x).dims()[2], 64 / os);
            // Same parameters as the undilated network.
            assert_eq!(
                trainable_params(&model),
                trainable_params(
                    &ResNetConfig {
                        output_stride: 32,
                        ..cfg
                    }
                    .init(&device)
                )
            );
        }
    }
}
