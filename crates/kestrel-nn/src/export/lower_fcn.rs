//! [`lower_segmenter`]: reads an [`Fcn`] into a [`Network`]: the backbone's folded layers up to
//! its three taps, the 1×1 score convolutions (with bias), the upsamplers, and the crops and sums
//! of the skip connections, in the order of [`Fcn::forward`].
//!
//! Upsamplers the runtime and ONNX export run: nearest, bilinear and bicubic (with the module's
//! `align_corners` and scale), transposed convolution (any kernel, stride, padding, output
//! padding, dilation and groups), pixel shuffle (its convolution, then the shuffle), CARAFE (its
//! compressor and encoder convolutions, then the fused reassembly) and Meta-Upscale by an
//! integer factor (one convolution with the predicted filters, then a pixel shuffle).

use super::error::ExportError;
use super::lower::{bias_or_zeros, conv_layer, floats, resnet_name, Lowering};
use super::network::{ConvLayer, Layer, Network};
use crate::models::fcn::{Fcn, FcnBackbone};
use crate::upsample::meta::meta_positions;
use crate::upsample::{InterpMode, MetaUpscale, Upsampler};
use burn::nn::conv::Conv2d;
use kestrel_runtime::{Activation, ResizeMode};

/// Describes `model` on `resolution` × `resolution` inputs as a list of layers with batch norm
/// folded into the backbone's convolutions; its output is the per-pixel class scores (input
/// size, one channel per class), as [`Fcn::forward`] gives them.
pub fn lower_segmenter(model: &Fcn, resolution: usize) -> Result<Network, ExportError> {
    if resolution == 0 {
        return Err(ExportError::Resolution {
            resolution,
            message: "expected at least 1 pixel".into(),
        });
    }
    let mut l = Lowering { layers: Vec::new() };
    let (backbone, [f8, f16, f32_]) = match &model.backbone {
        FcnBackbone::MobileNetV2(m) => {
            let (last, taps) = l.mobilenet_v2_features(m, "backbone.", &model.taps)?;
            let [s8, s16] = taps[..] else {
                return Err(ExportError::Unsupported {
                    layer: "backbone".into(),
                    message: format!(
                        "tap blocks {:?} are not two of the {} blocks",
                        model.taps,
                        m.blocks.len()
                    ),
                });
            };
            ("mobilenet-v2", [s8, s16, last])
        }
        FcnBackbone::ResNet(r) => {
            let [_, s8, s16, s32] = l.resnet_stages(r, "backbone.")?;
            (resnet_name(r), [s8, s16, s32])
        }
    };
    let mut y = plain_conv(&mut l, f32_, "score32", &model.score32)?;
    let variant = match (&model.score16, &model.score8) {
        (Some(_), Some(_)) => "fcn8s",
        (Some(_), None) => "fcn16s",
        _ => "fcn32s",
    };
    // Skip connections: upsample, crop to the tap's size, then the tap's scores with the cropped
    // map added (the runtime fuses the add into the score convolution).
    for (score, up, tap, name) in [
        (&model.score16, &model.up32, f16, "16"),
        (&model.score8, &model.up16, f8, "8"),
    ] {
        let Some(score) = score else { continue };
        if let Some(u) = up {
            y = upsampler(
                &mut l,
                y,
                &format!("up{}", if name == "16" { "32" } else { "16" }),
                u,
            )?;
        }
        y = l.push(Layer::Crop {
            name: format!("crop{name}"),
            input: y,
            like: tap,
        });
        let s = plain_conv(&mut l, tap, &format!("score{name}"), score)?;
        y = l.push(Layer::Add {
            name: format!("fuse{name}"),
            a: s,
            b: y,
            act: Activation::None,
        });
    }
    y = upsampler(&mut l, y, "up_final", &model.up_final)?;
    l.push(Layer::Crop {
        name: "crop_final".into(),
        input: y,
        like: 0,
    });
    Ok(Network {
        arch: format!("{variant}-{backbone}"),
        in_channels: 3,
        resolution,
        num_classes: model.score32.weight.val().dims()[0],
        layers: l.layers,
    })
}

/// A plain Burn convolution (with its bias, no batch norm) reading `input`.
fn plain_conv(
    l: &mut Lowering,
    input: usize,
    name: &str,
    c: &Conv2d,
) -> Result<usize, ExportError> {
    let weight = floats(c.weight.val(), name, "weight")?;
    let bias = bias_or_zeros(&c.bias, c.weight.val().dims()[0], name, "bias")?;
    let conv = conv_layer(c, name, weight, bias, Activation::None)?;
    Ok(l.push(Layer::Conv {
        name: name.into(),
        input,
        conv,
    }))
}

/// One upsampler reading `input`.
fn upsampler(
    l: &mut Lowering,
    input: usize,
    name: &str,
    u: &Upsampler,
) -> Result<usize, ExportError> {
    let resize = |l: &mut Lowering, mode, align_corners, resize| {
        l.push(Layer::Resize {
            name: name.into(),
            input,
            mode,
            align_corners,
            resize,
        })
    };
    Ok(match u {
        Upsampler::Interpolate(m) => {
            let mode = match m.mode {
                InterpMode::Nearest => ResizeMode::Nearest,
                InterpMode::Bilinear => ResizeMode::Linear,
                InterpMode::Bicubic => ResizeMode::Cubic,
            };
            // Nearest resampling has no align_corners.
            let align_corners = m.align_corners && m.mode != InterpMode::Nearest;
            resize(l, mode, align_corners, m.resize)
        }
        Upsampler::Transposed(m) => {
            let c = &m.conv;
            let [in_channels, out_per_group, kh, kw] = c.weight.val().dims();
            let out_channels = out_per_group * c.groups;
            let conv = ConvLayer {
                weight: floats(c.weight.val(), name, "weight")?,
                bias: bias_or_zeros(&c.bias, out_channels, name, "bias")?,
                in_channels,
                out_channels,
                kernel: [kh, kw],
                stride: c.stride,
                padding: c.padding,
                dilation: c.dilation,
                groups: c.groups,
                act: Activation::None,
            };
            l.push(Layer::ConvTranspose {
                name: name.into(),
                input,
                conv,
                output_padding: c.padding_out,
            })
        }
        Upsampler::PixelShuffle(m) => {
            let x = match &m.conv {
                Some(c) => plain_conv(l, input, &format!("{name}.conv"), c)?,
                None => input,
            };
            l.push(Layer::PixelShuffle {
                name: name.into(),
                input: x,
                factor: m.factor,
            })
        }
        Upsampler::Carafe(m) => {
            let compressed = plain_conv(l, input, &format!("{name}.compressor"), &m.compressor)?;
            let kernels = plain_conv(l, compressed, &format!("{name}.encoder"), &m.encoder)?;
            l.push(Layer::Carafe {
                name: name.into(),
                input,
                kernels,
                factor: m.factor,
                kernel: m.up_kernel,
            })
        }
        Upsampler::Meta(m) => meta_upscale(l, input, name, m)?,
    })
}

/// Meta-Upscale by an integer factor r as the convolution and pixel shuffle it equals: output
/// pixel (r·y + i, r·x + j) reads source pixel (y, x) with the filter predicted for fractions
/// (i/r, j/r), so the r² filters, stacked as output channel o·r² + i·r + j (PyTorch's
/// `pixel_shuffle` order), make one k×k convolution (padding k/2, no bias) whose shuffled output
/// is the upsampler's.
fn meta_upscale(
    l: &mut Lowering,
    input: usize,
    name: &str,
    m: &MetaUpscale,
) -> Result<usize, ExportError> {
    let r = m.scale;
    if !(r >= 1.0 && r.fract() == 0.0 && r <= u16::MAX as f64) {
        return Err(ExportError::Unsupported {
            layer: name.into(),
            message: format!(
                "the `meta` upsampler exports for integer factors (an FCN's are), got scale {r}"
            ),
        });
    }
    let f = r as usize;
    // The fractions i/r − ⌊i/r⌋ of outputs 0..r, computed as the module computes them.
    let (_, frac) = meta_positions(1, f, r);
    let device = m.fc1.weight.val().device();
    let filters = floats(m.filters(&frac, &frac, r, &device), name, "filters")?;
    let (cin, cout, k) = (m.in_channels, m.out_channels, m.kernel);
    let (kk, f2) = (cin * k * k, f * f);
    // filters: (f², C_out, C_in·k²) → OIHW with output channel o·f² + p.
    let mut weight = vec![0f32; cout * f2 * kk];
    for (p, per_pixel) in filters.chunks_exact(cout * kk).enumerate() {
        for (o, filter) in per_pixel.chunks_exact(kk).enumerate() {
            weight[(o * f2 + p) * kk..][..kk].copy_from_slice(filter);
        }
    }
    let conv = ConvLayer {
        weight,
        bias: vec![0.0; cout * f2],
        in_channels: cin,
        out_channels: cout * f2,
        kernel: [k, k],
        stride: [1, 1],
        padding: [k / 2, k / 2],
        dilation: [1, 1],
        groups: 1,
        act: Activation::None,
    };
    let conv_name = format!("{name}.filters");
    let x = l.push(Layer::Conv {
        name: conv_name,
        input,
        conv,
    });
    Ok(l.push(Layer::PixelShuffle {
        name: name.into(),
        input: x,
        factor: f,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::layout::nchw_to_nhwc;
    use crate::export::plan::segmenter_to_plan;
    use crate::export::synthetic::{burn_output, engine_outputs, input_nchw, randomized, rel_err};
    use crate::models::fcn::SegmenterSpec;
    use crate::upsample::UpsamplerKind;
    use burn::tensor::Device;

    fn spec(name: &str, width: f64, os: usize, up: UpsamplerKind) -> SegmenterSpec {
        SegmenterSpec::for_tests(name, width, 4, os, up)
    }

    /// Runs the Burn eval-mode model and the runtime plan on one random batch; returns the
    /// relative error (largest |difference| / largest |Burn score|), checked on both kernel paths.
    fn compare(s: &SegmenterSpec, res: usize, seed: u64) -> f32 {
        let device = Device::flex();
        let model = randomized(s.init(&device).unwrap(), seed);
        let batch = 2;
        let x = input_nchw(batch, res, 3);
        let want = burn_output(batch, res, |x| model.forward(x));
        let k = s.num_classes;
        let want = nchw_to_nhwc(&want, batch, k, res * res);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "{}: scores are all ~0", s.name);
        let plan = segmenter_to_plan(&model, res).unwrap();
        assert_eq!(plan.output_shape().len(), res * res * k);
        let nhwc = nchw_to_nhwc(&x, batch, 3, res * res);
        engine_outputs(&plan, &nhwc, batch)
            .iter()
            .fold(0f32, |worst, (_, got)| worst.max(rel_err(got, &want)))
    }

    /// The cases: fcn8s-mobilenet-v2 (α 0.5) at output stride 32 and 8 with bilinear and
    /// transposed upsampling, and fcn32s-resnet18 at an odd size.
    #[test]
    fn runtime_scores_match_burn_for_fcn_models() {
        for (name, width, os, up, res) in [
            ("fcn8s-mobilenet-v2", 0.5, 32, UpsamplerKind::Bilinear, 64),
            ("fcn8s-mobilenet-v2", 0.5, 32, UpsamplerKind::Transposed, 64),
            ("fcn8s-mobilenet-v2", 0.5, 8, UpsamplerKind::Bilinear, 48),
            ("fcn8s-mobilenet-v2", 0.5, 8, UpsamplerKind::Transposed, 48),
            ("fcn32s-resnet18", 1.0, 32, UpsamplerKind::Bilinear, 70),
            ("fcn32s-resnet18", 1.0, 32, UpsamplerKind::Transposed, 70),
        ] {
            let s = spec(name, width, os, up);
            let e = compare(&s, res, 31);
            assert!(e < 1e-4, "{name} os{os} {up} at {res}: relative error {e}");
        }
    }

    /// Every exportable upsampler, on odd sizes where crops are needed (the FCN-16s head
    /// of a dilated ResNet, whose last map already has stride 16).
    #[test]
    fn every_exportable_upsampler_matches_burn() {
        for up in [
            UpsamplerKind::Nearest,
            UpsamplerKind::Bilinear,
            UpsamplerKind::Bicubic,
            UpsamplerKind::Transposed,
            UpsamplerKind::PixelShuffle,
        ] {
            let s = spec("fcn16s-mobilenet-v2", 0.35, 32, up);
            let e = compare(&s, 45, 7);
            assert!(e < 1e-4, "fcn16s {up} at 45: relative error {e}");
        }
        let s = spec("fcn8s-resnet18", 1.0, 16, UpsamplerKind::Bicubic);
        let e = compare(&s, 37, 8);
        assert!(e < 1e-4, "fcn8s-resnet18 os16 bicubic: relative error {e}");
    }

    /// CARAFE and Meta-Upscale, on odd sizes with crops (FCN-16s and FCN-8s), factors 2, 8
    /// and 16, the encoder's 3×3 convolution at the maps' borders.
    #[test]
    fn carafe_and_meta_match_burn() {
        for (name, up, res) in [
            ("fcn16s-mobilenet-v2", UpsamplerKind::Carafe, 45),
            ("fcn8s-mobilenet-v2", UpsamplerKind::Carafe, 37),
            ("fcn16s-mobilenet-v2", UpsamplerKind::Meta, 45),
            ("fcn8s-mobilenet-v2", UpsamplerKind::Meta, 37),
        ] {
            let s = spec(name, 0.35, 32, up);
            let e = compare(&s, res, 9);
            assert!(e < 1e-4, "{name} {up} at {res}: relative error {e}");
        }
    }

    #[test]
    fn meta_with_a_fractional_scale_is_refused_by_name() {
        let device = Device::flex();
        let m = crate::upsample::MetaUpscaleConfig::new(2, 2)
            .with_hidden(4)
            .with_scale(2.5)
            .init(&device)
            .unwrap();
        let mut l = Lowering { layers: Vec::new() };
        let e = meta_upscale(&mut l, 0, "up_final", &m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("up_final") && e.contains("2.5"), "{e}");
    }

    #[test]
    fn the_network_is_named_and_dense() {
        let device = Device::flex();
        let model = spec("fcn8s-resnet18", 1.0, 8, UpsamplerKind::Bilinear)
            .init(&device)
            .unwrap();
        let net = lower_segmenter(&model, 40).unwrap();
        assert_eq!(net.arch, "fcn8s-resnet18");
        assert_eq!(net.num_classes, 4);
        assert!(net.is_dense());
        assert!(lower_segmenter(&model, 0).is_err());
    }
}
