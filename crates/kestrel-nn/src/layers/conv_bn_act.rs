//! Convolution → BatchNorm → activation, the unit every kestrel CNN is built from
//! (torchvision's `Conv2dNormActivation`).

use crate::layers::batch_norm::{BatchNorm2d, BatchNorm2dConfig};
use crate::ops::depthwise::{geometry, DepthwiseOptions};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::{relu, relu6};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The activation after the normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Activation {
    /// None: a linear layer (MobileNetV2's projection).
    #[default]
    Identity,
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
}

impl Activation {
    /// The activation as a clamp `[lo, hi]` (ReLU `(0, ∞)`, ReLU6 `(0, 6)`), `None` for identity.
    pub fn clamp_bounds(self) -> Option<(f64, f64)> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some((0.0, f64::INFINITY)),
            Activation::Relu6 => Some((0.0, 6.0)),
        }
    }

    /// Applies the activation (ReLU6 through [`crate::ops::relu6`] when training on Flex).
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            Activation::Relu6 if crate::ops::use_training_kernels(&x) => {
                crate::ops::relu6::relu6(x)
            }
            Activation::Relu6 => relu6(x),
        }
    }
}

/// The activation of a network's non-linear layers where it can be chosen (MobileNetV2's
/// `activation` setting): ReLU6, as the paper and torchvision build it (bounded activations for
/// low-precision inference), or plain ReLU. The linear bottlenecks stay linear either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HiddenActivation {
    /// min(max(x, 0), 6): the default.
    #[default]
    Relu6,
    /// max(x, 0).
    Relu,
}

impl HiddenActivation {
    /// Every name [`HiddenActivation`] parses from, the default first.
    pub const NAMES: [&'static str; 2] = ["relu6", "relu"];

    /// The layer activation it stands for.
    pub fn activation(self) -> Activation {
        match self {
            HiddenActivation::Relu6 => Activation::Relu6,
            HiddenActivation::Relu => Activation::Relu,
        }
    }
}

/// A name that is not one of [`HiddenActivation::NAMES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown activation `{0}`; expected one of: {names}", names = HiddenActivation::NAMES.join(", "))]
pub struct UnknownActivation(pub String);

impl FromStr for HiddenActivation {
    type Err = UnknownActivation;
    fn from_str(s: &str) -> Result<Self, UnknownActivation> {
        match s {
            "relu6" => Ok(HiddenActivation::Relu6),
            "relu" => Ok(HiddenActivation::Relu),
            other => Err(UnknownActivation(other.to_string())),
        }
    }
}

impl fmt::Display for HiddenActivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HiddenActivation::Relu6 => "relu6",
            HiddenActivation::Relu => "relu",
        })
    }
}

/// Configuration of [`ConvBnAct`]: a bias-free convolution with padding (k − 1)/2 · dilation.
#[derive(Config, Debug)]
pub struct ConvBnActConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    #[config(default = 3)]
    pub kernel: usize,
    /// Stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Dilation.
    #[config(default = 1)]
    pub dilation: usize,
    /// Groups (= channels for a depthwise convolution).
    #[config(default = 1)]
    pub groups: usize,
    /// Activation after the BatchNorm.
    #[config(default = "Activation::Relu6")]
    pub activation: Activation,
}

/// Conv → BN → activation.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// The convolution (no bias: the BatchNorm's β plays that part — until the BatchNorm is folded
    /// into it by [`ConvBnAct::fold_bn`], which gives it one).
    pub conv: Conv2d,
    /// The normalisation; `None` once folded into the convolution ([`crate::layers::fold`]). The
    /// field is an `Option` so that the module paths of an unfolded layer (`bn.gamma`, ...) are
    /// unchanged.
    pub bn: Option<BatchNorm2d>,
    /// The activation.
    #[module(skip)]
    pub activation: Activation,
}

impl ConvBnActConfig {
    /// Kaiming-normal (fan-out, ReLU gain) convolution weights as torchvision initialises its CNNs.
    /// PyTorch's fan-out of a grouped convolution is `out · k²`, Burn's `out / groups · k²`: the
    /// gain √(2 / groups) makes the two agree.
    pub fn init(&self, device: &Device) -> ConvBnAct {
        let pad = crate::geometry::same_padding(self.kernel, self.dilation);
        let conv = Conv2dConfig::new([self.in_channels, self.out_channels], [self.kernel; 2])
            .with_stride([self.stride; 2])
            .with_dilation([self.dilation; 2])
            .with_groups(self.groups)
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .with_initializer(Initializer::KaimingNormal {
                gain: (2.0 / self.groups as f64).sqrt(),
                fan_out_only: true,
            })
            .init(device);
        ConvBnAct {
            conv,
            bn: Some(BatchNorm2dConfig::new(self.out_channels).init(device)),
            activation: self.activation,
        }
    }
}

impl ConvBnAct {
    /// Applies the three stages to an (N, C, H, W) tensor (two once the BatchNorm is folded).
    ///
    /// When training on Flex, depthwise and 1×1 convolutions run [`crate::ops`]'s kernels, and the
    /// BatchNorm and its ReLU / ReLU6 one fused kernel (`KESTREL_PLAIN_OPS=1` switches back to
    /// Burn's operations).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = match self.depthwise_options(&x) {
            Some(options) => {
                crate::ops::depthwise::depthwise_conv2d(x, self.conv.weight.val(), options)
            }
            None if self.pointwise_kernel(&x) => {
                crate::ops::pointwise::pointwise_conv2d(x, self.conv.weight.val())
            }
            None => match self.dense_options(&x) {
                Some(options) => {
                    crate::ops::dense::dense_conv2d(x, self.conv.weight.val(), options)
                }
                None => self.conv.forward(x),
            },
        };
        match (&self.bn, self.activation.clamp_bounds()) {
            (Some(bn), Some(b)) => match bn.forward_clamped(y, b) {
                (y, true) => y,
                (y, false) => self.activation.apply(y),
            },
            (Some(bn), None) => bn.forward(y),
            (None, _) => self.activation.apply(y),
        }
    }

    /// Whether the custom 1×1 kernel applies to this convolution and `x`: training on Flex, a 1×1
    /// kernel with stride 1, no padding, one group and no bias.
    fn pointwise_kernel(&self, x: &Tensor<4>) -> bool {
        let conv = &self.conv;
        let w_dims = conv.weight.val().dims();
        matches!(
            conv.padding,
            PaddingConfig2d::Explicit(0, 0, 0, 0) | PaddingConfig2d::Valid
        ) && conv.stride == [1, 1]
            && conv.groups == 1
            && conv.bias.is_none()
            && crate::ops::use_training_kernels(x)
            && crate::ops::pointwise::check_shapes(x.dims(), w_dims).is_ok()
    }

    /// The options of the custom dense kernel ([`crate::ops::dense`]) when it applies to this
    /// convolution and `x`: training on Flex, one group over at most
    /// [`crate::ops::dense::MAX_IN_CHANNELS`] input channels (a stem), no bias, square kernel,
    /// equal strides and dilations, symmetric explicit padding, and shapes that fit.
    fn dense_options(&self, x: &Tensor<4>) -> Option<DepthwiseOptions> {
        let conv = &self.conv;
        let options = self.square_options()?;
        let fits = conv.groups == 1
            && x.dims()[1] <= crate::ops::dense::MAX_IN_CHANNELS
            && conv.bias.is_none()
            && crate::ops::use_training_kernels(x);
        let w_dims = conv.weight.val().dims();
        (fits && crate::ops::dense::geometry(x.dims(), w_dims, options).is_ok()).then_some(options)
    }

    /// Stride, dilation and padding when they are the same along both axes (and the padding
    /// explicit and symmetric).
    fn square_options(&self) -> Option<DepthwiseOptions> {
        let conv = &self.conv;
        let [s0, s1] = conv.stride;
        let [d0, d1] = conv.dilation;
        let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
            return None;
        };
        let uniform = s0 == s1 && d0 == d1 && top == left && top == bottom && top == right;
        uniform.then_some(DepthwiseOptions::new(s0, d0, top))
    }

    /// The options of the custom depthwise kernel when it applies to this convolution and `x`:
    /// training on Flex, one group per channel (no channel multiplier), no bias, square kernel,
    /// equal strides and dilations, symmetric explicit padding, and shapes that fit.
    fn depthwise_options(&self, x: &Tensor<4>) -> Option<DepthwiseOptions> {
        let conv = &self.conv;
        let w_dims = conv.weight.val().dims();
        let options = self.square_options()?;
        let depthwise = conv.groups > 1 && w_dims[0] == conv.groups && w_dims[1] == 1;
        if !(depthwise && conv.bias.is_none() && crate::ops::use_training_kernels(x)) {
            return None;
        }
        geometry(x.dims(), w_dims, options).ok().map(|_| options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointwise_kernel_applies_only_to_plain_1x1_training_on_flex() {
        let train = Device::flex().autodiff();
        let x = |d: &Device| Tensor::<4>::zeros([2, 8, 9, 9], d);
        let pw = ConvBnActConfig::new(8, 16).with_kernel(1);
        assert!(pw.init(&train).pointwise_kernel(&x(&train)));
        assert!(!pw
            .init(&Device::flex())
            .pointwise_kernel(&x(&Device::flex())));
        let strided = ConvBnActConfig::new(8, 16).with_kernel(1).with_stride(2);
        assert!(!strided.init(&train).pointwise_kernel(&x(&train)));
        let dense = ConvBnActConfig::new(8, 16);
        assert!(!dense.init(&train).pointwise_kernel(&x(&train)));
        let grouped = ConvBnActConfig::new(8, 16).with_kernel(1).with_groups(2);
        assert!(!grouped.init(&train).pointwise_kernel(&x(&train)));
    }

    #[test]
    fn dense_kernel_applies_only_to_stems_training_on_flex() {
        let train = Device::flex().autodiff();
        let x = |c: usize, d: &Device| Tensor::<4>::zeros([2, c, 9, 9], d);
        let stem = ConvBnActConfig::new(3, 16).with_stride(2);
        let o = stem.init(&train).dense_options(&x(3, &train)).unwrap();
        assert_eq!((o.stride, o.dilation, o.padding), (2, 1, 1));
        assert!(stem
            .init(&Device::flex())
            .dense_options(&x(3, &Device::flex()))
            .is_none());
        let wide = ConvBnActConfig::new(8, 16);
        assert!(wide.init(&train).dense_options(&x(8, &train)).is_none());
        let grouped = ConvBnActConfig::new(4, 4).with_groups(2);
        assert!(grouped.init(&train).dense_options(&x(4, &train)).is_none());
    }

    #[test]
    fn depthwise_kernel_applies_only_to_depthwise_training_on_flex() {
        let train = Device::flex().autodiff();
        let eval = Device::flex();
        let dw = ConvBnActConfig::new(8, 8).with_groups(8).with_stride(2);
        let x = |d: &Device| Tensor::<4>::zeros([2, 8, 9, 9], d);
        let o = dw.init(&train).depthwise_options(&x(&train)).unwrap();
        assert_eq!((o.stride, o.dilation, o.padding), (2, 1, 1));
        let dilated = ConvBnActConfig::new(8, 8).with_groups(8).with_dilation(2);
        let o = dilated.init(&train).depthwise_options(&x(&train)).unwrap();
        assert_eq!((o.stride, o.dilation, o.padding), (1, 2, 2));
        assert!(dw.init(&eval).depthwise_options(&x(&eval)).is_none());
        let dense = ConvBnActConfig::new(8, 8);
        assert!(dense.init(&train).depthwise_options(&x(&train)).is_none());
        let layer = dw.init(&train);
        assert!(crate::ops::with_plain_ops(|| layer.depthwise_options(&x(&train))).is_none());
    }
}
