//! Meta-Upscale (Hu et al., "Meta-SR", CVPR 2019): upsampling by any real factor r with one set
//! of weights.
//!
//! The output of an (H, W) input is (⌊rH⌋, ⌊rW⌋). Output pixel (i, j) reads the source pixel
//! (⌊i/r⌋, ⌊j/r⌋); a small weight-prediction network φ (Linear 3 → hidden, ReLU, Linear
//! hidden → C_out·C_in·k²) maps v_ij = (i/r − ⌊i/r⌋, j/r − ⌊j/r⌋, 1/r) to a filter
//! W_ij (C_out × C_in × k × k), applied to the k×k patch (zero padded) around the source pixel:
//! out[o, i, j] = Σ_{c,a,b} W_ij[o, c, a, b] · X[c, ⌊i/r⌋ + a − k/2, ⌊j/r⌋ + b − k/2].
//! The fractions are computed in f64 (as Python floats), then stored as f32.

use super::error::UpsampleError;
use super::interpolate::select_hw;
use super::patches::neighbourhoods;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

/// Configuration of [`MetaUpscale`].
#[derive(Config, Debug)]
pub struct MetaUpscaleConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Patch (filter) size k, odd.
    #[config(default = 3)]
    pub kernel: usize,
    /// Hidden units of the weight-prediction network (the paper: 256).
    #[config(default = 256)]
    pub hidden: usize,
    /// The factor [`MetaUpscale::forward`] uses; any other can be passed to
    /// [`MetaUpscale::forward_scale`].
    #[config(default = 2.0)]
    pub scale: f64,
}

/// Output (⌊rH⌋, ⌊rW⌋); `None` for a bad factor or an empty output.
pub fn meta_output_size(input: [usize; 2], r: f64) -> Option<[usize; 2]> {
    if !(r.is_finite() && r > 0.0) {
        return None;
    }
    let mut out = [0; 2];
    for a in 0..2 {
        let o = (input[a] as f64 * r).floor();
        if !(1.0..=(u32::MAX as f64)).contains(&o) {
            return None;
        }
        out[a] = o as usize;
    }
    Some(out)
}

/// Source index ⌊i/r⌋ (clamped into the input) and fraction i/r − ⌊i/r⌋ of each output index.
pub fn meta_positions(input: usize, output: usize, r: f64) -> (Vec<usize>, Vec<f32>) {
    (0..output)
        .map(|i| {
            let p = i as f64 / r;
            let f = p.floor();
            (((f as usize).min(input - 1)), (p - f) as f32)
        })
        .unzip()
}

impl MetaUpscaleConfig {
    /// Checks the configuration and builds the module.
    /// Checks the configuration: positive channels and hidden width, an odd kernel, a finite
    /// scale above 0.
    pub fn check(&self) -> Result<(), UpsampleError> {
        let bad = |field, got: String, expected: &str| {
            Err(UpsampleError::field("meta", field, got, expected))
        };
        if self.in_channels == 0 || self.out_channels == 0 {
            return bad(
                "in_channels/out_channels",
                format!("{}/{}", self.in_channels, self.out_channels),
                ">= 1",
            );
        }
        if self.kernel.is_multiple_of(2) {
            return bad("kernel", self.kernel.to_string(), "an odd size");
        }
        if self.hidden == 0 {
            return bad("hidden", "0".into(), ">= 1");
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return bad("scale", self.scale.to_string(), "a finite factor > 0");
        }
        Ok(())
    }

    /// Trainable parameters of the module [`MetaUpscaleConfig::init`] builds, without building
    /// it: the two linear layers of the weight prediction, with biases.
    pub fn param_count(&self) -> Result<u64, UpsampleError> {
        self.check()?;
        let h = self.hidden as u64;
        let filter = (self.out_channels * self.in_channels * self.kernel * self.kernel) as u64;
        Ok(3 * h + h + h * filter + filter)
    }

    /// Checks the configuration and builds the module.
    pub fn init(&self, device: &Device) -> Result<MetaUpscale, UpsampleError> {
        self.check()?;
        let filter = self.out_channels * self.in_channels * self.kernel * self.kernel;
        Ok(MetaUpscale {
            fc1: LinearConfig::new(3, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, filter).init(device),
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel: self.kernel,
            scale: self.scale,
        })
    }

    /// Output size at the configured factor.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        meta_output_size(input, self.scale)
    }
}

/// The Meta-Upscale module.
#[derive(Module, Debug)]
pub struct MetaUpscale {
    /// Weight prediction, first layer (3 → hidden).
    pub fc1: Linear,
    /// Weight prediction, second layer (hidden → C_out·C_in·k²).
    pub fc2: Linear,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Patch size k.
    pub kernel: usize,
    /// The factor of [`MetaUpscale::forward`].
    pub scale: f64,
}

impl MetaUpscale {
    /// Output size at the configured factor.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        meta_output_size(input, self.scale)
    }

    /// Upsamples by the configured factor.
    ///
    /// # Panics
    /// As [`MetaUpscale::forward_scale`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_scale(x, self.scale)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The predicted filters W_ij for rows with fractions `frac_h` and columns with fractions
    /// `frac_w` at factor `r`: (rows·columns, C_out, C_in·k²), row-major over (i, j), each
    /// filter's columns in (c, a, b) order.
    pub fn filters(&self, frac_h: &[f32], frac_w: &[f32], r: f64, device: &Device) -> Tensor<3> {
        let p = frac_h.len() * frac_w.len();
        let mut v = Vec::with_capacity(p * 3);
        for fh in frac_h {
            for fw in frac_w {
                v.extend_from_slice(&[*fh, *fw, (1.0 / r) as f32]);
            }
        }
        let v = Tensor::<2>::from_data(TensorData::new(v, [p, 3]), device);
        let weights = self.fc2.forward(relu(self.fc1.forward(v))); // (P, C_out·C_in·k²)
        let kk = self.in_channels * self.kernel * self.kernel;
        weights.reshape([p, self.out_channels, kk])
    }

    /// Upsamples (N, C_in, H, W) to (N, C_out, ⌊rH⌋, ⌊rW⌋); an error for a wrong channel count,
    /// an empty input, a bad factor or an empty output.
    pub fn forward_scale(&self, x: Tensor<4>, r: f64) -> Result<Tensor<4>, UpsampleError> {
        let [n, c, h, w] = x.dims();
        let size = (c == self.in_channels && h > 0 && w > 0)
            .then(|| meta_output_size([h, w], r))
            .flatten();
        let Some([ho, wo]) = size else {
            return Err(UpsampleError::BadInput {
                upsampler: "meta",
                got: [n, c, h, w],
                expected: format!(
                    "{} channels and a non-empty ⌊{r}·H⌋ × ⌊{r}·W⌋ output",
                    self.in_channels
                ),
            });
        };
        let kk = c * self.kernel * self.kernel;
        let (src_h, frac_h) = meta_positions(h, ho, r);
        let (src_w, frac_w) = meta_positions(w, wo, r);
        let p = ho * wo;
        let weights = self.filters(&frac_h, &frac_w, r, &x.device());
        let patches = select_hw(neighbourhoods(x, self.kernel), &src_h, &src_w); // (N, C·k², H′, W′)
        let patches = patches.reshape([n, kk, p]).permute([2, 1, 0]); // (P, C·k², N)
        let out = weights.matmul(patches); // (P, C_out, N)
        Ok(out
            .permute([2, 1, 0])
            .reshape([n, self.out_channels, ho, wo]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_by_hand() {
        // r = 1.5 on 2 pixels → 3 outputs: 0/1.5 = 0, 1/1.5 = 0.667, 2/1.5 = 1.333.
        let (src, frac) = meta_positions(2, 3, 1.5);
        assert_eq!(src, vec![0, 0, 1]);
        for (a, b) in frac.iter().zip([0.0, 2.0 / 3.0, 1.0 / 3.0]) {
            assert!((a - b).abs() < 1e-6, "{frac:?}");
        }
        assert_eq!(meta_output_size([4, 5], 2.7), Some([10, 13]));
        assert_eq!(meta_output_size([4, 5], 0.1), None);
        assert_eq!(meta_output_size([4, 5], f64::INFINITY), None);
    }

    #[test]
    fn wrong_input_is_an_error() {
        let device = Device::flex();
        let m = MetaUpscaleConfig::new(2, 3)
            .with_hidden(4)
            .init(&device)
            .unwrap();
        let e = m
            .forward_scale(Tensor::zeros([1, 3, 4, 4], &device), 2.0)
            .unwrap_err();
        assert!(e.to_string().contains("2 channels"), "{e}");
        assert!(m
            .forward_scale(Tensor::zeros([1, 2, 4, 4], &device), 0.1)
            .is_err());
        assert!(MetaUpscaleConfig::new(2, 3)
            .with_kernel(2)
            .init(&device)
            .is_err());
        assert!(MetaUpscaleConfig::new(2, 3)
            .with_scale(-1.0)
            .init(&device)
            .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn output_shape_is_floor_of_scaled(h in 1usize..7, w in 1usize..7, r in 1.0f64..3.5) {
            let device = Device::flex();
            let m = MetaUpscaleConfig::new(1, 2).with_hidden(2).with_kernel(1).init(&device).unwrap();
            let y = m.forward_scale(Tensor::zeros([1, 1, h, w], &device), r).unwrap();
            let [ho, wo] = meta_output_size([h, w], r).unwrap();
            prop_assert_eq!(y.dims(), [1, 2, ho, wo]);
            prop_assert!(ho as f64 <= h as f64 * r && (h as f64 * r) < ho as f64 + 1.0);
            // Every source index is inside the input and non-decreasing.
            let (src, frac) = meta_positions(h, ho, r);
            prop_assert!(src.windows(2).all(|p| p[0] <= p[1]) && src[ho - 1] < h);
            prop_assert!(frac.iter().all(|f| (0.0..1.0).contains(f)));
        }
    }
}
