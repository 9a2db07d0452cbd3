//! CARAFE: Content-Aware ReAssembly of FEatures (Wang et al., ICCV 2019).
//!
//! For an input X (N, C, H, W) and factor σ:
//! 1. channel compressor: a 1×1 convolution to C_m channels;
//! 2. content encoder: a k_enc×k_enc convolution (padding k_enc/2) to σ²·k_up² channels;
//! 3. pixel shuffle by σ to (N, k_up², σH, σW), then a softmax over the k_up² channels: one
//!    normalised k_up×k_up kernel W_l′ per output location l′;
//! 4. reassembly: X′[l′ = (i, j)] = Σ_{a,b} W_l′[a·k_up + b] · X[⌊i/σ⌋ + a − r, ⌊j/σ⌋ + b − r],
//!    r = ⌊k_up/2⌋, X zero outside the image.
//!
//! All of it is built from convolutions, reshapes, pad/slice, `select` and a softmax, so it
//! trains on any Burn backend with autodiff.

use super::error::UpsampleError;
use super::interpolate::select_hw;
use super::patches::neighbourhoods;
use super::pixel_shuffle::pixel_shuffle;
use crate::geometry::same_padding;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

/// Configuration of [`Carafe`]; defaults are the paper's (σ = 2, C_m = 64, k_enc = 3,
/// k_up = 5).
#[derive(Config, Debug)]
pub struct CarafeConfig {
    /// Channels of the input (and of the output).
    pub channels: usize,
    /// Integer upsampling factor σ.
    #[config(default = 2)]
    pub factor: usize,
    /// Channels after the compressor, C_m.
    #[config(default = 64)]
    pub compressed_channels: usize,
    /// Content-encoder kernel (odd).
    #[config(default = 3)]
    pub encoder_kernel: usize,
    /// Reassembly kernel k_up (odd).
    #[config(default = 5)]
    pub up_kernel: usize,
}

impl CarafeConfig {
    /// Checks the configuration and builds the module (Burn's default convolution init).
    /// Checks the configuration: positive sizes, odd kernels.
    pub fn check(&self) -> Result<(), UpsampleError> {
        let bad = |field, got: usize, expected: &str| {
            Err(UpsampleError::field("carafe", field, got, expected))
        };
        if self.channels == 0 {
            return bad("channels", 0, ">= 1");
        }
        if self.factor == 0 {
            return bad("factor", 0, ">= 1");
        }
        if self.compressed_channels == 0 {
            return bad("compressed_channels", 0, ">= 1");
        }
        if self.encoder_kernel.is_multiple_of(2) {
            return bad("encoder_kernel", self.encoder_kernel, "an odd size");
        }
        if self.up_kernel.is_multiple_of(2) {
            return bad("up_kernel", self.up_kernel, "an odd size");
        }
        Ok(())
    }

    /// Trainable parameters of the module [`CarafeConfig::init`] builds, without building it.
    pub fn param_count(&self) -> Result<u64, UpsampleError> {
        self.check()?;
        let (c, m) = (self.channels as u64, self.compressed_channels as u64);
        let s2k2 = (self.factor * self.factor * self.up_kernel * self.up_kernel) as u64;
        let e2 = (self.encoder_kernel * self.encoder_kernel) as u64;
        // The 1×1 compressor and the encoder, with biases.
        Ok(c * m + m + m * s2k2 * e2 + s2k2)
    }

    /// Checks the configuration and builds the module.
    pub fn init(&self, device: &Device) -> Result<Carafe, UpsampleError> {
        self.check()?;
        let s2k2 = self.factor * self.factor * self.up_kernel * self.up_kernel;
        let p = same_padding(self.encoder_kernel, 1);
        Ok(Carafe {
            compressor: Conv2dConfig::new([self.channels, self.compressed_channels], [1, 1])
                .init(device),
            encoder: Conv2dConfig::new([self.compressed_channels, s2k2], [self.encoder_kernel; 2])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(device),
            factor: self.factor,
            up_kernel: self.up_kernel,
        })
    }

    /// Output (σH, σW) for an input (H, W).
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        scaled(input, self.factor)
    }
}

fn scaled(input: [usize; 2], f: usize) -> Option<[usize; 2]> {
    let h = input[0].checked_mul(f).filter(|&v| v > 0)?;
    let w = input[1].checked_mul(f).filter(|&v| v > 0)?;
    Some([h, w])
}

/// The CARAFE upsampler; channels are unchanged.
#[derive(Module, Debug)]
pub struct Carafe {
    /// Channel compressor, 1×1, C → C_m.
    pub compressor: Conv2d,
    /// Content encoder, k_enc×k_enc, C_m → σ²·k_up².
    pub encoder: Conv2d,
    /// Upsampling factor σ.
    pub factor: usize,
    /// Reassembly kernel k_up.
    pub up_kernel: usize,
}

impl Carafe {
    /// Output (σH, σW) for an input (H, W).
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        scaled(input, self.factor)
    }

    /// The normalised reassembly kernels, (N, k_up², σH, σW) (steps 1–3).
    pub fn kernels(&self, x: Tensor<4>) -> Tensor<4> {
        let m = self.encoder.forward(self.compressor.forward(x));
        let m = pixel_shuffle(m, self.factor).unwrap_or_else(|e| panic!("{e}"));
        softmax(m, 1)
    }

    /// Upsamples (N, C, H, W) to (N, C, σH, σW).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let (s, k) = (self.factor, self.up_kernel);
        let kernels = self.kernels(x.clone()); // (N, k², σH, σW)
                                               // Neighbourhoods at every source pixel, then repeated onto the σ×σ outputs it feeds.
        let idx_h: Vec<usize> = (0..h * s).map(|i| i / s).collect();
        let idx_w: Vec<usize> = (0..w * s).map(|j| j / s).collect();
        let patches = select_hw(neighbourhoods(x, k), &idx_h, &idx_w); // (N, C·k², σH, σW)
        let patches = patches.reshape([n, c, k * k, h * s, w * s]);
        let weighted = patches * kernels.unsqueeze_dim::<5>(1);
        weighted.sum_dim(2).reshape([n, c, h * s, w * s])
    }
}
