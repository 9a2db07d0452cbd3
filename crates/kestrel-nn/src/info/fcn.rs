//! `kestrel info` for the FCN segmentation models: the backbone's rows (under `backbone.MobileNetV2.` or
//! `backbone.ResNet.`, their module paths), the
//! 1×1 score layers, the upsamplers and the crops and sums between them, with the same
//! conventions as the classifiers (see [`crate::info`]).
//!
//! What is counted is the segmentation network that runs: the backbone's unused classifier
//! (kept inside [`Fcn`](crate::models::fcn::Fcn) so torchvision weights load unchanged) is not, and
//! neither are the crops and sums (no multiply-adds). The upsamplers' parameters are those of the
//! module [`UpsamplerConfig::init`] builds (small: a few classes wide), counted on it.

use crate::info::{Cursor, InfoError, ModelInfo, Tracer};
use crate::models::fcn::{FcnVariant, SegmenterSpec};
use crate::models::zoo::Arch;
use crate::upsample::{UpsampleError, UpsamplerConfig, UpsamplerKind};

fn bad_value(e: UpsampleError) -> InfoError {
    match e {
        UpsampleError::BadField {
            field,
            got,
            expected,
            ..
        } => InfoError::BadValue {
            field: field.replace('_', "-"),
            expected,
            got,
        },
        other => InfoError::Inconsistent {
            layer: "fcn".into(),
            why: other.to_string(),
        },
    }
}

impl SegmenterSpec {
    /// The network's layers, parameters and multiply-adds on `resolution` × `resolution` RGB
    /// inputs. Errors name the bad setting (width, classes, output stride) or the first layer an
    /// input is too small for.
    pub fn describe(&self, resolution: usize) -> Result<ModelInfo, InfoError> {
        self.check().map_err(bad_value)?;
        let k = self.num_classes;
        let mut t = Tracer::new(3, resolution);
        // Module paths: Burn names an enum module's field by its variant.
        let [c8, c16, c32] = match self.name.backbone {
            Arch::MobileNetV2 => {
                t.set_prefix("backbone.MobileNetV2.");
                self.mobilenet().trace_features(&mut t)?
            }
            _ => {
                t.set_prefix("backbone.ResNet.");
                self.resnet().trace_features(&mut t)?
            }
        };
        t.set_prefix("");
        let [f32_, f16, f_final] = self.factors();
        let mut upsample = |t: &mut Tracer, name: &str, factor: usize| -> Result<(), InfoError> {
            let (kind, factor) = if factor == 1 {
                (UpsamplerKind::Nearest, 1)
            } else {
                (self.upsampler, factor)
            };
            let cfg = UpsamplerConfig::for_kind(kind, k, k, factor).map_err(bad_value)?;
            // Counted, not built: the layer may be large (a transposed ×32 of many classes).
            let params = cfg.param_count().map_err(bad_value)?;
            t.upsample(name, &cfg, params)
        };
        // Scores of a tap, then the running sum brought to its resolution, cropped and added.
        let fuse = |t: &mut Tracer,
                    upsample: &mut dyn FnMut(&mut Tracer, &str, usize) -> Result<(), InfoError>,
                    tap: Cursor,
                    score: &str,
                    up: &str,
                    factor: usize|
         -> Result<(), InfoError> {
            let sum = t.at();
            t.branch_from(tap);
            t.conv_bias(score, k, 1, 1)?;
            let skip = t.at();
            t.branch_from(sum);
            if factor != 1 {
                upsample(t, up, factor)?;
            }
            t.crop(score, skip.shape[1])?;
            t.add(score, skip)
        };
        t.branch_from(c32);
        t.conv_bias("score32", k, 1, 1)?;
        if self.name.variant != FcnVariant::S32 {
            fuse(&mut t, &mut upsample, c16, "score16", "up32", f32_)?;
        }
        if self.name.variant == FcnVariant::S8 {
            fuse(&mut t, &mut upsample, c8, "score8", "up16", f16)?;
        }
        upsample(&mut t, "up_final", f_final)?;
        t.crop("up_final", resolution)?;
        t.finish(&self.name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::LayerKind;
    use crate::layers::params::{for_each_tensor, is_buffer};
    use crate::models::zoo::ClassifierSpec;
    use burn::tensor::Device;
    use burn::tensor::{Distribution, Tensor};

    fn spec(name: &str, os: usize, up: UpsamplerKind) -> SegmenterSpec {
        SegmenterSpec::for_tests(name, 0.35, 5, os, up)
    }

    /// The trainable tensors of the built model, less the backbone's unused classifier.
    fn used_tensors(spec: &SegmenterSpec, device: &Device) -> Vec<(String, usize)> {
        let model = spec.init(device).unwrap();
        let mut out = Vec::new();
        for_each_tensor(&model, |path, shape| {
            let unused = path.contains(".classifier.") || path.contains(".fc.");
            if !is_buffer(path) && !unused {
                out.push((path.to_string(), shape.iter().product()));
            }
        });
        out
    }

    /// The rows' parameters are exactly the built network's (less the unused classifier), row
    /// by row under each row's module path, for every head, both backbone families, every
    /// upsampler and every output stride; the output is the input size.
    #[test]
    fn rows_match_the_built_network() {
        let device = Device::flex();
        let cases = [
            ("fcn8s-mobilenet-v2", 32, UpsamplerKind::Bilinear),
            ("fcn8s-mobilenet-v2", 8, UpsamplerKind::Transposed),
            ("fcn16s-mobilenet-v2", 16, UpsamplerKind::Carafe),
            ("fcn32s-mobilenet-v2", 32, UpsamplerKind::Meta),
            ("fcn8s-mobilenet-v2", 32, UpsamplerKind::PixelShuffle),
            ("fcn8s-resnet18", 32, UpsamplerKind::Bicubic),
            ("fcn16s-resnet18", 8, UpsamplerKind::Transposed),
            ("fcn32s-resnet18", 16, UpsamplerKind::Nearest),
        ];
        for (name, os, up) in cases {
            let s = spec(name, os, up);
            let info = s.describe(70).unwrap();
            let tensors = used_tensors(&s, &device);
            let total: usize = tensors.iter().map(|(_, n)| n).sum();
            assert_eq!(info.params, total as u64, "{name} os {os} {up}");
            for row in &info.layers {
                let under: usize = tensors
                    .iter()
                    .filter(|(p, _)| p.starts_with(&format!("{}.", row.name)))
                    .map(|(_, n)| n)
                    .sum();
                assert_eq!(row.params, under as u64, "{name} {up}: row {}", row.name);
            }
            let last = info.layers.last().unwrap();
            assert_eq!(last.name, "up_final");
            assert_eq!(last.kind, LayerKind::Upsample);
            // The last row is before the crop; the forward pass crops to the input.
            assert!(
                last.out[1] >= 70 && last.out[1] < 70 + 32,
                "{name}: {:?}",
                last.out
            );
            let model = s.init(&device).unwrap();
            let x = Tensor::<4>::random([1, 3, 70, 70], Distribution::Default, &device);
            assert_eq!(model.forward(x).dims(), [1, 5, 70, 70]);
        }
    }

    /// The backbone rows are the classifier's (ahead of its pooling and fc), renamed; FCN-32s
    /// adds a 1×1 score layer and one upsampling by the output stride.
    #[test]
    fn backbone_rows_are_the_classifiers_and_the_head_is_counted_by_hand() {
        let s = spec("fcn32s-resnet18", 32, UpsamplerKind::Transposed);
        let info = s.describe(224).unwrap();
        let cls = ClassifierSpec {
            arch: Arch::ResNet18,
            width: 1.0,
            num_classes: 5,
            activation: Default::default(),
        }
        .describe_at(224, 32)
        .unwrap();
        let body = &cls.layers[..cls.layers.len() - 2];
        for (a, b) in info.layers.iter().zip(body) {
            assert_eq!(a.name, format!("backbone.ResNet.{}", b.name));
            assert_eq!((a.out, a.params, a.macs), (b.out, b.params, b.macs));
            assert_eq!(a.receptive_field, b.receptive_field);
        }
        let n = body.len();
        assert_eq!(info.layers.len(), n + 2);
        // Score: 512 → 5 on 7×7: 512·5 + 5 params, 5·7·7·512 MACs.
        let score = &info.layers[n];
        assert_eq!((score.name.as_str(), score.out), ("score32", [5, 7, 7]));
        assert_eq!((score.params, score.macs), (2565, 125_440));
        assert_eq!(score.receptive_field, body[n - 1].receptive_field);
        // Transposed ×32: FCN's k = 64, s = 32, p = 16 → 224; weights 5·5·64² + bias 5;
        // MACs 5·7·7 · 5·64²; each output unit sees ⌈64/32⌉ = 2 score units, 32 px apart.
        let up = &info.layers[n + 1];
        assert_eq!((up.out, up.kernel), ([5, 224, 224], 2));
        assert_eq!(up.params, 5 * 5 * 64 * 64 + 5);
        assert_eq!(up.macs, 5 * 7 * 7 * 5 * 64 * 64);
        assert_eq!(up.receptive_field, body[n - 1].receptive_field + 32);
        assert_eq!(info.params, cls.params - (512 * 5 + 5) + 2565 + up.params);
    }

    /// FCN-8s on a stride-32 backbone fuses the three taps: score32 ×2 + score16, ×2 + score8,
    /// ×8 to the input, with the receptive field of the deepest branch; on an output-stride-8
    /// backbone every tap is already at stride 8 and only the final ×8 upsamples.
    #[test]
    fn fcn8s_fuses_three_taps() {
        let s = spec("fcn8s-mobilenet-v2", 32, UpsamplerKind::Bilinear);
        let info = s.describe(224).unwrap();
        let names: Vec<&str> = info
            .layers
            .iter()
            .skip_while(|l| l.name.starts_with("backbone."))
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["score32", "score16", "up32", "score8", "up16", "up_final"]
        );
        let row = |n: &str| info.layers.iter().find(|l| l.name == n).unwrap();
        assert_eq!(row("up32").out, [5, 14, 14]);
        assert_eq!(row("up16").out, [5, 28, 28]);
        assert_eq!(row("up_final").out, [5, 224, 224]);
        // Bilinear: support 2 at the input's jump; the head's RF (jump 32 → 16 → 8 → 1).
        let head_rf = row("score32").receptive_field;
        assert_eq!(row("up32").receptive_field, head_rf + 32);
        assert_eq!(row("up16").receptive_field, head_rf + 32 + 16);
        assert_eq!(row("up_final").receptive_field, head_rf + 32 + 16 + 8);
        let dilated = spec("fcn8s-mobilenet-v2", 8, UpsamplerKind::Bilinear)
            .describe(224)
            .unwrap();
        let head: Vec<&str> = dilated
            .layers
            .iter()
            .skip_while(|l| l.name.starts_with("backbone."))
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(head, ["score32", "score16", "score8", "up_final"]);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let mut s = spec("fcn8s-resnet18", 12, UpsamplerKind::Bilinear);
        let e = s.describe(224).unwrap_err();
        assert!(
            matches!(e, InfoError::BadValue { ref field, .. } if field == "output-stride"),
            "{e}"
        );
        s.output_stride = 32;
        s.num_classes = 0;
        assert!(matches!(
            s.describe(224),
            Err(InfoError::BadValue { ref field, .. }) if field == "num-classes"
        ));
        s.num_classes = 3;
        assert!(matches!(s.describe(0), Err(InfoError::TooSmall { .. })));
    }
}
