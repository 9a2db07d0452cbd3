//! [`lower`]: reads a [`Classifier`]'s tensors into a [`Network`] of folded layers.

use super::error::ExportError;
use super::network::{ConvLayer, Layer, Network};
use crate::layers::conv_bn_act::{Activation as NnActivation, ConvBnAct};
use crate::models::mobilenet_v1::MobileNetV1;
use crate::models::mobilenet_v2::{InvertedResidual, MobileNetV2};
use crate::models::resnet::{ResNet, ResidualBlock};
use crate::models::zoo::Classifier;
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::Tensor;
use kestrel_runtime::Activation;

/// Describes `model` on `resolution` × `resolution` inputs as a list of layers with batch norm
/// folded into the convolutions. Errors name the layer: a padding the formats cannot express
/// (asymmetric or `Same`), a non-finite weight, or tensor sizes that do not fit together.
pub fn lower(model: &Classifier, resolution: usize) -> Result<Network, ExportError> {
    if resolution == 0 {
        return Err(ExportError::Resolution {
            resolution,
            message: "expected at least 1 pixel".into(),
        });
    }
    let mut l = Lowering { layers: Vec::new() };
    let arch = match model {
        Classifier::MobileNetV1(m) => {
            l.mobilenet_v1(m)?;
            "mobilenet-v1"
        }
        Classifier::MobileNetV2(m) => {
            l.mobilenet_v2(m)?;
            "mobilenet-v2"
        }
        Classifier::ResNet(m) => {
            l.resnet(m)?;
            resnet_name(m)
        }
    };
    let num_classes = match l.layers.last() {
        Some(Layer::Linear { out_features, .. }) => *out_features,
        _ => unreachable!("every classifier ends with its linear layer"),
    };
    Ok(Network {
        arch: arch.into(),
        in_channels: 3,
        resolution,
        layers: l.layers,
        num_classes,
    })
}

/// The architecture name of a ResNet: two blocks in stage 3 make ResNet-18; bottlenecks
/// ResNet-50; otherwise ResNet-34.
pub(super) fn resnet_name(m: &ResNet) -> &'static str {
    match m.layer3.len() {
        2 => "resnet18",
        _ if m.layer1.first().is_some_and(|b| b.conv3.is_some()) => "resnet50",
        _ => "resnet34",
    }
}

/// The layers read so far.
pub(super) struct Lowering {
    pub(super) layers: Vec<Layer>,
}

/// A tensor's values, or an error naming the layer and tensor.
pub(super) fn floats<const D: usize>(
    t: Tensor<D>,
    layer: &str,
    what: &str,
) -> Result<Vec<f32>, ExportError> {
    let v: Vec<f32> = t.into_data().try_to_vec().map_err(|e| ExportError::Read {
        layer: layer.into(),
        what: what.into(),
        message: format!("{e:?}"),
    })?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(ExportError::NonFinite {
            layer: layer.into(),
            what: what.into(),
        });
    }
    Ok(v)
}

/// The values of an optional bias of `n` outputs (zeros when there is none), or an error
/// naming the layer and tensor.
pub(super) fn bias_or_zeros(
    bias: &Option<Param<Tensor<1>>>,
    n: usize,
    layer: &str,
    what: &str,
) -> Result<Vec<f32>, ExportError> {
    match bias {
        Some(b) => floats(b.val(), layer, what),
        None => Ok(vec![0.0; n]),
    }
}

/// The [`ConvLayer`] of Burn's convolution `c` named `name`, with the given (folded) weights,
/// bias and activation.
pub(super) fn conv_layer(
    c: &Conv2d,
    name: &str,
    weight: Vec<f32>,
    bias: Vec<f32>,
    act: Activation,
) -> Result<ConvLayer, ExportError> {
    let [out_channels, in_per_group, kh, kw] = c.weight.val().dims();
    Ok(ConvLayer {
        weight,
        bias,
        in_channels: in_per_group * c.groups,
        out_channels,
        kernel: [kh, kw],
        stride: c.stride,
        padding: symmetric_padding(&c.padding, name)?,
        dilation: c.dilation,
        groups: c.groups,
        act,
    })
}

/// Symmetric padding `[along height, along width]`, or an error for what the formats cannot hold.
pub(super) fn symmetric_padding(
    p: &PaddingConfig2d,
    layer: &str,
) -> Result<[usize; 2], ExportError> {
    match *p {
        PaddingConfig2d::Valid => Ok([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Ok([top, left])
        }
        ref other => Err(ExportError::Unsupported {
            layer: layer.into(),
            message: format!(
                "padding {other:?} is not supported; expected equal padding on opposite sides"
            ),
        }),
    }
}

fn activation(a: NnActivation) -> Activation {
    match a {
        NnActivation::Identity => Activation::None,
        NnActivation::Relu => Activation::Relu,
        NnActivation::Relu6 => Activation::Relu6,
    }
}

/// The folded weights and bias of one conv → batch norm unit, from the shared folding pass
/// ([`ConvBnAct::fold_bn`]), after checking that the statistics can be folded.
fn folded_conv(m: &ConvBnAct, name: &str) -> Result<(Vec<f32>, Vec<f32>), ExportError> {
    let out = m.conv.weight.val().dims()[0];
    if let Some(bn) = &m.bn {
        let var = floats(bn.running_var.value(), name, "batch norm running variance")?;
        if var.len() != out {
            return Err(ExportError::Unsupported {
                layer: name.into(),
                message: format!(
                    "batch norm of {} channels after a convolution with {out} outputs",
                    var.len()
                ),
            });
        }
        if var.iter().any(|&v| v as f64 + bn.epsilon <= 0.0) {
            return Err(ExportError::NonFinite {
                layer: name.into(),
                what: "batch norm variance + epsilon (not positive)".into(),
            });
        }
    }
    let folded = m.clone().fold_bn();
    let w = floats(folded.conv.weight.val(), name, "folded conv weight")?;
    let b = bias_or_zeros(&folded.conv.bias, out, name, "folded conv bias")?;
    Ok((w, b))
}

impl Lowering {
    pub(super) fn push(&mut self, layer: Layer) -> usize {
        self.layers.push(layer);
        self.layers.len()
    }

    /// A conv → BN → activation unit reading `input`.
    pub(super) fn conv(
        &mut self,
        input: usize,
        name: &str,
        m: &ConvBnAct,
    ) -> Result<usize, ExportError> {
        let (weight, bias) = folded_conv(m, name)?;
        let conv = conv_layer(&m.conv, name, weight, bias, activation(m.activation))?;
        Ok(self.push(Layer::Conv {
            name: name.into(),
            input,
            conv,
        }))
    }

    pub(super) fn max_pool(
        &mut self,
        input: usize,
        name: &str,
        p: &MaxPool2d,
    ) -> Result<usize, ExportError> {
        if p.ceil_mode || p.dilation != [1, 1] {
            return Err(ExportError::Unsupported {
                layer: name.into(),
                message: "max pooling with ceil mode or dilation is not supported".into(),
            });
        }
        let padding = symmetric_padding(&p.padding, name)?;
        Ok(self.push(Layer::MaxPool {
            name: name.into(),
            input,
            kernel: p.kernel_size,
            stride: p.stride,
            padding,
        }))
    }

    /// Global average pooling and the classifier.
    fn head(&mut self, input: usize, name: &str, fc: &Linear) -> Result<usize, ExportError> {
        let pooled = self.push(Layer::GlobalAvgPool {
            name: "avgpool".into(),
            input,
        });
        let [in_features, out_features] = fc.weight.val().dims();
        // Burn stores `[in, out]`; the formats want PyTorch's `[out][in]`.
        let w = floats(fc.weight.val(), name, "weight")?;
        let mut weight = vec![0.0; w.len()];
        for i in 0..in_features {
            for o in 0..out_features {
                weight[o * in_features + i] = w[i * out_features + o];
            }
        }
        let bias = bias_or_zeros(&fc.bias, out_features, name, "bias")?;
        Ok(self.push(Layer::Linear {
            name: name.into(),
            input: pooled,
            weight,
            bias,
            in_features,
            out_features,
        }))
    }

    fn mobilenet_v1(&mut self, m: &MobileNetV1) -> Result<(), ExportError> {
        let mut x = self.conv(0, "stem", &m.stem)?;
        for (i, b) in m.blocks.iter().enumerate() {
            x = self.conv(x, &format!("blocks.{i}.depthwise"), &b.depthwise)?;
            x = self.conv(x, &format!("blocks.{i}.pointwise"), &b.pointwise)?;
        }
        self.head(x, "classifier", &m.classifier)?;
        Ok(())
    }

    fn mobilenet_v2(&mut self, m: &MobileNetV2) -> Result<(), ExportError> {
        let (x, _) = self.mobilenet_v2_features(m, "", &[])?;
        self.head(x, "classifier", &m.classifier)?;
        Ok(())
    }

    /// MobileNetV2's stem, blocks and head convolution, module paths under `prefix`: the head's
    /// output and the outputs of the blocks `taps` names, in block order.
    pub(super) fn mobilenet_v2_features(
        &mut self,
        m: &MobileNetV2,
        prefix: &str,
        taps: &[usize],
    ) -> Result<(usize, Vec<usize>), ExportError> {
        let mut x = self.conv(0, &format!("{prefix}stem"), &m.stem)?;
        let mut tapped = Vec::new();
        for (i, b) in m.blocks.iter().enumerate() {
            x = self.inverted_residual(x, &format!("{prefix}blocks.{i}"), b)?;
            if taps.contains(&i) {
                tapped.push(x);
            }
        }
        let head = self.conv(x, &format!("{prefix}head"), &m.head)?;
        Ok((head, tapped))
    }

    /// A MobileNetV2 inverted-residual block named `name` reading `input`.
    pub(super) fn inverted_residual(
        &mut self,
        input: usize,
        name: &str,
        b: &InvertedResidual,
    ) -> Result<usize, ExportError> {
        let mut x = input;
        if let Some(e) = &b.expand {
            x = self.conv(x, &format!("{name}.expand"), e)?;
        }
        x = self.conv(x, &format!("{name}.depthwise"), &b.depthwise)?;
        x = self.conv(x, &format!("{name}.project"), &b.project)?;
        if b.residual {
            x = self.push(Layer::Add {
                name: name.into(),
                a: x,
                b: input,
                act: Activation::None,
            });
        }
        Ok(x)
    }

    /// A residual block; the shortcut is emitted first so that the main branch's last
    /// convolution directly precedes the add (the runtime fuses the two).
    pub(super) fn residual_block(
        &mut self,
        input: usize,
        name: &str,
        b: &ResidualBlock,
    ) -> Result<usize, ExportError> {
        let shortcut = match &b.downsample {
            Some(d) => self.conv(input, &format!("{name}.downsample"), d)?,
            None => input,
        };
        let mut x = self.conv(input, &format!("{name}.conv1"), &b.conv1)?;
        x = self.conv(x, &format!("{name}.conv2"), &b.conv2)?;
        if let Some(c3) = &b.conv3 {
            x = self.conv(x, &format!("{name}.conv3"), c3)?;
        }
        Ok(self.push(Layer::Add {
            name: name.into(),
            a: x,
            b: shortcut,
            act: Activation::Relu,
        }))
    }

    fn resnet(&mut self, m: &ResNet) -> Result<(), ExportError> {
        let [.., x] = self.resnet_stages(m, "")?;
        self.head(x, "fc", &m.fc)?;
        Ok(())
    }

    /// A ResNet's stem, max pooling and four stages, module paths under `prefix`: the output of
    /// each stage.
    pub(super) fn resnet_stages(
        &mut self,
        m: &ResNet,
        prefix: &str,
    ) -> Result<[usize; 4], ExportError> {
        let mut x = self.conv(0, &format!("{prefix}conv1"), &m.conv1)?;
        x = self.max_pool(x, &format!("{prefix}maxpool"), &m.maxpool)?;
        let mut ends = [0; 4];
        for (s, stage) in [&m.layer1, &m.layer2, &m.layer3, &m.layer4]
            .into_iter()
            .enumerate()
        {
            for (i, b) in stage.iter().enumerate() {
                x = self.residual_block(x, &format!("{prefix}layer{}.{i}", s + 1), b)?;
            }
            ends[s] = x;
        }
        Ok(ends)
    }
}
