//! [`to_plan`]: a classifier as a [`kestrel_runtime::Plan`] (NHWC input, batch norm folded, residual
//! adds fused into the convolution before them where the runtime can).

use super::error::ExportError;
use super::lower::lower;
use super::lower_fcn::lower_segmenter;
use super::network::{Layer, Network};
use crate::models::fcn::Fcn;
use crate::models::zoo::Classifier;
use crate::upsample::ResizeTo;
use kestrel_runtime::kernels::ConvGeometry;
use kestrel_runtime::{ConvParams, ConvTransposeParams, Plan, PlanBuilder, RuntimeError, Shape};

/// Exports `model` for `resolution` × `resolution` inputs as a runtime plan. The plan's input is
/// NHWC (the Burn model's is NCHW), otherwise the same preprocessed image; its output is the
/// logits.
pub fn to_plan(model: &Classifier, resolution: usize) -> Result<Plan, ExportError> {
    network_to_plan(&lower(model, resolution)?)
}

/// Exports an FCN segmenter for `resolution` × `resolution` inputs as a runtime plan: NHWC input,
/// output the per-pixel class scores as `resolution × resolution × classes` (NHWC; the Burn
/// model's is NCHW).
pub fn segmenter_to_plan(model: &Fcn, resolution: usize) -> Result<Plan, ExportError> {
    network_to_plan(&lower_segmenter(model, resolution)?)
}

/// Assembles a plan from an already lowered network.
pub fn network_to_plan(net: &Network) -> Result<Plan, ExportError> {
    let mut b = PlanBuilder::new(Shape {
        h: net.resolution,
        w: net.resolution,
        c: net.in_channels,
    });
    // Plan value of each network value (a fused add keeps its convolution's value).
    let mut ids = vec![b.input()];
    for layer in &net.layers {
        let name = layer.name();
        let with_layer = |e: RuntimeError| match e {
            RuntimeError::Builder(m) => ExportError::Resolution {
                resolution: net.resolution,
                message: format!("layer `{name}`: {m}"),
            },
            other => ExportError::Plan(other),
        };
        let id = match layer {
            Layer::Conv { input, conv: c, .. } => {
                let p = ConvParams {
                    weight: &c.weight,
                    bias: Some(&c.bias),
                    out_channels: c.out_channels,
                    geom: c.geometry(),
                    groups: c.groups,
                    act: c.act,
                };
                b.conv(ids[*input], &p)
            }
            Layer::MaxPool {
                input,
                kernel,
                stride,
                padding,
                ..
            } => b.max_pool(
                ids[*input],
                ConvGeometry {
                    kernel: *kernel,
                    stride: *stride,
                    padding: *padding,
                    dilation: [1, 1],
                },
            ),
            Layer::Add {
                a, b: skip, act, ..
            } => b.add_residual(ids[*a], ids[*skip], *act),
            Layer::GlobalAvgPool { input, .. } => b.global_pool(ids[*input]),
            Layer::Linear {
                input,
                weight,
                bias,
                out_features,
                ..
            } => b.linear(
                ids[*input],
                weight,
                Some(bias),
                *out_features,
                kestrel_runtime::Activation::None,
            ),
            Layer::Resize {
                input,
                mode,
                align_corners,
                resize,
                ..
            } => {
                let x = ids[*input];
                let is = b.shape(x).map_err(with_layer)?;
                let Some(out) = resize.output_size([is.h, is.w]) else {
                    return Err(with_layer(RuntimeError::Builder(format!(
                        "resize {resize:?} gives no output for {is}"
                    ))));
                };
                let scale = match resize {
                    ResizeTo::Scale(s) => Some(*s),
                    ResizeTo::Size(_) => None,
                };
                b.resize(x, *mode, *align_corners, scale, out)
            }
            Layer::ConvTranspose {
                input,
                conv: c,
                output_padding,
                ..
            } => {
                let p = ConvTransposeParams {
                    weight: &c.weight,
                    bias: Some(&c.bias),
                    out_channels: c.out_channels,
                    geom: c.geometry(),
                    output_padding: *output_padding,
                    groups: c.groups,
                    act: c.act,
                };
                b.conv_transpose(ids[*input], &p)
            }
            Layer::PixelShuffle { input, factor, .. } => b.pixel_shuffle(ids[*input], *factor),
            Layer::Carafe {
                input,
                kernels,
                factor,
                kernel,
                ..
            } => b.carafe(ids[*input], ids[*kernels], *factor, *kernel),
            Layer::Crop { input, like, .. } => {
                let like = b.shape(ids[*like]).map_err(with_layer)?;
                b.crop(ids[*input], [like.h, like.w])
            }
        }
        .map_err(with_layer)?;
        ids.push(id);
    }
    Ok(b.build(ids[net.output()])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::layout::nchw_to_nhwc;
    use crate::export::synthetic::{burn_output, engine_outputs, input_nchw, randomized, rel_err};
    use crate::models::zoo::{Arch, ClassifierSpec};
    use burn::tensor::Device;

    /// The runtime engine on the exported plan gives the Burn eval-mode model's logits, for every
    /// architecture, with random batch-norm statistics (so folding matters), on both kernel paths.
    #[test]
    fn engine_logits_match_burn_for_every_architecture() {
        let device = Device::flex();
        let (batch, classes) = (2, 5);
        for (arch, width, res) in [
            (Arch::MobileNetV1, 0.25, 32),
            (Arch::MobileNetV2, 0.35, 32),
            (Arch::ResNet18, 1.0, 32),
            (Arch::ResNet34, 1.0, 32),
            (Arch::ResNet50, 1.0, 32),
        ] {
            let spec = ClassifierSpec {
                arch,
                width,
                num_classes: classes,
                activation: Default::default(),
            };
            let model = randomized(spec.init(&device), 11);
            let x = input_nchw(batch, res, 3);
            let want = burn_output(batch, res, |x| model.forward(x));
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                scale > 1e-3,
                "{arch}: logits are all ~0, the test would be weak"
            );
            let plan = to_plan(&model, res).unwrap();
            let nhwc = nchw_to_nhwc(&x, batch, 3, res * res);
            for (path, got) in engine_outputs(&plan, &nhwc, batch) {
                let e = rel_err(&got, &want);
                assert!(
                    e < 1e-4,
                    "{arch} {path:?}: relative error {e}\n{got:?}\n{want:?}"
                );
            }
        }
    }

    /// A ReLU MobileNetV2 exports `Relu` exactly where the ReLU6 one (same weights) has `Relu6`,
    /// and its plan gives the Burn model's logits on inputs large enough for some activation to
    /// exceed 6 (where the two models differ).
    #[test]
    fn a_relu_mobilenet_v2_exports_relu_where_relu6_was() {
        use crate::layers::conv_bn_act::HiddenActivation;
        use kestrel_runtime::{Activation, Op};
        let device = Device::flex();
        let (batch, res, scale) = (2, 32, 4.0);
        let spec6 = ClassifierSpec {
            arch: Arch::MobileNetV2,
            width: 0.35,
            num_classes: 5,
            activation: HiddenActivation::Relu6,
        };
        let spec = ClassifierSpec {
            activation: HiddenActivation::Relu,
            ..spec6.clone()
        };
        let relu6 = randomized(spec6.init(&device), 13);
        let relu = randomized(spec.init(&device), 13);
        let acts = |m: &Classifier| -> Vec<Activation> {
            let plan = to_plan(m, res).unwrap();
            let ops = plan.graph.ops.iter();
            ops.filter_map(|op| match op {
                Op::Conv(c) => Some(c.act),
                _ => None,
            })
            .collect()
        };
        let (a6, a) = (acts(&relu6), acts(&relu));
        let swapped: Vec<Activation> = a6
            .iter()
            .map(|&x| match x {
                Activation::Relu6 => Activation::Relu,
                other => other,
            })
            .collect();
        assert_eq!(a, swapped);
        assert!(a6.contains(&Activation::Relu6) && !a.contains(&Activation::Relu6));
        assert!(
            a.contains(&Activation::None),
            "the linear bottlenecks stay linear"
        );

        let forward = |m: &Classifier| burn_output(batch, res, |x| m.forward(x * scale));
        let want = forward(&relu);
        assert!(
            rel_err(&want, &forward(&relu6)) > 1e-3,
            "no activation above 6"
        );
        let x: Vec<f32> = input_nchw(batch, res, 3)
            .iter()
            .map(|v| v * scale)
            .collect();
        let nhwc = nchw_to_nhwc(&x, batch, 3, res * res);
        for (path, got) in engine_outputs(&to_plan(&relu, res).unwrap(), &nhwc, batch) {
            let e = rel_err(&got, &want);
            assert!(e < 1e-4, "{path:?}: relative error {e}\n{got:?}\n{want:?}");
        }
    }

    /// Residual adds are fused into the convolution before them (no separate add ops).
    #[test]
    fn residual_adds_fuse_into_convolutions() {
        let device = Device::flex();
        let spec = ClassifierSpec {
            arch: Arch::ResNet18,
            width: 1.0,
            num_classes: 3,
            activation: Default::default(),
        };
        let plan = to_plan(&spec.init(&device), 32).unwrap();
        let kinds: Vec<_> = plan.graph.ops.iter().map(|o| o.kind_name()).collect();
        assert!(!kinds.contains(&"add"), "{kinds:?}");
        assert_eq!(plan.output_shape(), Shape { h: 1, w: 1, c: 3 });
    }

    #[test]
    fn bad_resolutions_are_errors_naming_the_layer() {
        let device = Device::flex();
        let spec = ClassifierSpec {
            arch: Arch::MobileNetV1,
            width: 0.25,
            num_classes: 3,
            activation: Default::default(),
        };
        let model = spec.init(&device);
        let e = to_plan(&model, 0).unwrap_err().to_string();
        assert!(e.contains("resolution 0"), "{e}");
    }
}
