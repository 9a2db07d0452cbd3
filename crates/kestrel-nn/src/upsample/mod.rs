//! Upsampling layers: fixed resamplers with PyTorch's semantics (one [`Interpolate`] layer,
//! nearest, bilinear or bicubic),
//! learnable ones (transposed convolution, sub-pixel convolution, CARAFE, Meta-Upscale), and an
//! [`Upsampler`] enum naming them for configuration and the CLI.
//!
//! Every upsampler takes (N, C, H, W) tensors, trains on Flex + Autodiff, and has an
//! `output_size` helper; configs check their fields and return [`UpsampleError`] instead of
//! panicking.

pub mod carafe;
pub mod error;
pub mod interpolate;
pub mod meta;
pub mod patches;
pub mod pixel_shuffle;
pub mod resize;
pub mod transposed;
pub mod upsampler;

#[cfg(test)]
mod torch_fixtures;

pub use carafe::{Carafe, CarafeConfig};
pub use error::UpsampleError;
pub use interpolate::{InterpMode, Interpolate, InterpolateConfig};
pub use meta::{MetaUpscale, MetaUpscaleConfig};
pub use pixel_shuffle::{
    pixel_shuffle, pixel_unshuffle, PixelShuffle, PixelShuffleConfig, PixelUnshuffle,
    PixelUnshuffleConfig,
};
pub use resize::ResizeTo;
pub use transposed::{Transposed, TransposedConfig};
pub use upsampler::{Upsampler, UpsamplerConfig, UpsamplerKind};
