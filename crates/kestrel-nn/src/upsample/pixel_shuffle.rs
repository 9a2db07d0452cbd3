//! Sub-pixel rearrangement (Shi et al., CVPR 2016): PixelShuffle moves r² channels into an
//! r×r block of pixels, PixelUnshuffle is its inverse. With a preceding convolution to
//! C_out·r² channels, PixelShuffle is the paper's "efficient sub-pixel convolution" upsampler.
//! Channel order is PyTorch's: input channel c·r² + dy·r + dx goes to output channel c at
//! (r·y + dy, r·x + dx).

use super::error::UpsampleError;
use crate::geometry::{conv_out_len, same_padding};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::Device;
use burn::tensor::Tensor;

/// (N, C·r², H, W) → (N, C, H·r, W·r). Checks the shape instead of panicking.
pub fn pixel_shuffle(x: Tensor<4>, r: usize) -> Result<Tensor<4>, UpsampleError> {
    let [n, c, h, w] = x.dims();
    if r == 0 || c % (r * r) != 0 {
        return Err(UpsampleError::BadInput {
            upsampler: "pixelshuffle",
            got: [n, c, h, w],
            expected: format!("channels divisible by factor² = {}", r * r),
        });
    }
    let co = c / (r * r);
    Ok(x.reshape([n, co, r, r, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([n, co, h * r, w * r]))
}

/// (N, C, H·r, W·r) → (N, C·r², H, W), the inverse of [`pixel_shuffle`].
pub fn pixel_unshuffle(x: Tensor<4>, r: usize) -> Result<Tensor<4>, UpsampleError> {
    let [n, c, h, w] = x.dims();
    if r == 0 || h % r != 0 || w % r != 0 {
        return Err(UpsampleError::BadInput {
            upsampler: "pixelunshuffle",
            got: [n, c, h, w],
            expected: format!("height and width divisible by factor {r}"),
        });
    }
    let (ho, wo) = (h / r, w / r);
    Ok(x.reshape([n, c, ho, r, wo, r])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([n, c * r * r, ho, wo]))
}

/// Configuration of [`PixelShuffle`].
#[derive(Config, Debug)]
pub struct PixelShuffleConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Upscale factor r.
    #[config(default = 2)]
    pub factor: usize,
    /// With `Some(c_out)`, a k×k convolution (same padding, bias) to c_out·r² channels comes
    /// first (sub-pixel convolution) and the output has c_out channels; with `None` the input
    /// channels must be a multiple of r² and the output has in_channels / r².
    #[config(default = "None")]
    pub conv_out_channels: Option<usize>,
    /// Kernel of the preceding convolution (odd).
    #[config(default = 3)]
    pub kernel: usize,
}

impl PixelShuffleConfig {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        match self.conv_out_channels {
            Some(c) => c,
            None => self.in_channels / (self.factor * self.factor).max(1),
        }
    }

    /// Output (H·r, W·r) for an input (H, W).
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        shuffled_size(
            input,
            self.factor,
            self.conv_out_channels.map(|_| self.kernel),
        )
    }

    /// Checks the configuration and builds the module.
    /// Checks the configuration: a factor and channels of at least 1; with a convolution an odd
    /// kernel, without one input channels divisible by factor².
    pub fn check(&self) -> Result<(), UpsampleError> {
        let bad = |field, got: String, expected: &str| {
            Err(UpsampleError::field("pixelshuffle", field, got, expected))
        };
        if self.factor == 0 {
            return bad("factor", "0".into(), ">= 1");
        }
        if self.in_channels == 0 {
            return bad("in_channels", "0".into(), ">= 1");
        }
        let r2 = self.factor * self.factor;
        match self.conv_out_channels {
            Some(0) => bad("conv_out_channels", "0".into(), ">= 1"),
            Some(_) if self.kernel.is_multiple_of(2) => {
                bad("kernel", self.kernel.to_string(), "an odd size")
            }
            None if !self.in_channels.is_multiple_of(r2) => bad(
                "in_channels",
                self.in_channels.to_string(),
                &format!("a multiple of factor² = {r2} (or set conv_out_channels)"),
            ),
            _ => Ok(()),
        }
    }

    /// Trainable parameters of the module [`PixelShuffleConfig::init`] builds, without building
    /// it: the sub-pixel convolution's, with its bias (none without one).
    pub fn param_count(&self) -> Result<u64, UpsampleError> {
        self.check()?;
        Ok(self.conv_out_channels.map_or(0, |c| {
            let out = (c * self.factor * self.factor) as u64;
            self.in_channels as u64 * out * (self.kernel * self.kernel) as u64 + out
        }))
    }

    /// Checks the configuration and builds the module.
    pub fn init(&self, device: &Device) -> Result<PixelShuffle, UpsampleError> {
        self.check()?;
        let r2 = self.factor * self.factor;
        let conv = self.conv_out_channels.map(|c| {
            let p = same_padding(self.kernel, 1);
            Conv2dConfig::new([self.in_channels, c * r2], [self.kernel; 2])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(device)
        });
        Ok(PixelShuffle {
            conv,
            factor: self.factor,
        })
    }
}

fn shuffled_size(input: [usize; 2], r: usize, kernel: Option<usize>) -> Option<[usize; 2]> {
    let mut out = [0; 2];
    for a in 0..2 {
        let mut s = input[a];
        if let Some(k) = kernel {
            s = conv_out_len(s, k, 1, same_padding(k, 1), 1)?;
        }
        out[a] = s.checked_mul(r).filter(|&v| v > 0)?;
    }
    Some(out)
}

/// Optional convolution, then [`pixel_shuffle`] by the factor.
#[derive(Module, Debug)]
pub struct PixelShuffle {
    /// The sub-pixel convolution, if any.
    pub conv: Option<Conv2d>,
    /// Upscale factor r.
    pub factor: usize,
}

impl PixelShuffle {
    /// Output (H·r, W·r) for an input (H, W).
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let k = self.conv.as_ref().map(|c| c.kernel_size[0]);
        shuffled_size(input, self.factor, k)
    }

    /// Upsamples (N, C, H, W) to (N, C_out, H·r, W·r).
    ///
    /// # Panics
    /// Without a convolution, when C is not a multiple of r² (checked at init for the
    /// configured channels).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.conv {
            Some(conv) => conv.forward(x),
            None => x,
        };
        pixel_shuffle(x, self.factor).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Configuration of [`PixelUnshuffle`].
#[derive(Config, Debug)]
pub struct PixelUnshuffleConfig {
    /// Downscale factor r.
    #[config(default = 2)]
    pub factor: usize,
}

impl PixelUnshuffleConfig {
    /// Checks the factor and builds the module.
    pub fn init(&self) -> Result<PixelUnshuffle, UpsampleError> {
        if self.factor == 0 {
            return Err(UpsampleError::field("pixelunshuffle", "factor", 0, ">= 1"));
        }
        Ok(PixelUnshuffle {
            factor: self.factor,
        })
    }
}

/// [`pixel_unshuffle`] as a module (space-to-depth).
#[derive(Module, Debug)]
pub struct PixelUnshuffle {
    /// Downscale factor r.
    pub factor: usize,
}

impl PixelUnshuffle {
    /// (N, C, H·r, W·r) → (N, C·r², H, W).
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<4>, UpsampleError> {
        pixel_unshuffle(x, self.factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn shuffle_places_channels_by_definition() {
        // Brute force of the definition: out[c, r·y + dy, r·x + dx] = in[c·r² + dy·r + dx, y, x].
        let (c, r, h, w) = (2, 3, 2, 4);
        let device = Device::flex();
        let v: Vec<f32> = (0..c * r * r * h * w).map(|i| i as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v.clone(), [1, c * r * r, h, w]), &device);
        let y = pixel_shuffle(x.clone(), r).unwrap();
        assert_eq!(y.dims(), [1, c, h * r, w * r]);
        let yv: Vec<f32> = y.clone().into_data().try_to_vec().unwrap();
        for ch in 0..c {
            for oy in 0..h * r {
                for ox in 0..w * r {
                    let ic = ch * r * r + (oy % r) * r + ox % r;
                    let want = v[(ic * h + oy / r) * w + ox / r];
                    assert_eq!(yv[(ch * h * r + oy) * w * r + ox], want);
                }
            }
        }
        let back = pixel_unshuffle(y, r).unwrap();
        let bv: Vec<f32> = back.into_data().try_to_vec().unwrap();
        assert_eq!(bv, v);
        assert!(pixel_shuffle(x.clone(), 2).is_err());
        assert!(pixel_unshuffle(x, 3).is_err());
    }

    #[test]
    fn sub_pixel_conv_shapes_and_errors() {
        let device = Device::flex();
        let cfg = PixelShuffleConfig::new(3).with_conv_out_channels(Some(5));
        let m = cfg.init(&device).unwrap();
        let y = m.forward(Tensor::zeros([2, 3, 4, 7], &device));
        assert_eq!(y.dims(), [2, 5, 8, 14]);
        assert_eq!(cfg.output_size([4, 7]), Some([8, 14]));
        assert_eq!(m.output_size([4, 7]), Some([8, 14]));
        assert_eq!(cfg.out_channels(), 5);
        let e = PixelShuffleConfig::new(6).init(&device).unwrap_err();
        assert!(e.to_string().contains("in_channels"), "{e}");
        assert!(PixelShuffleConfig::new(8).init(&device).is_ok());
        assert!(PixelShuffleConfig::new(3)
            .with_conv_out_channels(Some(2))
            .with_kernel(4)
            .init(&device)
            .is_err());
    }
}
