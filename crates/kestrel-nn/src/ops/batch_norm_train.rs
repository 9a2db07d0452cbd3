//! Training-mode BatchNorm as a Burn backend extension, with a fused forward and backward.
//!
//! For `x` of shape (N, C, ...) and `m = N · Π(...)` values per channel:
//!
//! - forward: one pass for the batch mean μ and biased variance σ² per channel, one pass for
//!   `y = γ·(x − μ)·r + β` with `r = 1/√(σ² + ε)`;
//! - backward: one pass for `dβ = Σ dy` and `dγ = Σ dy·x̂` (x̂ = (x − μ)·r), one pass for
//!   `dx = γ·r·(dy − dβ/m − x̂·dγ/m)`.
//!
//! The op also returns μ and σ² (biased, detached) so that the caller updates its running
//! statistics — [`crate::layers::batch_norm::BatchNorm2d`] does that with PyTorch's unbiased
//! variance.
//!
//! With a [`super::batch_norm_sync::ReplicaSum`] installed on the calling thread, μ, σ², m and
//! the backward's two sums are those of every replica's batch together (SyncBatchNorm).

use super::batch_norm_columns as columns;
use super::batch_norm_sync::{self, ReplicaSum};
use super::flex_io;
use super::simd::{lane_sum, simd_kernel};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexDevice, FlexTensor};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The backend extension: BatchNorm with batch statistics.
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormTrainOps: Backend {
    /// `(y, mean, biased variance)` of `x` (N, C, ...) normalised per channel and scaled by
    /// `gamma`, shifted by `beta` (both (C)).
    fn kestrel_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        clamp_lo: f64,
        clamp_hi: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The result of [`batch_norm_train`].
#[derive(Debug)]
pub struct BatchNormTrainOutput<const D: usize> {
    /// The normalised output, shaped as the input.
    pub output: Tensor<D>,
    /// Per-channel batch mean (C), detached.
    pub mean: Tensor<1>,
    /// Per-channel biased batch variance (C), detached.
    pub variance: Tensor<1>,
}

/// Training-mode BatchNorm through the custom kernels (the caller checks
/// [`super::custom_ops_enabled`]).
///
/// # Panics
/// If `x` has fewer than 2 dimensions or `gamma` / `beta` do not have `x`'s channel count.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrainOutput<D> {
    batch_norm_clamp_train(x, gamma, beta, epsilon, (f64::NEG_INFINITY, f64::INFINITY))
}

/// [`batch_norm_train`] followed by a clamp of the output to `[lo, hi]` — ReLU is `(0, ∞)`,
/// ReLU6 `(0, 6)` — in the same passes, forward and backward (the gradient passes where
/// `lo < y < hi`, as PyTorch's ReLU and hardtanh backward do).
pub fn batch_norm_clamp_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    (lo, hi): (f64, f64),
) -> BatchNormTrainOutput<D> {
    let dims = x.dims();
    assert!(
        D >= 2 && gamma.dims()[0] == dims[1] && beta.dims()[0] == dims[1],
        "batch norm: input {dims:?} needs γ and β of shape [{}], got {:?} and {:?}",
        dims.get(1).copied().unwrap_or(0),
        gamma.dims(),
        beta.dims()
    );
    let (y, mean, var) = Dispatch::kestrel_batch_norm_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        lo,
        hi,
    );
    BatchNormTrainOutput {
        output: Tensor::from_dispatch(y),
        mean: Tensor::from_dispatch(mean),
        variance: Tensor::from_dispatch(var),
    }
}

/// (N, C, values per plane) of an (N, C, ...) shape.
fn split(dims: &[usize]) -> (usize, usize, usize) {
    (dims[0], dims[1], dims[2..].iter().product())
}

/// Per-channel mean and biased variance of `x` (N, C, hw), summed in f64 around the channel's
/// first value (which keeps the one-pass variance accurate when |mean| ≫ std).
pub fn channel_stats(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    if columns::applies(hw) {
        return columns::channel_stats(x, n, c, hw);
    }
    let m = (n * hw) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            if n * hw == 0 {
                return (0.0, 0.0);
            }
            let shift = x[ch * hw] as f64;
            let (mut s, mut s2) = (0.0f64, 0.0f64);
            for b in 0..n {
                let plane = &x[(b * c + ch) * hw..(b * c + ch + 1) * hw];
                // f32 partial sums over short runs, f64 across them.
                for chunk in plane.chunks(1024) {
                    let (cs, cs2) = shifted_sums(chunk, shift as f32);
                    s += cs as f64;
                    s2 += cs2 as f64;
                }
            }
            let mean_shifted = s / m;
            let var = (s2 / m - mean_shifted * mean_shifted).max(0.0);
            ((shift + mean_shifted) as f32, var as f32)
        })
        .unzip()
}

/// `(Σ (v − shift), Σ (v − shift)²)` over `a`: AVX2 where the CPU has it (the compiler does not
/// vectorise this loop by itself), otherwise sixteen scalar lanes.
fn shifted_sums(a: &[f32], shift: f32) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if kestrel_runtime::kernels::simd_available() {
        // SAFETY: AVX2 and FMA were detected on this CPU.
        return unsafe { shifted_sums_avx2(a, shift) };
    }
    let (mut s, mut s2) = ([0.0f32; 16], [0.0f32; 16]);
    let mut chunks = a.chunks_exact(16);
    for c in &mut chunks {
        for j in 0..16 {
            let d = c[j] - shift;
            s[j] += d;
            s2[j] += d * d;
        }
    }
    let (mut ts, mut ts2) = (0.0f32, 0.0f32);
    for &v in chunks.remainder() {
        let d = v - shift;
        ts += d;
        ts2 += d * d;
    }
    (lane_sum(s) + ts, lane_sum(s2) + ts2)
}

/// [`shifted_sums`] with AVX2: sixteen lanes in two pairs of registers.
///
/// # Safety
/// AVX2 and FMA must be available on this CPU. (Every load reads a whole 16-float chunk of `a`
/// through `chunks_exact`, so no bound can be crossed.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn shifted_sums_avx2(a: &[f32], shift: f32) -> (f32, f32) {
    use std::arch::x86_64::*;
    let sh = _mm256_set1_ps(shift);
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (mut q0, mut q1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut chunks = a.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` holds 16 floats, so both 8-float loads (at 0 and 8) stay inside it.
        let (x0, x1) = unsafe {
            (
                _mm256_loadu_ps(c.as_ptr()),
                _mm256_loadu_ps(c.as_ptr().add(8)),
            )
        };
        let d0 = _mm256_sub_ps(x0, sh);
        let d1 = _mm256_sub_ps(x1, sh);
        s0 = _mm256_add_ps(s0, d0);
        s1 = _mm256_add_ps(s1, d1);
        q0 = _mm256_add_ps(q0, _mm256_mul_ps(d0, d0));
        q1 = _mm256_add_ps(q1, _mm256_mul_ps(d1, d1));
    }
    let (mut s, mut q) = ([0.0f32; 8], [0.0f32; 8]);
    // SAFETY: `s` and `q` hold 8 floats each, one 256-bit store.
    unsafe {
        _mm256_storeu_ps(s.as_mut_ptr(), _mm256_add_ps(s0, s1));
        _mm256_storeu_ps(q.as_mut_ptr(), _mm256_add_ps(q0, q1));
    }
    let (mut ts, mut ts2) = (lane_sum(s), lane_sum(q));
    for &v in chunks.remainder() {
        let d = v - shift;
        ts += d;
        ts2 += d * d;
    }
    (ts, ts2)
}

/// `(Σ g, Σ g·(x − μ))` over one plane, with `g = dy`, or with a clamp `mask` `g = dy` where the
/// forward output lay strictly inside the bounds, else 0. With AVX2 (checked at run time) eight
/// lanes at a time with the mask as a lane mask ([`avx2_lanes`]); small planes (3×3, 6×6 maps)
/// are mostly a scalar tail either way.
fn plane_sums(dy: &[f32], x: &[f32], mu: f32, mask: Option<PlaneMask>) -> (f32, f32) {
    let n = dy.len().min(x.len());
    let mut i = 0;
    let (mut a, mut b) = (0.0f32, 0.0f32);
    #[cfg(target_arch = "x86_64")]
    if kestrel_runtime::kernels::simd_available() {
        // SAFETY: AVX2 and FMA were detected on this CPU.
        (a, b, i) = unsafe { avx2_lanes::sums(&dy[..n], &x[..n], mu, mask) };
    }
    for j in i..n {
        let gm = masked(dy[j], x[j], mask);
        a += gm;
        b += gm * (x[j] - mu);
    }
    (a, b)
}

/// `dy = k · (g − mean_dy − (x − μ) · coef)` in place, `g` as in [`plane_sums`]: the BatchNorm
/// input gradient of one plane.
fn plane_dx(dy: &mut [f32], x: &[f32], k: f32, terms: (f32, f32, f32), mask: Option<PlaneMask>) {
    let n = dy.len().min(x.len());
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    if kestrel_runtime::kernels::simd_available() {
        // SAFETY: AVX2 and FMA were detected on this CPU.
        i = unsafe { avx2_lanes::dx(&mut dy[..n], &x[..n], k, terms, mask) };
    }
    let (mean_dy, mu, coef) = terms;
    for j in i..n {
        let gm = masked(dy[j], x[j], mask);
        dy[j] = k * (gm - mean_dy - (x[j] - mu) * coef);
    }
}

/// `g` where `mask` passes `x` (or there is none), else 0.
#[inline(always)]
fn masked(g: f32, x: f32, mask: Option<PlaneMask>) -> f32 {
    match mask {
        Some(m) if !m.passes(x) => 0.0,
        _ => g,
    }
}

/// [`plane_sums`] and [`plane_dx`] eight lanes at a time with AVX2, the same operations in the
/// same order as the scalar code (no fused multiply-add), so each lane gives the scalar bits.
#[cfg(target_arch = "x86_64")]
mod avx2_lanes {
    use super::PlaneMask;
    use std::arch::x86_64::*;

    /// `g` with the lanes where the mask fails `x` zeroed.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn masked(g: __m256, x: __m256, mask: Option<PlaneMask>) -> __m256 {
        let Some(m) = mask else { return g };
        let y = _mm256_add_ps(
            _mm256_mul_ps(
                _mm256_sub_ps(x, _mm256_set1_ps(m.map.mean)),
                _mm256_set1_ps(m.map.scale),
            ),
            _mm256_set1_ps(m.map.beta),
        );
        let inside = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_set1_ps(m.lo)),
            _mm256_cmp_ps::<_CMP_LT_OQ>(y, _mm256_set1_ps(m.hi)),
        );
        _mm256_and_ps(inside, g)
    }

    /// The sum of a register's lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn total(v: __m256) -> f32 {
        let mut a = [0.0f32; 8];
        // SAFETY: `a` holds 8 floats.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        super::lane_sum(a)
    }

    /// The whole blocks of eight of [`super::plane_sums`]: `(Σ g, Σ g·(x − μ), elements done)`.
    ///
    /// # Safety
    /// AVX2 must be available; `dy` and `x` have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sums(
        dy: &[f32],
        x: &[f32],
        mu: f32,
        mask: Option<PlaneMask>,
    ) -> (f32, f32, usize) {
        let m = _mm256_set1_ps(mu);
        let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (gs, xs) = (dy.chunks_exact(8), x.chunks_exact(8));
        let done = dy.len() - gs.remainder().len();
        for (g, v) in gs.zip(xs) {
            // SAFETY: both chunks hold 8 floats.
            let (g, v) = unsafe { (_mm256_loadu_ps(g.as_ptr()), _mm256_loadu_ps(v.as_ptr())) };
            let gm = masked(g, v, mask);
            a = _mm256_add_ps(a, gm);
            b = _mm256_add_ps(b, _mm256_mul_ps(gm, _mm256_sub_ps(v, m)));
        }
        (total(a), total(b), done)
    }

    /// The whole blocks of eight of [`super::plane_dx`]; returns the elements done.
    ///
    /// # Safety
    /// AVX2 must be available; `dy` and `x` have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dx(
        dy: &mut [f32],
        x: &[f32],
        k: f32,
        (mean_dy, mu, coef): (f32, f32, f32),
        mask: Option<PlaneMask>,
    ) -> usize {
        let (k, mean_dy) = (_mm256_set1_ps(k), _mm256_set1_ps(mean_dy));
        let (mu, coef) = (_mm256_set1_ps(mu), _mm256_set1_ps(coef));
        let mut gs = dy.chunks_exact_mut(8);
        let xs = x.chunks_exact(8);
        for (g, v) in (&mut gs).zip(xs) {
            // SAFETY: both chunks hold 8 floats.
            let (gv, vv) = unsafe { (_mm256_loadu_ps(g.as_ptr()), _mm256_loadu_ps(v.as_ptr())) };
            let gm = masked(gv, vv, mask);
            let centred = _mm256_mul_ps(_mm256_sub_ps(vv, mu), coef);
            let out = _mm256_mul_ps(k, _mm256_sub_ps(_mm256_sub_ps(gm, mean_dy), centred));
            // SAFETY: `g` holds 8 floats.
            unsafe { _mm256_storeu_ps(g.as_mut_ptr(), out) };
        }
        x.len() - gs.into_remainder().len()
    }
}

simd_kernel! {
/// `out = clamp((x − μ) · scale + β, lo, hi)` (`out` as long as `x`; NaN passes through).
fn affine(out: &mut [MaybeUninit<f32>], x: &[f32], m: PlaneMap, lo: f32, hi: f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(m.apply(v).clamp(lo, hi));
    }
}
}

/// `y = clamp((x − μ)·γ·r + β, lo, hi)` per channel, `r = 1/√(σ² + ε)` given as `inv_std`.
#[allow(clippy::too_many_arguments)]
pub fn normalize(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    beta: &[f32],
    (lo, hi): (f32, f32),
) -> Vec<f32> {
    assert_eq!(x.len(), n * c * hw, "batch norm: input length");
    if hw == 0 {
        return vec![0.0; x.len()];
    }
    if columns::applies(hw) {
        let spread = columns::Spread::new(mean, inv_std, gamma, beta, (lo, hi), hw);
        return columns::normalize(x, c * hw, spread.affine());
    }
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(hw).enumerate().for_each(|(plane, out)| {
            let ch = plane % c;
            let map = PlaneMap::new(gamma[ch], inv_std[ch], beta[ch], mean[ch]);
            affine(out, &x[plane * hw..(plane + 1) * hw], map, lo, hi)
        })
    };
    // SAFETY: every plane of `y` is written by `affine` from the plane of `x` of the same length.
    unsafe { flex_io::filled(x.len(), fill) }
}

/// The clamp of a fused forward, for the backward's mask: the gradient passes where the
/// unclamped output `γ·(x − μ)·r + β` lies strictly between the bounds (recomputed from `x`
/// exactly as the forward computed it, so the output need not be kept).
#[derive(Clone, Copy)]
pub struct ClampMask<'a> {
    /// β per channel.
    pub beta: &'a [f32],
    /// Lower bound.
    pub lo: f32,
    /// Upper bound.
    pub hi: f32,
}

/// One plane's [`ClampMask`]: the forward's affine map and the bounds.
#[derive(Clone, Copy)]
struct PlaneMask {
    map: PlaneMap,
    lo: f32,
    hi: f32,
}

impl PlaneMask {
    #[inline(always)]
    fn passes(self, x: f32) -> bool {
        let y = self.map.apply(x);
        y > self.lo && y < self.hi
    }
}

/// The forward's per-channel affine map `y = (x − μ)·(γ·r) + β`. Centring first keeps `y`
/// accurate near the clamp bounds when |μ| is large against the spread (folding μ into one
/// shift, `x·γr + (β − μ·γr)`, cancels catastrophically there and flips the ReLU mask of values
/// near 0).
#[derive(Clone, Copy)]
struct PlaneMap {
    mean: f32,
    scale: f32,
    beta: f32,
}

impl PlaneMap {
    #[inline(always)]
    fn new(gamma: f32, inv_std: f32, beta: f32, mean: f32) -> PlaneMap {
        PlaneMap {
            mean,
            scale: gamma * inv_std,
            beta,
        }
    }

    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        (x - self.mean) * self.scale + self.beta
    }
}

/// Training-mode BatchNorm backward, overwriting the output gradient `dy` with `dx`; returns
/// `(dγ, dβ)`. With a clamp `mask`, `dy` is first zeroed where the clamped output is not inside
/// its bounds. With `sync` (SyncBatchNorm), `(sync, m)`: the per-channel sums of `dy` and
/// `dy·(x − μ)` are summed over the replicas and `m` is the count of values per channel over
/// all of them; `(dγ, dβ)` stay this replica's own.
#[allow(clippy::too_many_arguments)]
pub fn backward_in_place(
    x: &[f32],
    dy: &mut [f32],
    (n, c, hw): (usize, usize, usize),
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    mask: Option<ClampMask>,
    sync: Option<(&dyn ReplicaSum, f64)>,
) -> (Vec<f32>, Vec<f32>) {
    if let Some(m) = mask {
        assert_eq!(m.beta.len(), c, "batch norm backward: β length");
    }
    let plane_mask = |ch: usize| {
        mask.map(|m| PlaneMask {
            map: PlaneMap::new(gamma[ch], inv_std[ch], m.beta[ch], mean[ch]),
            lo: m.lo,
            hi: m.hi,
        })
    };
    assert!(
        x.len() == n * c * hw && dy.len() == x.len(),
        "batch norm backward: lengths"
    );
    // Small planes run position by position, with the clamp's β (zero without a clamp) spread.
    let spread = columns::applies(hw).then(|| {
        let zeros = vec![0.0; c];
        let (beta, lo, hi) = mask.map_or((&zeros[..], 0.0, 0.0), |m| (m.beta, m.lo, m.hi));
        columns::Spread::new(mean, inv_std, gamma, beta, (lo, hi), hw)
    });
    // Pass 1: Σ dy and Σ dy·(x − μ) per channel.
    let (mut sum_dy, mut sum_dy_xc): (Vec<f64>, Vec<f64>) = if let Some(sp) = &spread {
        columns::grad_sums(x, dy, (n, c, hw), sp.affine(), mask.is_some())
    } else {
        (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut a, mut b) = (0.0f64, 0.0f64);
                let mask = plane_mask(ch);
                for bi in 0..n {
                    let r = (bi * c + ch) * hw..(bi * c + ch + 1) * hw;
                    let (pa, pb) = plane_sums(&dy[r.clone()], &x[r], mean[ch], mask);
                    a += pa as f64;
                    b += pb as f64;
                }
                (a, b)
            })
            .unzip()
    };
    let dbeta: Vec<f32> = sum_dy.iter().map(|&v| v as f32).collect();
    let dgamma: Vec<f32> = sum_dy_xc
        .iter()
        .zip(inv_std)
        .map(|(&v, &r)| (v * r as f64) as f32)
        .collect();
    let mut m = (n * hw) as f64;
    if let Some((sum, total)) = sync {
        let mut both = [sum_dy.as_slice(), sum_dy_xc.as_slice()].concat();
        sum.sum(&mut both);
        sum_dy.copy_from_slice(&both[..c]);
        sum_dy_xc.copy_from_slice(&both[c..]);
        m = total;
    }
    // Pass 2: dx = γ·r·(dy − dβ/m − (x − μ)·r²·Σdy(x − μ)/m), with channel `ch`'s
    // `(k = γ·r, Σdy/m, r²·Σdy(x − μ)/m)`.
    let terms = |ch: usize| {
        let r = inv_std[ch] as f64;
        (
            (gamma[ch] as f64 * r) as f32,
            (sum_dy[ch] / m) as f32,
            (r * r * sum_dy_xc[ch] / m) as f32,
        )
    };
    if let Some(sp) = &spread {
        let terms = columns::DxTerms::new(&(0..c).map(terms).collect::<Vec<_>>(), hw);
        columns::dx(dy, x, c * hw, sp.affine(), mask.is_some(), &terms);
    } else if hw > 0 {
        dy.par_chunks_mut(hw).enumerate().for_each(|(plane, out)| {
            let ch = plane % c;
            let (k, mean_dy, coef) = terms(ch);
            let span = plane * hw..(plane + 1) * hw;
            plane_dx(out, &x[span], k, (mean_dy, mean[ch], coef), plane_mask(ch));
        });
    }
    (dgamma, dbeta)
}

/// The statistics a forward normalised with.
struct Stats {
    mean: Vec<f32>,
    var: Vec<f32>,
    inv_std: Vec<f32>,
    /// Values per channel over every replica, when synchronised.
    synced_count: Option<f64>,
}

/// Forward on Flex primitives: the output and its statistics (over every replica when a
/// [`ReplicaSum`] is installed).
fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
    clamp: (f32, f32),
) -> (FlexTensor, Stats) {
    let dims = flex_io::dims(x);
    let shape = split(&dims);
    let xs = flex_io::values(x);
    let (mut mean, mut var) = channel_stats(&xs, shape.0, shape.1, shape.2);
    let mut synced_count = None;
    if let Some(sum) = batch_norm_sync::installed() {
        let (m, v, total) =
            batch_norm_sync::combine_stats(sum.as_ref(), &mean, &var, shape.0 * shape.2);
        (mean, var, synced_count) = (m, v, Some(total));
    }
    let inv_std: Vec<f32> = var
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect();
    let y = normalize(
        &xs,
        shape,
        &mean,
        &inv_std,
        &flex_io::values(gamma),
        &flex_io::values(beta),
        clamp,
    );
    let stats = Stats {
        mean,
        var,
        inv_std,
        synced_count,
    };
    (flex_io::tensor(y, &dims), stats)
}

impl BatchNormTrainOps for Flex {
    fn kestrel_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        clamp_lo: f64,
        clamp_hi: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let clamp = (clamp_lo as f32, clamp_hi as f32);
        let (y, stats) = forward(&x, &gamma, &beta, epsilon, clamp);
        let c = stats.mean.len();
        (
            y,
            flex_io::tensor(stats.mean, &[c]),
            flex_io::tensor(stats.var, &[c]),
        )
    }
}

/// What the backward step keeps: the input, γ, and the per-channel μ and 1/√(σ² + ε).
#[derive(Clone, Debug)]
struct BatchNormState {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// β and the clamp bounds, when the output is clamped.
    clamped: Option<(Vec<f32>, f32, f32)>,
    /// Values per channel over every replica, when the forward was synchronised.
    synced_count: Option<f64>,
}

/// The backward step.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let dims = flex_io::dims(&s.x);
        let x = flex_io::values(&s.x);
        let gamma = flex_io::values(&s.gamma);
        let mask = s.clamped.as_ref().map(|(beta, lo, hi)| ClampMask {
            beta,
            lo: *lo,
            hi: *hi,
        });
        let shape = split(&dims);
        // dx overwrites dy (a copy of it if its buffer is shared).
        let sum = s.synced_count.map(|total| {
            let sum = batch_norm_sync::installed()
                .expect("a synchronised BatchNorm's backward needs its replica sum installed");
            (sum, total)
        });
        let sync = sum.as_ref().map(|(s, total)| (s.as_ref(), *total));
        let (dx, (dgamma, dbeta)) = flex_io::modify(dy, |g| {
            backward_in_place(&x, g, shape, &s.mean, &s.inv_std, &gamma, mask, sync)
        });
        let c = dims[1];
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex_io::tensor(dgamma, &[c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex_io::tensor(dbeta, &[c]));
        }
    }
}

impl<C: CheckpointStrategy> BatchNormTrainOps for Autodiff<Flex, C> {
    fn kestrel_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        clamp_lo: f64,
        clamp_hi: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let clamp = (clamp_lo as f32, clamp_hi as f32);
        let (y, stats) = forward(&x, &gamma, &beta, epsilon, clamp);
        let Stats {
            mean,
            var,
            inv_std,
            synced_count,
        } = stats;
        let clamped = (clamp_lo > f64::NEG_INFINITY || clamp_hi < f64::INFINITY)
            .then(|| (flex_io::values(&beta).into_owned(), clamp.0, clamp.1));
        let c = mean.len();
        // Detached statistics: new leaves of the graph.
        let stats = |v: &[f32]| {
            let data = burn::tensor::TensorData::new(v.to_vec(), [c]);
            <Self as FloatTensorOps<Self>>::float_from_data(data, &FlexDevice)
        };
        let (mean_t, var_t) = (stats(&mean), stats(&var));
        let y = match BatchNormBackward
            .prepare::<C>([x_node, gamma_node, beta_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                BatchNormState {
                    x,
                    gamma,
                    mean,
                    inv_std,
                    clamped,
                    synced_count,
                },
                y,
            ),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, mean_t, var_t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_close, values};
    use burn::tensor::{Device, TensorData};
    use kestrel_data::rng::Rng;

    fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    /// The seeded inputs of one comparison: x in `offset` ± 2, γ and β uniform in their ranges,
    /// and the random weights r of the objective sum(y · r), drawn in that order.
    struct Case {
        shape: [usize; 4],
        x: Vec<f32>,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        weights: Tensor<4>,
    }

    impl Case {
        fn new(
            seed: u64,
            shape: [usize; 4],
            offset: f64,
            gamma: (f64, f64),
            beta: (f64, f64),
            device: &Device,
        ) -> Case {
            let mut rng = Rng::new(seed);
            let (n, c) = (shape.iter().product(), shape[1]);
            let mut draw = |len: usize, (lo, hi): (f64, f64), shift: f64| -> Vec<f32> {
                (0..len)
                    .map(|_| (shift + rng.uniform(lo, hi)) as f32)
                    .collect()
            };
            let x = draw(n, (-2.0, 2.0), offset);
            let gamma = draw(c, gamma, 0.0);
            let beta = draw(c, beta, 0.0);
            let weights = tensor(draw(n, (-1.0, 1.0), 0.0), shape, device);
            Case {
                shape,
                x,
                gamma,
                beta,
                weights,
            }
        }

        /// `op(x, γ, β) = (y, statistics)` on fresh leaf copies of the inputs: the values of y,
        /// of the statistics, and the gradients of sum(y · r) with respect to x, γ and β.
        fn run(
            &self,
            op: impl Fn(Tensor<4>, Tensor<1>, Tensor<1>) -> (Tensor<4>, Vec<Tensor<1>>),
        ) -> Vec<Vec<f32>> {
            let device = self.weights.device();
            let c = self.shape[1];
            let xt = tensor(self.x.clone(), self.shape, &device).require_grad();
            let g = tensor(self.gamma.clone(), [c], &device).require_grad();
            let b = tensor(self.beta.clone(), [c], &device).require_grad();
            let (y, stats) = op(xt.clone(), g.clone(), b.clone());
            let grads = (y.clone() * self.weights.clone()).sum().backward();
            let mut out = vec![values(y)];
            out.extend(stats.into_iter().map(values));
            out.push(values(xt.grad(&grads).unwrap()));
            out.push(values(g.grad(&grads).unwrap()));
            out.push(values(b.grad(&grads).unwrap()));
            out
        }
    }

    /// The fused clamp (ReLU6 and ReLU) against Burn's `batch_norm_train` followed by Burn's own
    /// activation: output and the three gradients, with β spread so that both bounds are crossed.
    #[test]
    fn fused_clamp_matches_burn_batch_norm_then_activation() {
        let device = Device::flex().autodiff();
        for (seed, shape, relu6) in [
            (4u64, [1usize, 3, 5, 7], true),
            (5, [16, 4, 9, 11], true),
            (6, [3, 5, 6, 4], false),
            // Small planes, more channels than one task of the position-by-position sums.
            (7, [3, 1030, 2, 2], true),
        ] {
            let case = Case::new(seed, shape, 0.0, (1.0, 4.0), (-1.0, 5.0), &device);
            let n: usize = shape.iter().product();
            let bounds = if relu6 {
                (0.0, 6.0)
            } else {
                (0.0, f64::INFINITY)
            };
            let got = case.run(|x, g, b| {
                let y = batch_norm_clamp_train(x, g, b, 1e-5, bounds).output;
                (y, vec![])
            });
            let want = case.run(|x, g, b| {
                let o = burn::tensor::module::batch_norm_train(x, g, b, 1e-5);
                let y = if relu6 {
                    burn::tensor::activation::relu6(o.output)
                } else {
                    burn::tensor::activation::relu(o.output)
                };
                (y, vec![])
            });
            let clamped = got[0].iter().filter(|&&v| v == 0.0 || v == 6.0).count();
            assert!(
                clamped > 0 && clamped < n,
                "both sides of the bounds: {clamped} of {n}"
            );
            for (i, name) in ["y", "dx", "dgamma", "dbeta"].iter().enumerate() {
                assert_close(&got[i], &want[i], 1e-4, &format!("{name} {shape:?}"));
            }
        }
    }

    /// Output, statistics and all three gradients against Burn's `batch_norm_train`.
    #[test]
    fn matches_burn_batch_norm_train() {
        let device = Device::flex().autodiff();
        for (seed, shape, offset) in [
            (1u64, [1usize, 3, 5, 7], 0.0f64),
            (2, [16, 4, 9, 11], 0.0),
            (3, [4, 2, 3, 3], 50.0),
            (4, [2, 1030, 2, 2], 0.0),
            (5, [4, 2, 9, 9], 50.0),
        ] {
            let case = Case::new(seed, shape, offset, (0.5, 1.5), (-1.0, 1.0), &device);
            let got = case.run(|x, g, b| {
                let o = batch_norm_train(x, g, b, 1e-5);
                (o.output, vec![o.mean, o.variance])
            });
            let want = case.run(|x, g, b| {
                let o = burn::tensor::module::batch_norm_train(x, g, b, 1e-5);
                (o.output, vec![o.mean, o.variance])
            });
            for (i, name) in ["y", "mean", "var", "dx", "dgamma", "dbeta"]
                .iter()
                .enumerate()
            {
                // Burn's own f32 reductions differ from the f64 sums here by rounding; with the
                // shifted input (offset 50) its two-pass variance loses a few more digits.
                let tol = if offset > 0.0 { 1e-3 } else { 1e-4 };
                assert_close(&got[i], &want[i], tol, &format!("{name} {shape:?}"));
            }
        }
    }

    /// Two replicas, each with a shard of the batch (3 and 5 of 8 images) and a replica sum
    /// installed, against one forward and backward of the whole batch: the same output, mean and
    /// variance, the same input gradient, and γ's and β's gradients summing to the whole batch's.
    #[test]
    fn synchronised_replicas_equal_the_whole_batch() {
        let device = Device::flex().autodiff();
        // Planes of 20 values (position by position) and of 81 (plane by plane).
        for shape in [[8usize, 3, 5, 4], [8, 3, 9, 9]] {
            synchronised_replicas_match(shape, &device);
        }
    }

    fn synchronised_replicas_match(shape: [usize; 4], device: &Device) {
        use crate::ops::batch_norm_sync::{install, tests::ThreadSum};
        let case = Case::new(11, shape, 3.0, (0.5, 1.5), (-1.0, 1.0), device);
        let op = |x, g, b| {
            let o = batch_norm_clamp_train(x, g, b, 1e-5, (0.0, 6.0));
            (o.output, vec![o.mean, o.variance])
        };
        let whole = case.run(op);
        let plane = shape[1] * shape[2] * shape[3];
        let shards = [(0usize, 3usize), (3, 8)];
        let runs: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ThreadSum::group(2)
                .into_iter()
                .zip(shards)
                .map(|(sum, (lo, hi))| {
                    let case = &case;
                    scope.spawn(move || {
                        let _sync = install(std::rc::Rc::new(sum));
                        let device = Device::flex().autodiff();
                        let part = Case {
                            shape: [hi - lo, shape[1], shape[2], shape[3]],
                            x: case.x[lo * plane..hi * plane].to_vec(),
                            gamma: case.gamma.clone(),
                            beta: case.beta.clone(),
                            weights: case
                                .weights
                                .clone()
                                .narrow(0, lo, hi - lo)
                                .to_device(&device),
                        };
                        part.run(op)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // y and dx: the shards concatenated; mean and variance: on each replica.
        for (i, name) in [(0, "y"), (3, "dx")] {
            let joined: Vec<f32> = runs.iter().flat_map(|r| r[i].clone()).collect();
            assert_close(&joined, &whole[i], 1e-6, name);
        }
        for r in &runs {
            assert_close(&r[1], &whole[1], 1e-5, "mean");
            assert_close(&r[2], &whole[2], 1e-4, "var");
        }
        for (i, name) in [(4, "dgamma"), (5, "dbeta")] {
            let summed: Vec<f32> = (0..shape[1])
                .map(|c| runs[0][i][c] + runs[1][i][c])
                .collect();
            assert_close(&summed, &whole[i], 1e-6, name);
        }
    }

    /// A channel whose mean is far from zero against its spread (x = 100 ± 2): the output is
    /// centred before scaling, so its error stays near the rounding of μ itself; folding μ into one
    /// shift (`x·γr + (β − μ·γr)`) made it 4× larger, enough to flip ReLU masks of values near 0
    /// and, in a ResNet at batch 16, to move some gradients by 1e-3 against PyTorch-style BN.
    #[test]
    fn output_is_accurate_when_the_mean_is_far_from_zero() {
        // Planes of 64 values (position by position) and of 81 (plane by plane).
        for shape in [[4usize, 3, 8, 8], [4, 3, 9, 9]] {
            far_mean_is_accurate(shape);
        }
    }

    fn far_mean_is_accurate(shape: [usize; 4]) {
        let device = Device::flex().autodiff();
        let case = Case::new(21, shape, 100.0, (0.5, 1.5), (-1.0, 1.0), &device);
        let got = case.run(|x, g, b| {
            let y = batch_norm_clamp_train(x, g, b, 1e-5, (0.0, 6.0)).output;
            (y, vec![])
        });
        let (n, c, hw) = split(&shape);
        let m = (n * hw) as f64;
        let mut worst = 0.0f64;
        for ch in 0..c {
            let idx: Vec<usize> = (0..n)
                .flat_map(|b| (b * c + ch) * hw..(b * c + ch + 1) * hw)
                .collect();
            let mu = idx.iter().map(|&i| case.x[i] as f64).sum::<f64>() / m;
            let var = idx
                .iter()
                .map(|&i| (case.x[i] as f64 - mu).powi(2))
                .sum::<f64>()
                / m;
            let r = 1.0 / (var + 1e-5).sqrt();
            for &i in &idx {
                let y = (case.gamma[ch] as f64 * (case.x[i] as f64 - mu) * r
                    + case.beta[ch] as f64)
                    .clamp(0.0, 6.0);
                worst = worst.max((got[0][i] as f64 - y).abs());
                assert!(y.is_finite(), "y[{i}] = {} against {y}", got[0][i]);
            }
        }
        // Centred: 2.3e-6 here (the rounding of μ, an f32 near 100); folded: 8.9e-6.
        assert!(worst < 4.5e-6, "largest error {worst:e}");
    }

    #[test]
    fn statistics_match_the_definition() {
        // Channel 0: 1, 2, 3, 4 (mean 2.5, biased variance 1.25); channel 1: 10 four times.
        let x = [1.0, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 10.0];
        let (mean, var) = channel_stats(&x, 2, 2, 2);
        assert_eq!(mean, vec![2.5, 10.0]);
        assert!((var[0] - 1.25).abs() < 1e-7 && var[1] == 0.0, "{var:?}");
    }
}
