//! Fully convolutional networks for semantic segmentation (Long, Shelhamer & Darrell, CVPR 2015)
//! on kestrel's backbones.
//!
//! FCN-32s scores the last feature map with a 1×1 convolution and upsamples it to the input size.
//! FCN-16s first upsamples those scores to the stride-16 map and adds the scores of that map;
//! FCN-8s does the same once more with the stride-8 map. Each upsampling is any
//! [`UpsamplerKind`]; the transposed convolution starts as bilinear interpolation, as in the
//! paper. On a dilated backbone (output stride 16 or 8) a tap that already has the finer
//! resolution needs no upsampling before the sum.
//!
//! Feature maps of inputs that are not multiples of 32 round up at every stride-2 layer, so an
//! upsampled map can be a row or column larger than the map it is added to; it is cropped
//! (top-left aligned), as FCN crops.
//!
//! Model names: `fcn32s-<backbone>`, `fcn16s-<backbone>`, `fcn8s-<backbone>`, where the backbone
//! is `mobilenet-v2`, `resnet18`, `resnet34` or `resnet50`.

use crate::models::mobilenet_v2::{MobileNetV2, MobileNetV2Config};
use crate::models::resnet::{ResNet, ResNetConfig};
use crate::models::zoo::Arch;
use crate::upsample::{UpsampleError, Upsampler, UpsamplerConfig, UpsamplerKind};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How many feature maps the head fuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FcnVariant {
    /// Only the last map (`fcn32s`).
    #[serde(rename = "fcn32s")]
    S32,
    /// The last and the stride-16 map (`fcn16s`).
    #[serde(rename = "fcn16s")]
    S16,
    /// The last, stride-16 and stride-8 maps (`fcn8s`).
    #[serde(rename = "fcn8s")]
    S8,
}

impl FcnVariant {
    /// The prefix of the model name.
    pub fn name(self) -> &'static str {
        match self {
            FcnVariant::S32 => "fcn32s",
            FcnVariant::S16 => "fcn16s",
            FcnVariant::S8 => "fcn8s",
        }
    }
}

/// A segmentation model name that is not `fcn{32,16,8}s-<backbone>`.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown segmentation model `{0}`; expected fcn32s-, fcn16s- or fcn8s- followed by one of: \
     mobilenet-v2, resnet18, resnet34, resnet50"
)]
pub struct UnknownSegmenter(pub String);

/// A segmentation model name: the FCN variant and its backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmenterName {
    /// The head.
    pub variant: FcnVariant,
    /// The backbone.
    pub backbone: Arch,
}

impl FromStr for SegmenterName {
    type Err = UnknownSegmenter;
    fn from_str(s: &str) -> Result<Self, UnknownSegmenter> {
        let err = || UnknownSegmenter(s.to_string());
        let (head, backbone) = s.split_once('-').ok_or_else(err)?;
        let variant = [FcnVariant::S32, FcnVariant::S16, FcnVariant::S8]
            .into_iter()
            .find(|v| v.name() == head)
            .ok_or_else(err)?;
        let backbone: Arch = backbone.parse().map_err(|_| err())?;
        if backbone == Arch::MobileNetV1 {
            return Err(err());
        }
        Ok(SegmenterName { variant, backbone })
    }
}

impl fmt::Display for SegmenterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.variant.name(), self.backbone)
    }
}

/// The most classes (background included) a segmentation model may have: masks hold one byte per
/// pixel and 255 is the ignored label, so classes 0 to 254 are all a mask can name. Specs read
/// from files are checked against it before a network is built (a transposed-convolution
/// upsampler holds classes² weights).
pub const MAX_SEG_CLASSES: usize = 255;

/// What it takes to build an [`Fcn`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmenterSpec {
    /// Head and backbone.
    pub name: SegmenterName,
    /// Width multiplier α of a MobileNetV2 backbone (ignored by ResNets).
    pub width: f64,
    /// Classes, background included.
    pub num_classes: usize,
    /// Output stride of the backbone: 32, 16 or 8.
    pub output_stride: usize,
    /// The upsampling layers.
    pub upsampler: UpsamplerKind,
}

/// The backbone of an [`Fcn`].
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FcnBackbone {
    /// MobileNetV2 (its classifier is unused).
    MobileNetV2(MobileNetV2),
    /// A ResNet (its `fc` is unused).
    ResNet(ResNet),
}

/// An FCN: backbone, 1×1 score layers on its taps, upsamplers between them.
#[derive(Module, Debug)]
pub struct Fcn {
    /// The feature extractor.
    pub backbone: FcnBackbone,
    /// Scores of the last feature map.
    pub score32: Conv2d,
    /// Scores of the stride-16 map (FCN-16s and -8s).
    pub score16: Option<Conv2d>,
    /// Scores of the stride-8 map (FCN-8s).
    pub score8: Option<Conv2d>,
    /// Last map's scores → the stride-16 map's resolution (absent when they already agree).
    pub up32: Option<Upsampler>,
    /// Fused stride-16 scores → the stride-8 map's resolution (FCN-8s; absent when equal).
    pub up16: Option<Upsampler>,
    /// The fused scores → the input resolution.
    pub up_final: Upsampler,
    /// Indices of the MobileNetV2 blocks tapped for the stride-8 and -16 maps.
    #[module(skip)]
    pub taps: [usize; 2],
}

impl SegmenterSpec {
    /// The feature strides of the (stride-8, stride-16, last) taps at this output stride.
    pub fn tap_strides(&self) -> [usize; 3] {
        let os = self.output_stride;
        [8, os.min(16), os]
    }

    /// Channels of the (stride-8, stride-16, last) taps.
    pub fn tap_channels(&self) -> [usize; 3] {
        match self.name.backbone {
            Arch::MobileNetV2 => {
                let c = self.mobilenet();
                let [a, b] = c.tap_channels();
                [a, b, c.channels().2]
            }
            _ => self.resnet().tap_channels(),
        }
    }

    pub(crate) fn mobilenet(&self) -> MobileNetV2Config {
        MobileNetV2Config::new(self.num_classes)
            .with_width(self.width)
            .with_output_stride(self.output_stride)
    }

    pub(crate) fn resnet(&self) -> ResNetConfig {
        let n = self.num_classes;
        let c = match self.name.backbone {
            Arch::ResNet34 => ResNetConfig::resnet34(n),
            Arch::ResNet50 => ResNetConfig::resnet50(n),
            _ => ResNetConfig::resnet18(n),
        };
        c.with_output_stride(self.output_stride)
    }

    /// The upsampling factors (last → 16, 16 → 8, fused → input) the variant uses; 1 means no
    /// upsampling.
    pub fn factors(&self) -> [usize; 3] {
        let [s8, s16, s32] = self.tap_strides();
        match self.name.variant {
            FcnVariant::S32 => [1, 1, s32],
            FcnVariant::S16 => [s32 / s16, 1, s16],
            FcnVariant::S8 => [s32 / s16, s16 / s8, s8],
        }
    }

    /// Checks the output stride, the class count (1 to [`MAX_SEG_CLASSES`]) and the width.
    pub(crate) fn check(&self) -> Result<(), UpsampleError> {
        let bad = |field: &'static str, got: String, expected: &str| {
            Err(UpsampleError::field("fcn", field, got, expected))
        };
        if ![8, 16, 32].contains(&self.output_stride) {
            return bad(
                "output_stride",
                self.output_stride.to_string(),
                "8, 16 or 32",
            );
        }
        if !(1..=MAX_SEG_CLASSES).contains(&self.num_classes) {
            return bad(
                "num_classes",
                self.num_classes.to_string(),
                &format!("1 to {MAX_SEG_CLASSES} (a mask holds one byte per pixel)"),
            );
        }
        if !(self.width > 0.0 && self.width <= crate::models::zoo::MAX_WIDTH) {
            return bad("width", self.width.to_string(), "in (0, 4]");
        }
        Ok(())
    }

    /// Builds the model: the backbone with its usual initialisation, zero-initialised score
    /// layers (as FCN does), and the upsamplers of [`UpsamplerConfig::for_kind`].
    pub fn init(&self, device: &Device) -> Result<Fcn, UpsampleError> {
        self.check()?;
        let k = self.num_classes;
        let (backbone, taps) = match self.name.backbone {
            Arch::MobileNetV2 => {
                let c = self.mobilenet();
                (FcnBackbone::MobileNetV2(c.init(device)), c.tap_blocks())
            }
            _ => (FcnBackbone::ResNet(self.resnet().init(device)), [0, 0]),
        };
        let [c8, c16, c32] = self.tap_channels();
        // Zero-initialised through the config, so the parameters keep gradient tracking on an
        // autodiff device (mapping a parameter to `zeros_like` would drop it).
        let score = |c: usize| {
            Conv2dConfig::new([c, k], [1, 1])
                .with_initializer(Initializer::Zeros)
                .init(device)
        };
        let up = |factor: usize| -> Result<Option<Upsampler>, UpsampleError> {
            if factor == 1 {
                return Ok(None);
            }
            UpsamplerConfig::for_kind(self.upsampler, k, k, factor)?
                .init(device)
                .map(Some)
        };
        let [f32_, f16, f_final] = self.factors();
        let variant = self.name.variant;
        let up_final = match up(f_final)? {
            Some(u) => u,
            None => UpsamplerConfig::for_kind(UpsamplerKind::Nearest, k, k, 1)?.init(device)?,
        };
        Ok(Fcn {
            backbone,
            score32: score(c32),
            score16: (variant != FcnVariant::S32).then(|| score(c16)),
            score8: (variant == FcnVariant::S8).then(|| score(c8)),
            up32: if variant == FcnVariant::S32 {
                None
            } else {
                up(f32_)?
            },
            up16: if variant == FcnVariant::S8 {
                up(f16)?
            } else {
                None
            },
            up_final,
            taps,
        })
    }
}

#[cfg(test)]
impl SegmenterSpec {
    /// A spec for tests: the model `name` (`fcn8s-mobilenet-v2`, ...) and the other fields.
    pub(crate) fn for_tests(
        name: &str,
        width: f64,
        num_classes: usize,
        output_stride: usize,
        upsampler: UpsamplerKind,
    ) -> SegmenterSpec {
        SegmenterSpec {
            name: name.parse().unwrap(),
            width,
            num_classes,
            output_stride,
            upsampler,
        }
    }
}

/// `x` cut to `h` × `w` from the top-left corner (it is at least that large by construction).
fn crop(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let [n, c, xh, xw] = x.dims();
    if xh == h && xw == w {
        return x;
    }
    debug_assert!(xh >= h && xw >= w, "upsampled {xh}×{xw} below {h}×{w}");
    x.slice([0..n, 0..c, 0..h.min(xh), 0..w.min(xw)])
}

impl Fcn {
    /// Per-pixel class scores (N, classes, H, W) for images (N, 3, H, W).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        self.head(self.features(x), h, w)
    }

    /// The backbone's stride-8, stride-16 and last feature maps, which [`Fcn::head`] scores.
    pub fn features(&self, x: Tensor<4>) -> [Tensor<4>; 3] {
        match &self.backbone {
            FcnBackbone::MobileNetV2(m) => m.feature_taps(x, self.taps),
            FcnBackbone::ResNet(r) => r.feature_taps(x),
        }
    }

    /// The FCN head alone: per-pixel class scores (N, classes, `h`, `w`) from the (stride-8,
    /// stride-16, last) feature maps of [`Fcn::features`] of an `h` × `w` input.
    pub fn head(&self, taps: [Tensor<4>; 3], h: usize, w: usize) -> Tensor<4> {
        let [f8, f16, f32_] = taps;
        let mut y = self.score32.forward(f32_);
        if let Some(s16) = &self.score16 {
            let skip = s16.forward(f16);
            let [_, _, sh, sw] = skip.dims();
            if let Some(u) = &self.up32 {
                y = u.forward(y);
            }
            y = crop(y, sh, sw) + skip;
        }
        if let Some(s8) = &self.score8 {
            let skip = s8.forward(f8);
            let [_, _, sh, sw] = skip.dims();
            if let Some(u) = &self.up16 {
                y = u.forward(y);
            }
            y = crop(y, sh, sw) + skip;
        }
        crop(self.up_final.forward(y), h, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, os: usize, up: UpsamplerKind) -> SegmenterSpec {
        SegmenterSpec::for_tests(name, 0.25, 5, os, up)
    }

    #[test]
    fn names_parse_and_round_trip() {
        for name in ["fcn8s-mobilenet-v2", "fcn16s-resnet18", "fcn32s-resnet50"] {
            assert_eq!(name.parse::<SegmenterName>().unwrap().to_string(), name);
        }
        for bad in [
            "fcn8s",
            "fcn4s-resnet18",
            "fcn8s-vgg16",
            "fcn8s-mobilenet-v1",
            "unet-resnet18",
        ] {
            let e = bad.parse::<SegmenterName>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("fcn8s-"), "{e}");
        }
    }

    #[test]
    fn factors_follow_the_tap_strides() {
        let k = UpsamplerKind::Bilinear;
        assert_eq!(spec("fcn32s-resnet18", 32, k).factors(), [1, 1, 32]);
        assert_eq!(spec("fcn16s-resnet18", 32, k).factors(), [2, 1, 16]);
        assert_eq!(spec("fcn8s-resnet18", 32, k).factors(), [2, 2, 8]);
        assert_eq!(spec("fcn8s-resnet18", 16, k).factors(), [1, 2, 8]);
        assert_eq!(spec("fcn8s-resnet18", 8, k).factors(), [1, 1, 8]);
    }

    #[test]
    fn outputs_have_the_input_size_for_every_variant_and_odd_sizes() {
        let device = Device::flex();
        for (name, os) in [
            ("fcn32s-mobilenet-v2", 32),
            ("fcn16s-mobilenet-v2", 32),
            ("fcn8s-mobilenet-v2", 32),
            ("fcn8s-mobilenet-v2", 8),
            ("fcn8s-resnet18", 16),
        ] {
            for up in [UpsamplerKind::Bilinear, UpsamplerKind::Transposed] {
                let model = spec(name, os, up).init(&device).unwrap();
                for (h, w) in [(64, 64), (45, 70)] {
                    let x = Tensor::<4>::ones([2, 3, h, w], &device);
                    assert_eq!(model.forward(x).dims(), [2, 5, h, w], "{name} os{os} {up}");
                }
            }
        }
    }

    #[test]
    fn zero_scores_give_zero_logits_until_trained() {
        // FCN zero-initialises its score layers: the untrained model predicts all classes
        // equally (bilinear resampling of zeros is zero; the transposed bias starts at zero).
        let device = Device::flex();
        let model = spec("fcn8s-mobilenet-v2", 32, UpsamplerKind::Transposed)
            .init(&device)
            .unwrap();
        let y = model.forward(Tensor::<4>::ones([1, 3, 32, 32], &device));
        let max = y.abs().max().into_scalar::<f32>();
        assert_eq!(max, 0.0);
    }

    #[test]
    fn zeroed_score_layers_still_train_on_autodiff() {
        // A zeroed parameter that lost its gradient flag would never move, and with zero scores
        // no gradient reaches the backbone either: nothing would learn.
        let device = Device::flex().autodiff();
        let model = spec("fcn8s-mobilenet-v2", 32, UpsamplerKind::Bilinear)
            .init(&device)
            .unwrap();
        let convs = [
            Some(&model.score32),
            model.score16.as_ref(),
            model.score8.as_ref(),
        ];
        for conv in convs.into_iter().flatten() {
            assert!(conv.weight.val().is_require_grad());
            assert!(conv.bias.as_ref().unwrap().val().is_require_grad());
        }
        // And on a plain device the same init does not ask for gradients.
        let plain = spec("fcn8s-mobilenet-v2", 32, UpsamplerKind::Bilinear)
            .init(&Device::flex())
            .unwrap();
        assert!(!plain.score32.weight.val().is_require_grad());
    }

    #[test]
    fn bad_settings_are_errors() {
        let device = Device::flex();
        let mut s = spec("fcn8s-resnet18", 4, UpsamplerKind::Bilinear);
        assert!(s
            .init(&device)
            .unwrap_err()
            .to_string()
            .contains("output_stride"));
        s.output_stride = 32;
        s.num_classes = 0;
        assert!(s
            .init(&device)
            .unwrap_err()
            .to_string()
            .contains("num_classes"));
    }
}
