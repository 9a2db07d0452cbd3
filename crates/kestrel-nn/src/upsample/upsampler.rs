//! The upsamplers by name, for configuration files and the CLI: one config enum, one module
//! enum, and their output sizes and channels.

use super::carafe::{Carafe, CarafeConfig};
use super::error::UpsampleError;
use super::interpolate::{InterpMode, Interpolate, InterpolateConfig};
use super::meta::{MetaUpscale, MetaUpscaleConfig};
use super::pixel_shuffle::{PixelShuffle, PixelShuffleConfig};
use super::resize::ResizeTo;
use super::transposed::{Transposed, TransposedConfig};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The upsampler families, with their CLI names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpsamplerKind {
    /// `nearest`
    Nearest,
    /// `bilinear`
    Bilinear,
    /// `bicubic`
    Bicubic,
    /// `transposed`
    Transposed,
    /// `pixelshuffle`
    PixelShuffle,
    /// `carafe`
    Carafe,
    /// `meta`
    Meta,
}

impl UpsamplerKind {
    /// Every kind, in the order of the CLI's help.
    pub const ALL: [UpsamplerKind; 7] = [
        UpsamplerKind::Nearest,
        UpsamplerKind::Bilinear,
        UpsamplerKind::Bicubic,
        UpsamplerKind::Transposed,
        UpsamplerKind::PixelShuffle,
        UpsamplerKind::Carafe,
        UpsamplerKind::Meta,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            UpsamplerKind::Nearest => "nearest",
            UpsamplerKind::Bilinear => "bilinear",
            UpsamplerKind::Bicubic => "bicubic",
            UpsamplerKind::Transposed => "transposed",
            UpsamplerKind::PixelShuffle => "pixelshuffle",
            UpsamplerKind::Carafe => "carafe",
            UpsamplerKind::Meta => "meta",
        }
    }

    /// Whether the upsampler has trainable parameters.
    pub fn learnable(self) -> bool {
        !matches!(
            self,
            UpsamplerKind::Nearest | UpsamplerKind::Bilinear | UpsamplerKind::Bicubic
        )
    }
}

impl fmt::Display for UpsamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for UpsamplerKind {
    type Err = UpsampleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UpsamplerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UpsampleError::UnknownKind(s.to_string()))
    }
}

/// The configuration of any upsampler.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum UpsamplerConfig {
    /// Nearest, bilinear or bicubic resampling (PyTorch semantics).
    Interpolate(InterpolateConfig),
    /// Transposed convolution.
    Transposed(TransposedConfig),
    /// Sub-pixel convolution / pixel shuffle.
    #[serde(rename = "pixelshuffle")]
    PixelShuffle(PixelShuffleConfig),
    /// CARAFE.
    Carafe(CarafeConfig),
    /// Meta-Upscale.
    Meta(MetaUpscaleConfig),
}

impl UpsamplerConfig {
    /// A typical ×`factor` upsampler of each kind from `in_channels` to `out_channels`:
    /// transposed is FCN's (kernel k = 2f − f mod 2, stride f, padding (k − f)/2, so the output
    /// is exactly f·H; bilinear-initialised when the channels match); pixelshuffle has a 3×3
    /// sub-pixel convolution; meta uses `factor` as its default scale. Resampling and CARAFE
    /// keep the channels, so they need in = out.
    pub fn for_kind(
        kind: UpsamplerKind,
        in_channels: usize,
        out_channels: usize,
        factor: usize,
    ) -> Result<Self, UpsampleError> {
        if factor == 0 {
            return Err(UpsampleError::field(kind.name(), "factor", 0, ">= 1"));
        }
        let same = || {
            if in_channels == out_channels {
                Ok(())
            } else {
                Err(UpsampleError::field(
                    kind.name(),
                    "out_channels",
                    out_channels,
                    format!("= in_channels ({in_channels}): this upsampler keeps the channels"),
                ))
            }
        };
        let f = factor as f64;
        let interpolate = |mode| -> Result<Self, UpsampleError> {
            same()?;
            Ok(UpsamplerConfig::Interpolate(
                InterpolateConfig::new(mode).with_resize(ResizeTo::Scale([f, f])),
            ))
        };
        Ok(match kind {
            UpsamplerKind::Nearest => interpolate(InterpMode::Nearest)?,
            UpsamplerKind::Bilinear => interpolate(InterpMode::Bilinear)?,
            UpsamplerKind::Bicubic => interpolate(InterpMode::Bicubic)?,
            UpsamplerKind::Transposed => {
                // k − f is even (f, or f − 1 for odd f), so p = (k − f)/2 gives
                // (H − 1)f + k − 2p = fH.
                let k = 2 * factor - factor % 2;
                let p = (k - factor) / 2;
                UpsamplerConfig::Transposed(
                    TransposedConfig::new(in_channels, out_channels)
                        .with_kernel([k, k])
                        .with_stride([factor, factor])
                        .with_padding([p, p])
                        .with_bilinear_init(in_channels == out_channels),
                )
            }
            UpsamplerKind::PixelShuffle => UpsamplerConfig::PixelShuffle(
                PixelShuffleConfig::new(in_channels)
                    .with_factor(factor)
                    .with_conv_out_channels(Some(out_channels)),
            ),
            UpsamplerKind::Carafe => {
                same()?;
                UpsamplerConfig::Carafe(
                    CarafeConfig::new(in_channels)
                        .with_factor(factor)
                        .with_compressed_channels(in_channels.min(64)),
                )
            }
            UpsamplerKind::Meta => UpsamplerConfig::Meta(
                MetaUpscaleConfig::new(in_channels, out_channels).with_scale(f),
            ),
        })
    }

    /// Which upsampler this is.
    pub fn kind(&self) -> UpsamplerKind {
        match self {
            UpsamplerConfig::Interpolate(c) => c.mode.kind(),
            UpsamplerConfig::Transposed(_) => UpsamplerKind::Transposed,
            UpsamplerConfig::PixelShuffle(_) => UpsamplerKind::PixelShuffle,
            UpsamplerConfig::Carafe(_) => UpsamplerKind::Carafe,
            UpsamplerConfig::Meta(_) => UpsamplerKind::Meta,
        }
    }

    /// Output (H′, W′) for an input (H, W); `None` when there is none.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        if input.contains(&0) {
            return None;
        }
        match self {
            UpsamplerConfig::Interpolate(c) => c.resize.output_size(input),
            UpsamplerConfig::Transposed(c) => c.output_size(input),
            UpsamplerConfig::PixelShuffle(c) => c.output_size(input),
            UpsamplerConfig::Carafe(c) => c.output_size(input),
            UpsamplerConfig::Meta(c) => c.output_size(input),
        }
    }

    /// Output channels for `in_channels` input channels.
    pub fn output_channels(&self, in_channels: usize) -> usize {
        match self {
            UpsamplerConfig::Transposed(c) => c.out_channels,
            UpsamplerConfig::PixelShuffle(c) => c.out_channels(),
            UpsamplerConfig::Meta(c) => c.out_channels,
            _ => in_channels,
        }
    }

    /// Trainable parameters of the module [`UpsamplerConfig::init`] would build, counted without
    /// building it (a transposed ×32 of 255 classes is a gigabyte), after the same checks.
    pub fn param_count(&self) -> Result<u64, UpsampleError> {
        match self {
            UpsamplerConfig::Interpolate(c) => c.init().map(|_| 0),
            UpsamplerConfig::Transposed(c) => c.param_count(),
            UpsamplerConfig::PixelShuffle(c) => c.param_count(),
            UpsamplerConfig::Carafe(c) => c.param_count(),
            UpsamplerConfig::Meta(c) => c.param_count(),
        }
    }

    /// Checks the configuration and builds the module.
    pub fn init(&self, device: &Device) -> Result<Upsampler, UpsampleError> {
        Ok(match self {
            UpsamplerConfig::Interpolate(c) => Upsampler::Interpolate(c.init()?),
            UpsamplerConfig::Transposed(c) => Upsampler::Transposed(c.init(device)?),
            UpsamplerConfig::PixelShuffle(c) => Upsampler::PixelShuffle(c.init(device)?),
            UpsamplerConfig::Carafe(c) => Upsampler::Carafe(c.init(device)?),
            UpsamplerConfig::Meta(c) => Upsampler::Meta(c.init(device)?),
        })
    }
}

/// Any upsampler.
#[derive(Module, Debug)]
pub enum Upsampler {
    /// Nearest, bilinear or bicubic resampling.
    Interpolate(Interpolate),
    /// Transposed convolution.
    Transposed(Transposed),
    /// Pixel shuffle (sub-pixel convolution).
    PixelShuffle(PixelShuffle),
    /// CARAFE.
    Carafe(Carafe),
    /// Meta-Upscale.
    Meta(MetaUpscale),
}

impl Upsampler {
    /// Output (H′, W′) for an input (H, W).
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        match self {
            Upsampler::Interpolate(m) => m.output_size(input),
            Upsampler::Transposed(m) => m.output_size(input),
            Upsampler::PixelShuffle(m) => m.output_size(input),
            Upsampler::Carafe(m) => m.output_size(input),
            Upsampler::Meta(m) => m.output_size(input),
        }
    }

    /// Upsamples an (N, C, H, W) tensor.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Upsampler::Interpolate(m) => m.forward(x),
            Upsampler::Transposed(m) => m.forward(x),
            Upsampler::PixelShuffle(m) => m.forward(x),
            Upsampler::Carafe(m) => m.forward(x),
            Upsampler::Meta(m) => m.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_equal_the_built_modules() {
        use crate::layers::params::trainable_params;
        let device = Device::flex();
        for kind in UpsamplerKind::ALL {
            for (cin, cout, factor) in [(5, 5, 2), (3, 3, 4), (4, 4, 3)] {
                let Ok(cfg) = UpsamplerConfig::for_kind(kind, cin, cout, factor) else {
                    continue;
                };
                let built = trainable_params(&cfg.init(&device).unwrap()) as u64;
                assert_eq!(
                    cfg.param_count().unwrap(),
                    built,
                    "{kind:?} {cin}->{cout} x{factor}"
                );
            }
        }
        for cfg in [
            UpsamplerConfig::for_kind(UpsamplerKind::Meta, 3, 6, 2).unwrap(),
            UpsamplerConfig::for_kind(UpsamplerKind::PixelShuffle, 4, 7, 2).unwrap(),
            UpsamplerConfig::for_kind(UpsamplerKind::Transposed, 4, 6, 2).unwrap(),
        ] {
            let built = trainable_params(&cfg.init(&device).unwrap()) as u64;
            assert_eq!(cfg.param_count().unwrap(), built, "{cfg:?}");
        }
        // A transposed ×32 of 255 classes: counted (266 M), never built.
        let big = UpsamplerConfig::for_kind(UpsamplerKind::Transposed, 255, 255, 32).unwrap();
        assert_eq!(big.param_count().unwrap(), 255 * 255 * 64 * 64 + 255);
    }
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Distribution;
    use proptest::prelude::*;

    struct ParamCount(usize);
    impl ModuleVisitor for ParamCount {
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
            self.0 += 1;
        }
    }

    #[test]
    fn names_round_trip() {
        for k in UpsamplerKind::ALL {
            assert_eq!(k.name().parse::<UpsamplerKind>().unwrap(), k);
        }
        let e = "lanczos".parse::<UpsamplerKind>().unwrap_err();
        assert!(e.to_string().contains("lanczos"), "{e}");
        let cfg = UpsamplerConfig::for_kind(UpsamplerKind::PixelShuffle, 3, 4, 2).unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"kind\":\"pixelshuffle\""), "{json}");
        let back: UpsamplerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.kind(), UpsamplerKind::PixelShuffle);
        assert!(UpsamplerConfig::for_kind(UpsamplerKind::Carafe, 3, 4, 2).is_err());
    }

    /// Every kind's forward gives the size and channels its config predicts, and every
    /// learnable kind gets a gradient on every parameter and on the input (Flex + Autodiff).
    #[test]
    fn every_kind_runs_and_trains() {
        let device = Device::flex().autodiff();
        device.seed(7);
        for kind in UpsamplerKind::ALL {
            for factor in [2, 3] {
                let cfg = UpsamplerConfig::for_kind(kind, 4, 4, factor).unwrap();
                let m = cfg.init(&device).unwrap();
                let x = Tensor::<4>::random([2, 4, 5, 3], Distribution::Normal(0.0, 1.0), &device)
                    .require_grad();
                let y = m.forward(x.clone());
                let [ho, wo] = cfg.output_size([5, 3]).unwrap();
                assert_eq!(
                    y.dims(),
                    [2, cfg.output_channels(4), ho, wo],
                    "{kind} ×{factor}"
                );
                assert_eq!(m.output_size([5, 3]), Some([ho, wo]));
                assert_eq!([ho, wo], [5 * factor, 3 * factor], "{kind}");
                let grads = (y.clone() * y).sum().backward();
                let gx = x.grad(&grads).expect("input gradient");
                assert!(gx.abs().sum().into_scalar::<f32>() > 0.0, "{kind}");
                assert_eq!(m.num_params() > 0, kind.learnable(), "{kind}");
                // Every parameter tensor received a gradient.
                let mut tensors = ParamCount(0);
                m.visit(&mut tensors);
                let grads = burn::optim::GradientsParams::from_grads(grads, &m);
                assert_eq!(grads.len(), tensors.0, "{kind} ×{factor}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Output sizes from the configs equal what the modules produce.
        #[test]
        fn config_sizes_match_forward(
            kind_i in 0usize..7, factor in 1usize..4, h in 1usize..6, w in 1usize..6,
        ) {
            let kind = UpsamplerKind::ALL[kind_i];
            let device = Device::flex();
            let cfg = UpsamplerConfig::for_kind(kind, 2, 2, factor).unwrap();
            let m = cfg.init(&device).unwrap();
            let y = m.forward(Tensor::zeros([1, 2, h, w], &device));
            let [ho, wo] = cfg.output_size([h, w]).unwrap();
            prop_assert_eq!(y.dims(), [1, cfg.output_channels(2), ho, wo]);
            prop_assert_eq!([ho, wo], [h * factor, w * factor]);
        }
    }
}
