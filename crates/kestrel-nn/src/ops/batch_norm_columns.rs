//! Training-mode BatchNorm's passes on small planes, position by position.
//!
//! On planes of a few values (a 2×2 or 6×6 map) the per-channel loops of
//! [`super::batch_norm_train`] are mostly calls and scalar tails. One image's planes are
//! contiguous, `C·hw` values, so here every pass runs along that whole row with the per-channel
//! constants spread to one value per position: the sums first add the same position of every
//! image (in f32, lane by lane), then a channel's `hw` positions (in f64); the elementwise passes
//! run image by image. The arithmetic of each value is the plane kernels' — the clamp mask in
//! particular is recomputed with the forward's operations, so it agrees with the forward's clamp
//! bit for bit — only the order in which the sums add up differs.

use super::flex_io;
use super::simd::simd_kernel;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Planes of at most this many values take this path.
const SMALL_PLANE: usize = 64;

/// Positions per task of the sums, about.
const TASK: usize = 4096;

/// Whether planes of `hw` values run here.
pub(super) fn applies(hw: usize) -> bool {
    hw > 0 && hw <= SMALL_PLANE
}

/// `out[ch·hw + i] = v[ch]`: a per-channel value at each position of the channel's plane.
fn spread(v: impl IntoIterator<Item = f32>, hw: usize) -> Vec<f32> {
    let v = v.into_iter();
    let mut out = Vec::with_capacity(v.size_hint().0 * hw);
    for a in v {
        out.resize(out.len() + hw, a);
    }
    out
}

/// Ranges of channels with about [`TASK`] positions each, covering `0..c`.
fn channel_ranges(c: usize, hw: usize) -> Vec<Range<usize>> {
    let per = TASK.div_ceil(hw).max(1);
    (0..c).step_by(per).map(|a| a..(a + per).min(c)).collect()
}

/// The per-range pairs of per-channel values of [`channel_ranges`], each side joined in channel
/// order.
fn joined<T: Clone>(parts: Vec<(Vec<T>, Vec<T>)>) -> (Vec<T>, Vec<T>) {
    let (a, b): (Vec<Vec<T>>, Vec<Vec<T>>) = parts.into_iter().unzip();
    (a.concat(), b.concat())
}

/// Per-channel f64 totals of per-position f32 sums.
fn per_channel(s: &[f32], hw: usize) -> impl Iterator<Item = f64> + '_ {
    s.chunks_exact(hw)
        .map(|p| p.iter().map(|&v| v as f64).sum::<f64>())
}

simd_kernel! {
    /// `s += x − shift`, `q += (x − shift)²`, position by position.
    fn shifted_columns(x: &[f32], shift: &[f32], s: &mut [f32], q: &mut [f32]) {
        for (((s, q), &v), &sh) in s.iter_mut().zip(q.iter_mut()).zip(x).zip(shift) {
            let d = v - sh;
            *s += d;
            *q += d * d;
        }
    }
}

/// Per-channel mean and biased variance of `x` (N, C, hw), as
/// [`super::batch_norm_train::channel_stats`]: shifted by the channel's first value.
pub(super) fn channel_stats(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let m = (n * hw) as f64;
    let row = c * hw;
    let parts: Vec<(Vec<f32>, Vec<f32>)> = channel_ranges(c, hw)
        .into_par_iter()
        .map(|r| {
            let cols = r.start * hw..r.end * hw;
            let shift = spread(r.clone().map(|ch| x[ch * hw]), hw);
            let (mut s, mut q) = (vec![0.0f32; cols.len()], vec![0.0f32; cols.len()]);
            for b in 0..n {
                let xs = &x[b * row + cols.start..b * row + cols.end];
                shifted_columns(xs, &shift, &mut s, &mut q);
            }
            per_channel(&s, hw)
                .zip(per_channel(&q, hw))
                .zip(r)
                .map(|((s, q), ch)| {
                    let mean_shifted = s / m;
                    let var = (q / m - mean_shifted * mean_shifted).max(0.0);
                    ((x[ch * hw] as f64 + mean_shifted) as f32, var as f32)
                })
                .unzip()
        })
        .collect();
    joined(parts)
}

/// The forward's affine map and clamp per position: `y = clamp((x − mean)·scale + β, lo, hi)`
/// with `scale = γ·r`, each spread over the channel's plane.
#[derive(Clone, Copy)]
pub(super) struct Affine<'a> {
    /// μ per position.
    pub mean: &'a [f32],
    /// γ·r per position.
    pub scale: &'a [f32],
    /// β per position.
    pub beta: &'a [f32],
    /// Lower clamp bound.
    pub lo: f32,
    /// Upper clamp bound.
    pub hi: f32,
}

/// The per-position copies behind an [`Affine`].
pub(super) struct Spread {
    mean: Vec<f32>,
    scale: Vec<f32>,
    beta: Vec<f32>,
    lo: f32,
    hi: f32,
}

impl Spread {
    /// Spreads μ, γ·r (computed as the plane kernels compute it) and β over planes of `hw`.
    pub(super) fn new(
        mean: &[f32],
        inv_std: &[f32],
        gamma: &[f32],
        beta: &[f32],
        (lo, hi): (f32, f32),
        hw: usize,
    ) -> Spread {
        Spread {
            mean: spread(mean.iter().copied(), hw),
            scale: spread(gamma.iter().zip(inv_std).map(|(&g, &r)| g * r), hw),
            beta: spread(beta.iter().copied(), hw),
            lo,
            hi,
        }
    }

    pub(super) fn affine(&self) -> Affine<'_> {
        Affine {
            mean: &self.mean,
            scale: &self.scale,
            beta: &self.beta,
            lo: self.lo,
            hi: self.hi,
        }
    }
}

simd_kernel! {
    /// `out = clamp((x − mean)·scale + β, lo, hi)` along one image's row (NaN passes through).
    fn affine_row(out: &mut [MaybeUninit<f32>], x: &[f32], a: Affine) {
        let coefs = a.mean.iter().zip(a.scale).zip(a.beta);
        for ((o, &v), ((&mu, &sc), &b)) in out.iter_mut().zip(x).zip(coefs) {
            o.write(((v - mu) * sc + b).clamp(a.lo, a.hi));
        }
    }
}

/// `y` of [`super::batch_norm_train::normalize`], image by image.
pub(super) fn normalize(x: &[f32], row: usize, a: Affine) -> Vec<f32> {
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(row)
            .zip(x.par_chunks(row))
            .for_each(|(out, xs)| affine_row(out, xs, a));
    };
    // SAFETY: every image's row of `y` is written by `affine_row` from the row of `x` of the
    // same length.
    unsafe { flex_io::filled(x.len(), fill) }
}

/// `g` where the forward's unclamped output `(x − μ)·scale + β` lies strictly inside the clamp
/// bounds `lo < · < hi` (or always without `CLAMP`), else 0.
#[inline(always)]
fn masked<const CLAMP: bool>(g: f32, x: f32, mu: f32, sc: f32, b: f32, lo: f32, hi: f32) -> f32 {
    if !CLAMP {
        return g;
    }
    let y = (x - mu) * sc + b;
    if y > lo && y < hi {
        g
    } else {
        0.0
    }
}

/// [`grad_columns`] with the clamp decided at compile time.
#[inline(always)]
fn grad_columns_with<const CLAMP: bool>(
    dy: &[f32],
    x: &[f32],
    p: Affine,
    a: &mut [f32],
    b: &mut [f32],
) {
    let coefs = p.mean.iter().zip(p.scale).zip(p.beta);
    for ((((a, b), &g), &v), ((&mu, &sc), &be)) in
        a.iter_mut().zip(b.iter_mut()).zip(dy).zip(x).zip(coefs)
    {
        let gm = masked::<CLAMP>(g, v, mu, sc, be, p.lo, p.hi);
        *a += gm;
        *b += gm * (v - mu);
    }
}

simd_kernel! {
    /// `a += g`, `b += g·(x − μ)` position by position, `g` the output gradient masked by the
    /// clamp when `clamp`.
    fn grad_columns(dy: &[f32], x: &[f32], p: Affine, clamp: bool, a: &mut [f32], b: &mut [f32]) {
        if clamp {
            grad_columns_with::<true>(dy, x, p, a, b)
        } else {
            grad_columns_with::<false>(dy, x, p, a, b)
        }
    }
}

/// Per-channel `(Σ g, Σ g·(x − μ))` of the backward's first pass over `x` and `dy`
/// (N, C, hw), `g` masked by the clamp when `clamp`.
pub(super) fn grad_sums(
    x: &[f32],
    dy: &[f32],
    (n, c, hw): (usize, usize, usize),
    a: Affine,
    clamp: bool,
) -> (Vec<f64>, Vec<f64>) {
    let row = c * hw;
    let parts: Vec<(Vec<f64>, Vec<f64>)> = channel_ranges(c, hw)
        .into_par_iter()
        .map(|r| {
            let cols = r.start * hw..r.end * hw;
            let part = Affine {
                mean: &a.mean[cols.clone()],
                scale: &a.scale[cols.clone()],
                beta: &a.beta[cols.clone()],
                ..a
            };
            let (mut s, mut t) = (vec![0.0f32; cols.len()], vec![0.0f32; cols.len()]);
            for b in 0..n {
                let span = b * row + cols.start..b * row + cols.end;
                grad_columns(&dy[span.clone()], &x[span], part, clamp, &mut s, &mut t);
            }
            (per_channel(&s, hw).collect(), per_channel(&t, hw).collect())
        })
        .collect();
    joined(parts)
}

/// The backward's second pass per position: `dx = k·(g − mean_dy − (x − μ)·coef)`.
pub(super) struct DxTerms {
    /// `k = γ·r` per position.
    pub k: Vec<f32>,
    /// `Σ g / m` per position.
    pub mean_dy: Vec<f32>,
    /// `r²·Σ g·(x − μ) / m` per position.
    pub coef: Vec<f32>,
}

impl DxTerms {
    /// Each channel's `(k, mean_dy, coef)` spread over planes of `hw`.
    pub(super) fn new(per_channel: &[(f32, f32, f32)], hw: usize) -> DxTerms {
        DxTerms {
            k: spread(per_channel.iter().map(|t| t.0), hw),
            mean_dy: spread(per_channel.iter().map(|t| t.1), hw),
            coef: spread(per_channel.iter().map(|t| t.2), hw),
        }
    }
}

/// [`dx_row`] with the clamp decided at compile time.
#[inline(always)]
fn dx_row_with<const CLAMP: bool>(
    dy: &mut [f32],
    x: &[f32],
    p: Affine,
    t: (&[f32], &[f32], &[f32]),
) {
    let coefs = p.mean.iter().zip(p.scale).zip(p.beta);
    let terms = t.0.iter().zip(t.1).zip(t.2);
    for (((g, &v), ((&mu, &sc), &be)), ((&k, &md), &cf)) in
        dy.iter_mut().zip(x).zip(coefs).zip(terms)
    {
        let gm = masked::<CLAMP>(*g, v, mu, sc, be, p.lo, p.hi);
        *g = k * (gm - md - (v - mu) * cf);
    }
}

simd_kernel! {
    /// [`DxTerms`]' formula along one image's row, in place over the output gradient.
    fn dx_row(dy: &mut [f32], x: &[f32], p: Affine, clamp: bool, k: &[f32], mean_dy: &[f32], coef: &[f32]) {
        if clamp {
            dx_row_with::<true>(dy, x, p, (k, mean_dy, coef))
        } else {
            dx_row_with::<false>(dy, x, p, (k, mean_dy, coef))
        }
    }
}

/// The backward's second pass, image by image, overwriting `dy` with `dx`.
pub(super) fn dx(dy: &mut [f32], x: &[f32], row: usize, a: Affine, clamp: bool, t: &DxTerms) {
    dy.par_chunks_mut(row)
        .zip(x.par_chunks(row))
        .for_each(|(g, xs)| dx_row(g, xs, a, clamp, &t.k, &t.mean_dy, &t.coef));
}
