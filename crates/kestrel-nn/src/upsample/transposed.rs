//! Transposed convolution ("deconvolution") as a learnable upsampler, with FCN's bilinear
//! initialisation (Long, Shelhamer & Darrell, CVPR 2015) as an option.

use super::error::UpsampleError;
use crate::geometry::conv_transpose_out_len;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor, TensorData};

/// Configuration of [`Transposed`]. Per-axis values are (height, width); the weight layout is
/// PyTorch's, (in, out / groups, kH, kW).
#[derive(Config, Debug)]
pub struct TransposedConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size.
    #[config(default = "[4, 4]")]
    pub kernel: [usize; 2],
    /// Stride (the upsampling factor).
    #[config(default = "[2, 2]")]
    pub stride: [usize; 2],
    /// Padding removed from each side of the full output.
    #[config(default = "[1, 1]")]
    pub padding: [usize; 2],
    /// Extra rows/columns added on the bottom/right; below max(stride, dilation) as in PyTorch.
    #[config(default = "[0, 0]")]
    pub output_padding: [usize; 2],
    /// Groups (in and out channels must both be multiples).
    #[config(default = 1)]
    pub groups: usize,
    /// Dilation of the kernel.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Whether to add a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initialise the kernel to bilinear upsampling per channel and the bias to 0 (FCN). Needs
    /// in = out channels and groups 1 (a diagonal kernel) or groups = channels (depthwise).
    #[config(default = false)]
    pub bilinear_init: bool,
}

/// FCN's bilinear kernel of size k along one axis, as in the paper's `upsample_filt`:
/// f = ⌈k/2⌉, centre c = f − 1 (k odd) or f − ½ (k even), w(i) = 1 − |i − c| / f.
pub fn bilinear_kernel_1d(k: usize) -> Vec<f32> {
    let f = k.div_ceil(2) as f64;
    let c = if k % 2 == 1 { f - 1.0 } else { f - 0.5 };
    (0..k)
        .map(|i| (1.0 - (i as f64 - c).abs() / f) as f32)
        .collect()
}

impl TransposedConfig {
    /// Trainable parameters of the module [`TransposedConfig::init`] builds, without building
    /// it: `in × out/groups × kh × kw` weights and, with a bias, `out` more.
    pub fn param_count(&self) -> Result<u64, UpsampleError> {
        self.check()?;
        let [kh, kw] = self.kernel;
        let weights = (self.in_channels * (self.out_channels / self.groups) * kh * kw) as u64;
        Ok(weights
            + if self.bias {
                self.out_channels as u64
            } else {
                0
            })
    }

    fn check(&self) -> Result<(), UpsampleError> {
        let bad = |field, got: String, expected: &str| {
            Err(UpsampleError::field("transposed", field, got, expected))
        };
        if self.in_channels == 0 || self.out_channels == 0 {
            return bad(
                "in_channels/out_channels",
                format!("{}/{}", self.in_channels, self.out_channels),
                ">= 1",
            );
        }
        if self.groups == 0
            || !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return bad(
                "groups",
                self.groups.to_string(),
                "a divisor of in_channels and out_channels",
            );
        }
        for (field, v) in [
            ("kernel", self.kernel),
            ("stride", self.stride),
            ("dilation", self.dilation),
        ] {
            if v.contains(&0) {
                return bad(field, format!("{v:?}"), "values >= 1");
            }
        }
        for a in 0..2 {
            if self.output_padding[a] >= self.stride[a].max(self.dilation[a]) {
                return bad(
                    "output_padding",
                    format!("{:?}", self.output_padding),
                    "below max(stride, dilation) on each axis",
                );
            }
        }
        if self.bilinear_init
            && (self.in_channels != self.out_channels
                || (self.groups != 1 && self.groups != self.in_channels))
        {
            return bad(
                "bilinear_init",
                format!(
                    "true with {}→{} channels, groups {}",
                    self.in_channels, self.out_channels, self.groups
                ),
                "in_channels = out_channels and groups 1 or = channels",
            );
        }
        Ok(())
    }

    /// Checks the configuration and builds the module (PyTorch's default Kaiming-uniform
    /// weights, or the bilinear kernel).
    pub fn init(&self, device: &Device) -> Result<Transposed, UpsampleError> {
        self.check()?;
        let mut conv =
            ConvTranspose2dConfig::new([self.in_channels, self.out_channels], self.kernel)
                .with_stride(self.stride)
                .with_padding(self.padding)
                .with_padding_out(self.output_padding)
                .with_groups(self.groups)
                .with_dilation(self.dilation)
                .with_bias(self.bias);
        if self.bilinear_init {
            conv = conv.with_initializer(Initializer::Zeros);
        }
        let mut conv = conv.init(device);
        if self.bilinear_init {
            let [kh, kw] = self.kernel;
            let (fh, fw) = (bilinear_kernel_1d(kh), bilinear_kernel_1d(kw));
            let per_group_out = self.out_channels / self.groups;
            let c = self.in_channels;
            let mut w = vec![0.0f32; c * per_group_out * kh * kw];
            for ch in 0..c {
                // Groups 1: weight[ch, ch]; depthwise: weight[ch, 0].
                let o = if self.groups == 1 { ch } else { 0 };
                let base = (ch * per_group_out + o) * kh * kw;
                for i in 0..kh {
                    for j in 0..kw {
                        w[base + i * kw + j] = fh[i] * fw[j];
                    }
                }
            }
            let shape = [c, per_group_out, kh, kw];
            conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, shape), device));
        }
        Ok(Transposed { conv })
    }

    /// Output (H′, W′) for an input (H, W): (W − 1)·S + F_eff − 2P + output_padding per axis.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        transposed_size(
            input,
            self.kernel,
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
        )
    }
}

/// Output (H′, W′) of a transposed convolution, axis by axis.
fn transposed_size(
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    output_padding: [usize; 2],
    dilation: [usize; 2],
) -> Option<[usize; 2]> {
    let axis = |a: usize| {
        conv_transpose_out_len(
            input[a],
            kernel[a],
            stride[a],
            padding[a],
            dilation[a],
            output_padding[a],
        )
    };
    Some([axis(0)?, axis(1)?])
}

/// A transposed convolution (Burn's [`ConvTranspose2d`], whose semantics and weight layout are
/// PyTorch's `ConvTranspose2d`).
#[derive(Module, Debug)]
pub struct Transposed {
    /// The convolution.
    pub conv: ConvTranspose2d,
}

impl Transposed {
    /// Output (H′, W′) for an input (H, W); `None` when it would be empty.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let c = &self.conv;
        transposed_size(
            input,
            c.kernel_size,
            c.stride,
            c.padding,
            c.padding_out,
            c.dilation,
        )
    }

    /// Upsamples an (N, C_in, H, W) tensor to (N, C_out, H′, W′).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upsample::interpolate::{InterpMode, InterpolateConfig};
    use crate::upsample::resize::ResizeTo;
    use burn::tensor::Distribution;

    #[test]
    fn fcn_kernel_values() {
        // Long et al.'s filter for ×2 (k = 4): [0.25, 0.75, 0.75, 0.25]; k = 6: f = 3, c = 2.5 →
        // [1/6, 1/2, 5/6, 5/6, 1/2, 1/6]; k = 3: f = 2, c = 1 → [½, 1, ½].
        assert_eq!(bilinear_kernel_1d(4), vec![0.25, 0.75, 0.75, 0.25]);
        let k6 = bilinear_kernel_1d(6);
        for (a, b) in k6
            .iter()
            .zip([1.0 / 6.0, 0.5, 5.0 / 6.0, 5.0 / 6.0, 0.5, 1.0 / 6.0])
        {
            assert!((a - b).abs() < 1e-6, "{k6:?}");
        }
        assert_eq!(bilinear_kernel_1d(3), vec![0.5, 1.0, 0.5]);
    }

    /// FCN's claim: the bilinear-initialised transposed convolution (k = 2f, stride f, padding
    /// f/2) *is* bilinear upsampling by f — away from the border, where it sees zero padding
    /// instead of PyTorch's clamped source index. Compared with the fixture-checked
    /// bilinear [`Interpolate`](crate::upsample::Interpolate) module.
    #[test]
    fn bilinear_init_equals_bilinear_upsampling_inside() {
        let device = Device::flex();
        device.seed(3);
        for groups in [1, 3] {
            let t = TransposedConfig::new(3, 3)
                .with_groups(groups)
                .with_bilinear_init(true)
                .init(&device)
                .unwrap();
            let x = Tensor::<4>::random([2, 3, 5, 6], Distribution::Normal(0.0, 1.0), &device);
            let a = t.forward(x.clone());
            assert_eq!(a.dims(), [2, 3, 10, 12]);
            let b = InterpolateConfig::new(InterpMode::Bilinear)
                .with_resize(ResizeTo::Scale([2.0, 2.0]))
                .init()
                .unwrap()
                .forward(x);
            let a = a.slice([0..2, 0..3, 1..9, 1..11]);
            let b = b.slice([0..2, 0..3, 1..9, 1..11]);
            let diff: f32 = (a - b).abs().max().into_scalar();
            assert!(diff < 1e-5, "groups {groups}: max diff {diff}");
        }
    }

    #[test]
    fn bad_configs_are_errors() {
        let device = Device::flex();
        let e = TransposedConfig::new(4, 6)
            .with_groups(4)
            .init(&device)
            .unwrap_err();
        assert!(e.to_string().contains("groups"), "{e}");
        let e = TransposedConfig::new(4, 4)
            .with_output_padding([2, 0])
            .init(&device)
            .unwrap_err();
        assert!(e.to_string().contains("output_padding"), "{e}");
        let e = TransposedConfig::new(4, 2)
            .with_bilinear_init(true)
            .init(&device)
            .unwrap_err();
        assert!(e.to_string().contains("bilinear_init"), "{e}");
        assert!(TransposedConfig::new(4, 4)
            .with_kernel([0, 3])
            .init(&device)
            .is_err());
    }
}
