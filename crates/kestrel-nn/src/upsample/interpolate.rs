//! Fixed-kernel resampling with PyTorch's semantics (`F.interpolate`): one [`Interpolate`]
//! layer whose [`InterpMode`] is nearest (`mode="nearest"` indexing), bilinear or bicubic
//! (Keys' kernel with a = −0.75, taps clamped at the border; like PyTorch's, it can overshoot
//! the input's range), `align_corners` false by default. Parameter-free; channels are unchanged.
//!
//! Along one axis, nearest, bilinear and bicubic resampling are each a fixed matrix A
//! (output length × input length): row o holds the weights output o gives the input samples.
//! The 2-D resampling of an (N, C, H, W) tensor is then out = A_h · x · A_wᵀ per channel — two
//! matrix products, whose backward Burn already has on every backend (nearest is a row and
//! column selection, with the scatter-add backward of `select`). This sidesteps Burn's own
//! `interpolate`, whose `align_corners` defaults to true, whose bilinear source index is not
//! clamped at 0, and whose backward exists only on some backends.
//!
//! The weights follow PyTorch's CPU kernels (`aten/src/ATen/native/UpSample.h`,
//! `UpSampleKernel.cpp`), computed in f32 as PyTorch does for f32 tensors:
//! - scale: align_corners → (in − 1)/(out − 1) (0 when out = 1); otherwise 1/s when a scale
//!   factor s was given, else in/out;
//! - nearest: src = min(⌊o·scale⌋, in − 1) (identity when out = in, o/2 when out = 2·in);
//! - linear: src = align_corners ? scale·o : max(scale·(o + ½) − ½, 0); i0 = ⌊src⌋,
//!   λ = src − i0; weights 1 − λ at i0 and λ at min(i0 + 1, in − 1);
//! - cubic (Keys, a = −0.75): src as linear but never clamped; i0 = ⌊src⌋, t = src − i0 (kept
//!   in [0, 1]); taps i0 − 1 … i0 + 2 clamped into [0, in − 1] (border replication) with weights
//!   W(t + 1), W(t), W(1 − t), W(2 − t).

use super::error::UpsampleError;
use super::resize::{AxisMap, ResizeTo};
use super::upsampler::UpsamplerKind;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// The interpolation kernel of an [`Interpolate`] layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterpMode {
    /// Nearest neighbour: output (i, j) copies input (⌊i·sₕ⌋, ⌊j·s_w⌋) with PyTorch's source
    /// scale.
    Nearest,
    /// Bilinear: PyTorch's linear weights along each axis.
    Bilinear,
    /// Bicubic: PyTorch's cubic-convolution weights along each axis.
    Bicubic,
}

impl InterpMode {
    /// The upsampler kind (and CLI name) of this mode.
    pub fn kind(self) -> UpsamplerKind {
        match self {
            InterpMode::Nearest => UpsamplerKind::Nearest,
            InterpMode::Bilinear => UpsamplerKind::Bilinear,
            InterpMode::Bicubic => UpsamplerKind::Bicubic,
        }
    }

    /// The name (`nearest`, `bilinear`, `bicubic`).
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// Input samples one output sample depends on along an axis: 1, 2 or 4.
    pub fn support(self) -> usize {
        match self {
            InterpMode::Nearest => 1,
            InterpMode::Bilinear => 2,
            InterpMode::Bicubic => 4,
        }
    }
}

/// Configuration of [`Interpolate`].
#[derive(Config, Debug)]
pub struct InterpolateConfig {
    /// The interpolation kernel.
    pub mode: InterpMode,
    /// Output size: a scale factor per axis or a fixed size.
    #[config(default = "ResizeTo::Scale([2.0, 2.0])")]
    pub resize: ResizeTo,
    /// PyTorch's `align_corners` (bilinear and bicubic): true maps the corner pixels' centres onto
    /// each other; false (PyTorch's default, and kestrel's) maps the corners of the pixel grids.
    #[config(default = false)]
    pub align_corners: bool,
}

impl InterpolateConfig {
    /// Checks the configuration and builds the (parameter-free) module. Nearest has no
    /// `align_corners` (PyTorch refuses it too).
    pub fn init(&self) -> Result<Interpolate, UpsampleError> {
        self.resize.validate(self.mode.name())?;
        if self.mode == InterpMode::Nearest && self.align_corners {
            return Err(UpsampleError::field(
                "nearest",
                "align_corners",
                true,
                "false: nearest resampling has no align_corners",
            ));
        }
        Ok(Interpolate {
            mode: self.mode,
            resize: self.resize,
            align_corners: self.align_corners,
        })
    }
}

/// Nearest, bilinear or bicubic upsampling: out = A_h · x · A_wᵀ with PyTorch's weights (see
/// the module documentation). Differentiable with respect to the input; channels are unchanged.
#[derive(Module, Debug)]
pub struct Interpolate {
    /// The interpolation kernel.
    #[module(skip)]
    pub mode: InterpMode,
    /// Output size rule.
    #[module(skip)]
    pub resize: ResizeTo,
    /// PyTorch's `align_corners` (unused by nearest).
    pub align_corners: bool,
}

impl Interpolate {
    /// Output (H′, W′) for an input (H, W); `None` when it would be empty.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.resize.output_size(input)
    }

    /// Upsamples an (N, C, H, W) tensor.
    ///
    /// # Panics
    /// When the input's H or W is 0 or the output would be empty (see
    /// [`Interpolate::output_size`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [ah, aw] = self
            .resize
            .axes([h, w])
            .unwrap_or_else(|| panic!("{}: no output size for input {h}×{w}", self.mode.name()));
        let matrix = match self.mode {
            InterpMode::Nearest => {
                return select_hw(x, &nearest_indices(&ah), &nearest_indices(&aw));
            }
            InterpMode::Bilinear => linear_matrix,
            InterpMode::Bicubic => cubic_matrix,
        };
        let mh = matrix(&ah, self.align_corners);
        let mw = matrix(&aw, self.align_corners);
        apply_separable(x, &mh, &mw, [ah.output, aw.output])
    }
}

/// Keys' cubic-convolution coefficient PyTorch uses.
pub const CUBIC_A: f32 = -0.75;

fn area_scale(axis: &AxisMap, align_corners: bool) -> f32 {
    if align_corners {
        if axis.output > 1 {
            (axis.input as f32 - 1.0) / (axis.output as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        match axis.scale {
            Some(s) if s > 0.0 => (1.0 / s) as f32,
            _ => axis.input as f32 / axis.output as f32,
        }
    }
}

fn source_index(scale: f32, o: usize, align_corners: bool, cubic: bool) -> f32 {
    if align_corners {
        scale * o as f32
    } else {
        let s = scale * (o as f32 + 0.5) - 0.5;
        if !cubic && s < 0.0 {
            0.0
        } else {
            s
        }
    }
}

/// Source row of each output position for nearest resampling (PyTorch's `nearest`, not
/// `nearest-exact`; align_corners does not apply).
pub fn nearest_indices(axis: &AxisMap) -> Vec<usize> {
    let last = axis.input - 1;
    if axis.output == axis.input {
        return (0..axis.output).collect();
    }
    if axis.output == 2 * axis.input {
        return (0..axis.output).map(|o| o >> 1).collect();
    }
    let scale = match axis.scale {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => axis.input as f32 / axis.output as f32,
    };
    (0..axis.output)
        .map(|o| ((o as f32 * scale).floor() as usize).min(last))
        .collect()
}

/// Row-major (output × input) bilinear interpolation matrix along one axis.
pub fn linear_matrix(axis: &AxisMap, align_corners: bool) -> Vec<f32> {
    let (n_in, n_out) = (axis.input, axis.output);
    let scale = area_scale(axis, align_corners);
    let mut m = vec![0.0f32; n_out * n_in];
    for o in 0..n_out {
        let src = source_index(scale, o, align_corners, false);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let lambda = (src - i0 as f32).clamp(0.0, 1.0);
        let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
        m[o * n_in + i0] += 1.0 - lambda;
        m[o * n_in + i1] += lambda;
    }
    m
}

/// Keys' cubic kernel for |x| ≤ 1.
fn cubic1(x: f32, a: f32) -> f32 {
    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
}

/// Keys' cubic kernel for 1 < |x| < 2.
fn cubic2(x: f32, a: f32) -> f32 {
    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
}

/// Row-major (output × input) bicubic interpolation matrix along one axis.
pub fn cubic_matrix(axis: &AxisMap, align_corners: bool) -> Vec<f32> {
    let (n_in, n_out) = (axis.input, axis.output);
    let scale = area_scale(axis, align_corners);
    let last = n_in as i64 - 1;
    let mut m = vec![0.0f32; n_out * n_in];
    for o in 0..n_out {
        let src = source_index(scale, o, align_corners, true);
        let i0 = (src.floor() as i64).min(last);
        let t = (src - i0 as f32).clamp(0.0, 1.0);
        let w = [
            cubic2(t + 1.0, CUBIC_A),
            cubic1(t, CUBIC_A),
            cubic1(1.0 - t, CUBIC_A),
            cubic2(2.0 - t, CUBIC_A),
        ];
        for (k, wk) in w.iter().enumerate() {
            let idx = (i0 - 1 + k as i64).clamp(0, last) as usize;
            m[o * n_in + idx] += wk;
        }
    }
    m
}

/// Selects rows `idx_h` (dim 2) and columns `idx_w` (dim 3) of an (N, C, H, W) tensor — nearest
/// resampling, with the scatter-add backward of `select`.
pub fn select_hw(x: Tensor<4>, idx_h: &[usize], idx_w: &[usize]) -> Tensor<4> {
    let device = x.device();
    let x = x.select(2, index_tensor(idx_h, &device));
    x.select(3, index_tensor(idx_w, &device))
}

/// A 1-D Int tensor of indices.
pub fn index_tensor(idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(v, [idx.len()]), device)
}

/// out = A_h · x · A_wᵀ for an (N, C, H, W) tensor, with `a_h` (H′ × H) and `a_w` (W′ × W)
/// row-major; computed as two 2-D matrix products.
pub fn apply_separable(x: Tensor<4>, a_h: &[f32], a_w: &[f32], out: [usize; 2]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [ho, wo] = out;
    let device = x.device();
    // (W′ × W)ᵀ = W × W′ and (H′ × H)ᵀ = H × H′.
    let a_w_t = Tensor::<2>::from_data(TensorData::new(a_w.to_vec(), [wo, w]), &device).transpose();
    let a_h_t = Tensor::<2>::from_data(TensorData::new(a_h.to_vec(), [ho, h]), &device).transpose();
    let y = x.reshape([n * c * h, w]).matmul(a_w_t); // (N·C·H, W′)
    let y = y
        .reshape([n, c, h, wo])
        .swap_dims(2, 3)
        .reshape([n * c * wo, h]);
    let y = y.matmul(a_h_t); // (N·C·W′, H′)
    y.reshape([n, c, wo, ho]).swap_dims(2, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(input: usize, output: usize, scale: Option<f64>) -> AxisMap {
        AxisMap {
            input,
            output,
            scale,
        }
    }

    #[test]
    fn nearest_refuses_align_corners() {
        let e = InterpolateConfig::new(InterpMode::Nearest)
            .with_align_corners(true)
            .init()
            .unwrap_err();
        assert!(e.to_string().contains("align_corners"), "{e}");
        for mode in [InterpMode::Bilinear, InterpMode::Bicubic] {
            let m = InterpolateConfig::new(mode)
                .with_align_corners(true)
                .init()
                .unwrap();
            assert_eq!(
                (m.mode.kind().name(), m.mode.support() > 1),
                (mode.name(), true)
            );
        }
    }

    #[test]
    fn rows_sum_to_one() {
        for (i, o) in [(1, 3), (4, 8), (5, 8), (7, 3), (2, 9)] {
            for ac in [false, true] {
                for m in [
                    linear_matrix(&axis(i, o, None), ac),
                    cubic_matrix(&axis(i, o, None), ac),
                ] {
                    for r in 0..o {
                        let s: f32 = m[r * i..(r + 1) * i].iter().sum();
                        assert!((s - 1.0).abs() < 1e-6, "{i}->{o} ac {ac} row {r}: {s}");
                    }
                }
            }
        }
    }

    #[test]
    fn hand_values() {
        // Bilinear ×2 on [a, b], align_corners=false: src −0.25→0, 0.25, 0.75, 1.25→(1, 1):
        // rows [1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1].
        let m = linear_matrix(&axis(2, 4, Some(2.0)), false);
        assert_eq!(m, vec![1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]);
        // align_corners=true, 2 → 3: src 0, 0.5, 1.
        let m = linear_matrix(&axis(2, 3, None), true);
        assert_eq!(m, vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0]);
        // Keys' kernel at t = 0.5 with a = −0.75: W(1.5) = −0.09375, W(0.5) = 0.59375.
        let m = cubic_matrix(&axis(4, 7, None), true); // src of row 1 = 0.5
        let row = &m[4..8];
        // Tap −1 clamps onto 0: −0.09375 + 0.59375.
        let expect = [0.5, 0.59375, -0.09375, 0.0];
        for (a, b) in row.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{row:?}");
        }
        assert_eq!(
            nearest_indices(&axis(3, 7, None)),
            vec![0, 0, 0, 1, 1, 2, 2]
        );
        assert_eq!(nearest_indices(&axis(3, 6, None)), vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(nearest_indices(&axis(4, 2, None)), vec![0, 2]);
    }
}
