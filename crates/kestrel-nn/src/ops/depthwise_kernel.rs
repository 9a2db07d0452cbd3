//! Depthwise 2-D convolution on NCHW `f32` slices, for training: forward, input gradient and
//! weight gradient as direct loops.
//!
//! One k×k filter per channel (`groups = channels`, channel multiplier 1), square stride `s` and
//! dilation `d`, zero padding `p` on every side, no bias:
//!
//! `y[n,c,oy,ox] = Σ_{ky,kx} w[c,ky,kx] · x[n,c, oy·s − p + ky·d, ox·s − p + kx·d]`
//!
//! (terms whose input position falls outside the image are zero). Each plane is first copied onto
//! a zero background (padded; for the input gradient also spread out by the stride), so the
//! inner loops have no bounds tests: sixteen outputs at a time with the k² taps summed in
//! registers, vectorised with AVX2 where the CPU has it. Forward and input gradient run one rayon
//! task per (n, c) plane, the weight gradient one per channel (summing over the batch), so no two
//! tasks write to the same memory and the result does not depend on the thread count.
//!
//! Small input planes (at most 64 values) go to `depthwise_small` instead, which
//! works channels last.

use super::depthwise_small as small;
use super::flex_io;
use super::simd::{lane_sum, simd_kernel};
use crate::geometry::conv_out_len;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Shapes of one depthwise convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Channels C (= groups).
    pub channels: usize,
    /// Input height H.
    pub height: usize,
    /// Input width W.
    pub width: usize,
    /// Kernel size k (square).
    pub kernel: usize,
    /// Stride s.
    pub stride: usize,
    /// Dilation d.
    pub dilation: usize,
    /// Zero padding p on each side.
    pub padding: usize,
}

impl DepthwiseGeometry {
    /// Output height `(H + 2p − d(k − 1) − 1) / s + 1`, or `None` if the kernel does not fit or
    /// a size is zero.
    pub fn out_height(&self) -> Option<usize> {
        self.out_len(self.height)
    }

    /// Output width, as [`DepthwiseGeometry::out_height`].
    pub fn out_width(&self) -> Option<usize> {
        self.out_len(self.width)
    }

    /// The output length along an axis of `n` input samples; `None` also for an empty input.
    fn out_len(&self, n: usize) -> Option<usize> {
        if n == 0 {
            return None;
        }
        conv_out_len(n, self.kernel, self.stride, self.padding, self.dilation)
    }

    /// `(Ho, Wo)`; panics on a geometry that [`DepthwiseGeometry::out_height`] rejects (callers
    /// validate first).
    pub(super) fn out_dims(&self) -> (usize, usize) {
        (
            self.out_height().expect("validated depthwise geometry"),
            self.out_width().expect("validated depthwise geometry"),
        )
    }
}

/// A zero background with planes placed on it, reused from plane to plane of one geometry: the
/// background is cleared once, and every plane then overwrites the same positions, so the zeros
/// around them stay (no clearing per plane).
#[derive(Default)]
struct Canvas {
    buf: Vec<f32>,
    /// `(h, w, s, off, ph, pw)` of the planes placed so far.
    key: Option<(usize, usize, usize, isize, usize, usize)>,
}

impl Canvas {
    /// The `ph × pw` background with `src` (`h × w`) placed on it: `src[i][j]` lands at
    /// `(off + i·s, off + j·s)` (entries falling outside are dropped). With `s = 1` this is zero
    /// padding (`off > 0`) or cropping (`off < 0`); with `s > 1` it also spreads the values apart,
    /// as the input gradient of a strided convolution needs.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        src: &[f32],
        h: usize,
        w: usize,
        s: usize,
        off: isize,
        ph: usize,
        pw: usize,
    ) -> &[f32] {
        let key = (h, w, s, off, ph, pw);
        if self.key != Some(key) {
            self.buf.clear();
            // A row and sixteen floats of zeros past the plane, which the flattened kernels
            // read (their last block and taps run past the last row by less than that).
            self.buf.resize((ph + 1) * pw + FLAT_BLOCK, 0.0);
            self.key = Some(key);
        }
        // The source indices `i` whose position `off + i·s` lies in `0..n`.
        let inside = |n: usize, len: usize| {
            let first = if off >= 0 {
                0
            } else {
                off.unsigned_abs().div_ceil(s)
            };
            let end = (n as isize - off).max(0) as usize;
            first.min(len)..end.div_ceil(s).clamp(first.min(len), len)
        };
        let cols = inside(pw, w);
        for i in inside(ph, h) {
            let a = (off + (i * s) as isize) as usize;
            let row = &src[i * w..(i + 1) * w];
            let out = &mut self.buf[a * pw..(a + 1) * pw];
            let b0 = (off + (cols.start * s) as isize) as usize;
            if s == 1 {
                copy_row(&mut out[b0..b0 + cols.len()], &row[cols.clone()]);
            } else {
                for (k, &v) in row[cols.clone()].iter().enumerate() {
                    out[b0 + k * s] = v;
                }
            }
        }
        &self.buf
    }
}

/// A place a float can be written to: an `f32`, or a `MaybeUninit<f32>` of an output being
/// filled.
trait Slot {
    fn put(&mut self, v: f32);
}

impl Slot for f32 {
    #[inline(always)]
    fn put(&mut self, v: f32) {
        *self = v;
    }
}

impl Slot for MaybeUninit<f32> {
    #[inline(always)]
    fn put(&mut self, v: f32) {
        self.write(v);
    }
}

/// `L` floats of `src` from `i` into `dst` as one fixed-size move.
#[inline(always)]
fn put_block<const L: usize, D: Slot>(dst: &mut [D], src: &[f32], i: usize) {
    let b: [f32; L] = src[i..i + L].try_into().expect("L floats");
    for (d, v) in dst[i..i + L].iter_mut().zip(b) {
        d.put(v);
    }
}

/// `dst ← src` (the shorter length) in 16-, 8-, 4- and 1-float moves the compiler keeps inline
/// (rows here are short — 2 to 30 floats on small maps — and a `memcpy` call per row costs more
/// than the copy; a plain loop for the remainder is turned into such a call).
#[inline(always)]
fn copy_row<D: Slot>(dst: &mut [D], src: &[f32]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut i = 0;
    while i + 16 <= n {
        put_block::<16, D>(dst, src, i);
        i += 16;
    }
    if i + 8 <= n {
        put_block::<8, D>(dst, src, i);
        i += 8;
    }
    if i + 4 <= n {
        put_block::<4, D>(dst, src, i);
        i += 4;
    }
    for j in i..n {
        dst[j].put(src[j]);
    }
}

/// `acc[j] += coef(j) · row[base + j·s]` for the `L` lanes; unit and double strides are
/// fixed-shape loops the compiler vectorises.
#[inline(always)]
fn mul_acc<const L: usize>(
    acc: &mut [f32; L],
    row: &[f32],
    base: usize,
    s: usize,
    coef: impl Fn(usize) -> f32,
) {
    match s {
        1 => {
            let src = &row[base..base + L];
            for j in 0..L {
                acc[j] += coef(j) * src[j];
            }
        }
        2 => {
            let src = &row[base..base + 2 * L - 1];
            for j in 0..L {
                acc[j] += coef(j) * src[2 * j];
            }
        }
        _ => {
            for j in 0..L {
                acc[j] += coef(j) * row[base + j * s];
            }
        }
    }
}

/// `L` outputs of [`correlate`] from column `ox0` of row `oy`, the taps summed in an `L`-wide
/// register accumulator.
#[inline(always)]
fn corr_block<const L: usize>(
    c: &Correlation,
    plane: &[f32],
    filt: &[f32],
    oy: usize,
    ox0: usize,
    out: &mut [MaybeUninit<f32>],
) {
    let (k, s, d) = (c.kernel, c.stride, c.dilation);
    let mut acc = [0.0f32; L];
    for ky in 0..k {
        let row = &plane[(oy * s + ky * d) * c.pw..(oy * s + ky * d + 1) * c.pw];
        for kx in 0..k {
            let wv = filt[ky * k + kx];
            mul_acc(&mut acc, row, ox0 * s + kx * d, s, |_| wv);
        }
    }
    for (o, &a) in out[..L].iter_mut().zip(&acc) {
        o.write(a);
    }
}

/// One tap's share of [`correlate_grad`]: `Σ_{oy,ox} dy[oy][ox] · plane[oy·s + ky·d][ox·s + kx·d]`
/// over the columns `ox0..ox0 + L` of every row, in an `L`-wide register accumulator.
#[inline(always)]
fn grad_block<const L: usize>(
    c: &Correlation,
    plane: &[f32],
    dy: &[f32],
    (ky, kx): (usize, usize),
    ox0: usize,
) -> f32 {
    let (s, d) = (c.stride, c.dilation);
    let mut acc = [0.0f32; L];
    for oy in 0..c.ho {
        let g = &dy[oy * c.wo + ox0..oy * c.wo + ox0 + L];
        let row = &plane[(oy * s + ky * d) * c.pw..(oy * s + ky * d + 1) * c.pw];
        mul_acc(&mut acc, row, ox0 * s + kx * d, s, |j| g[j]);
    }
    lane_sum(acc)
}

/// The width of the next block of output columns: 16, 8 or 4 while that many remain, then 1.
#[inline(always)]
fn block_len(rem: usize) -> usize {
    match rem {
        16.. => 16,
        8.. => 8,
        4.. => 4,
        _ => 1,
    }
}

/// The shape of a correlation of a padded plane with a k×k filter.
#[derive(Clone, Copy)]
struct Correlation {
    /// Row length of the padded plane.
    pw: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    /// Output rows and columns.
    ho: usize,
    wo: usize,
}

impl Correlation {
    /// The correlation of `g`'s zero-padded input planes (`H + 2p` rows of `W + 2p`) with the
    /// filter, as the forward and the weight gradient make it; also returns the padded height.
    fn over_padded_input(g: &DepthwiseGeometry) -> (Self, usize) {
        let (ho, wo) = g.out_dims();
        let c = Correlation {
            pw: g.width + 2 * g.padding,
            kernel: g.kernel,
            stride: g.stride,
            dilation: g.dilation,
            ho,
            wo,
        };
        (c, g.height + 2 * g.padding)
    }
}

simd_kernel! {
    /// `out[oy][ox] = Σ_{ky,kx} filt[ky][kx] · plane[oy·s + ky·d][ox·s + kx·d]` over a padded
    /// plane (every tap inside), sixteen outputs at a time with the taps summed in registers.
    fn correlate(c: Correlation, plane: &[f32], filt: &[f32], out: &mut [MaybeUninit<f32>]) {
        for oy in 0..c.ho {
            let out_row = &mut out[oy * c.wo..(oy + 1) * c.wo];
            let mut ox0 = 0;
            while ox0 < c.wo {
                let len = block_len(c.wo - ox0);
                let o = &mut out_row[ox0..];
                match len {
                    16 => corr_block::<16>(&c, plane, filt, oy, ox0, o),
                    8 => corr_block::<8>(&c, plane, filt, oy, ox0, o),
                    4 => corr_block::<4>(&c, plane, filt, oy, ox0, o),
                    _ => corr_block::<1>(&c, plane, filt, oy, ox0, o),
                }
                ox0 += len;
            }
        }
    }
}

simd_kernel! {
    /// `sums[ky][kx] += Σ_{oy,ox} dy[oy][ox] · plane[oy·s + ky·d][ox·s + kx·d]` over a padded
    /// plane, each tap and block of columns summed down the plane in registers, then once into f64.
    fn correlate_grad(c: Correlation, plane: &[f32], dy: &[f32], sums: &mut [f64]) {
        let k = c.kernel;
        for ky in 0..k {
            for kx in 0..k {
                let mut total = 0.0f32;
                let mut ox0 = 0;
                while ox0 < c.wo {
                    let len = block_len(c.wo - ox0);
                    let t = (ky, kx);
                    total += match len {
                        16 => grad_block::<16>(&c, plane, dy, t, ox0),
                        8 => grad_block::<8>(&c, plane, dy, t, ox0),
                        4 => grad_block::<4>(&c, plane, dy, t, ox0),
                        _ => grad_block::<1>(&c, plane, dy, t, ox0),
                    };
                    ox0 += len;
                }
                sums[ky * k + kx] += total as f64;
            }
        }
    }
}

/// Lanes of a block of the flattened kernels.
const FLAT_BLOCK: usize = 16;

/// Output columns below which a stride-1 correlation runs on the flattened plane: on narrow maps
/// (MobileNets' 3×3 to 24×24 at small inputs) the row-by-row blocks are mostly 8-, 4- and 1-wide
/// tails, while the flattened form runs full blocks and wastes only the `pw − wo` padding
/// columns of each row.
const FLAT_BELOW: usize = 32;

impl Correlation {
    /// Whether this correlation runs flattened (see [`FLAT_BELOW`]).
    fn flat(&self) -> bool {
        self.stride == 1 && self.wo < FLAT_BELOW
    }

    /// Length of the flattened output: `ho` rows of `pw`, rounded up to whole blocks.
    fn flat_len(&self) -> usize {
        (self.ho * self.pw).div_ceil(FLAT_BLOCK) * FLAT_BLOCK
    }
}

/// `acc[j] += wv · src[j]` over `L` lanes.
#[inline(always)]
fn axpy<const L: usize>(acc: &mut [f32; L], wv: f32, src: &[f32]) {
    let src = &src[..L];
    for j in 0..L {
        acc[j] += wv * src[j];
    }
}

/// `L` outputs of [`correlate_flat`] from flat position `t`.
#[inline(always)]
fn flat_block<const L: usize>(c: &Correlation, plane: &[f32], filt: &[f32], t: usize) -> [f32; L] {
    let (k, d, pw) = (c.kernel, c.dilation, c.pw);
    let mut acc = [0.0f32; L];
    for ky in 0..k {
        let row = &plane[t + ky * d * pw..];
        for kx in 0..k {
            axpy(&mut acc, filt[ky * k + kx], &row[kx * d..]);
        }
    }
    acc
}

simd_kernel! {
    /// Stride-1 [`correlate`] on the flattened padded plane (rows of `pw` one after another,
    /// zeros past the end): `flat[t] = Σ_{ky,kx} filt[ky][kx] · plane[t + ky·d·pw + kx·d]`, so
    /// output `(oy, ox)` is `flat[oy·pw + ox]`; columns `ox ≥ wo` are discarded by the caller.
    fn correlate_flat(c: Correlation, plane: &[f32], filt: &[f32], flat: &mut [f32]) {
        let mut t = 0;
        while t < flat.len() {
            if t + 4 * FLAT_BLOCK <= flat.len() {
                let a = flat_block::<{ 4 * FLAT_BLOCK }>(&c, plane, filt, t);
                flat[t..t + 4 * FLAT_BLOCK].copy_from_slice(&a);
                t += 4 * FLAT_BLOCK;
            } else {
                let a = flat_block::<FLAT_BLOCK>(&c, plane, filt, t);
                flat[t..t + FLAT_BLOCK].copy_from_slice(&a);
                t += FLAT_BLOCK;
            }
        }
    }
}

/// `Σ_{t < len} g[t] · v[t]` (`len` a multiple of [`FLAT_BLOCK`]) in `L` lanes.
#[inline(always)]
fn dot_blocks<const L: usize>(g: &[f32], v: &[f32], len: usize) -> f32 {
    let mut acc = [0.0f32; L];
    let mut t = 0;
    while t + L <= len {
        let (g, v) = (&g[t..t + L], &v[t..t + L]);
        for j in 0..L {
            acc[j] += g[j] * v[j];
        }
        t += L;
    }
    while t < len {
        let (g, v) = (&g[t..t + FLAT_BLOCK], &v[t..t + FLAT_BLOCK]);
        for j in 0..FLAT_BLOCK {
            acc[j] += g[j] * v[j];
        }
        t += FLAT_BLOCK;
    }
    lane_sum(acc)
}

simd_kernel! {
    /// Stride-1 [`correlate_grad`] on flattened planes: `dyp` is the output gradient laid out
    /// on rows of `pw` with zeros in the columns `≥ wo` and past the end, so
    /// `sums[ky][kx] += Σ_t dyp[t] · plane[t + ky·d·pw + kx·d]` over `t < len` (whole blocks).
    fn correlate_grad_flat(c: Correlation, plane: &[f32], dyp: &[f32], len: usize, sums: &mut [f64]) {
        let (k, d, pw) = (c.kernel, c.dilation, c.pw);
        for ky in 0..k {
            for kx in 0..k {
                let src = &plane[ky * d * pw + kx * d..];
                // Four blocks of accumulators on long planes; one on short ones, whose sum
                // would otherwise cost more than their products.
                let total = if len >= 16 * FLAT_BLOCK {
                    dot_blocks::<{ 4 * FLAT_BLOCK }>(dyp, src, len)
                } else {
                    dot_blocks::<FLAT_BLOCK>(dyp, src, len)
                };
                sums[ky * k + kx] += total as f64;
            }
        }
    }
}

/// [`correlate`] or, where it pays, [`correlate_flat`] through `flat` (scratch) and a copy of
/// the valid columns.
fn correlate_any(
    c: Correlation,
    plane: &[f32],
    filt: &[f32],
    out: &mut [MaybeUninit<f32>],
    flat: &mut Vec<f32>,
) {
    if !c.flat() {
        return correlate(c, plane, filt, out);
    }
    flat.resize(c.flat_len(), 0.0);
    correlate_flat(c, plane, filt, flat);
    for (o, row) in out.chunks_exact_mut(c.wo).zip(flat.chunks(c.pw)) {
        copy_row(o, &row[..c.wo]);
    }
}

/// Per-thread scratch of the kernels: the padded input (or spread gradient) plane, a second
/// plane for the flattened weight gradient's output gradient, and the flattened output.
#[derive(Default)]
struct Scratch {
    canvas: Canvas,
    dy: Canvas,
    flat: Vec<f32>,
}

/// `y` (N, C, Ho, Wo) from `x` (N, C, H, W) and `w` (C, 1, k, k): each plane is zero-padded once,
/// then correlated with its filter.
pub fn forward(g: &DepthwiseGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    if small::applies(g) {
        return small::forward(g, x, w);
    }
    forward_planes(g, x, w)
}

/// [`forward`] plane by plane.
fn forward_planes(g: &DepthwiseGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let (hw, k2) = (g.height * g.width, g.kernel * g.kernel);
    debug_assert_eq!(x.len(), g.batch * g.channels * hw);
    debug_assert_eq!(w.len(), g.channels * k2);
    let len = g.batch * g.channels * ho * wo;
    if len == 0 {
        return Vec::new();
    }
    let (c, ph) = Correlation::over_padded_input(g);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(ho * wo).enumerate().for_each_init(
            Scratch::default,
            |sc, (plane, out)| {
                let ch = plane % g.channels;
                let inp = &x[plane * hw..(plane + 1) * hw];
                let pad = sc
                    .canvas
                    .place(inp, g.height, g.width, 1, g.padding as isize, ph, c.pw);
                correlate_any(c, pad, &w[ch * k2..(ch + 1) * k2], out, &mut sc.flat);
            },
        );
    };
    // SAFETY: `correlate` writes all `ho × wo` outputs of every plane.
    unsafe { flex_io::filled(len, fill) }
}

/// `dx` (N, C, H, W) from the output gradient `dy` (N, C, Ho, Wo) and `w` (C, 1, k, k): the
/// gradient plane is spread out by the stride and padded by `(k − 1)·d − p`, then correlated with
/// the filter turned by 180°, at stride 1.
pub fn input_grad(g: &DepthwiseGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    if small::applies(g) {
        return small::input_grad(g, dy, w);
    }
    input_grad_planes(g, dy, w)
}

/// [`input_grad`] plane by plane.
fn input_grad_planes(g: &DepthwiseGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let (hw, k2) = (g.height * g.width, g.kernel * g.kernel);
    debug_assert_eq!(dy.len(), g.batch * g.channels * ho * wo);
    let len = g.batch * g.channels * hw;
    if len == 0 {
        return Vec::new();
    }
    let span = (g.kernel - 1) * g.dilation;
    let q = span as isize - g.padding as isize;
    let (ph, pw) = (g.height + span, g.width + span);
    let c = Correlation {
        pw,
        kernel: g.kernel,
        stride: 1,
        dilation: g.dilation,
        ho: g.height,
        wo: g.width,
    };
    let flipped: Vec<f32> = w.chunks(k2).flat_map(|f| f.iter().rev().copied()).collect();
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(hw)
            .enumerate()
            .for_each_init(Scratch::default, |sc, (plane, din)| {
                let ch = plane % g.channels;
                let dout = &dy[plane * ho * wo..(plane + 1) * ho * wo];
                let pad = sc.canvas.place(dout, ho, wo, g.stride, q, ph, pw);
                let filt = &flipped[ch * k2..(ch + 1) * k2];
                correlate_any(c, pad, filt, din, &mut sc.flat);
            });
    };
    // SAFETY: `correlate` writes all `h × w` values of every plane.
    unsafe { flex_io::filled(len, fill) }
}

/// `dw` (C, 1, k, k) from the input `x` (N, C, H, W) and the output gradient `dy`
/// (N, C, Ho, Wo): per channel, the sum over the batch of the correlation of the padded input
/// plane with the gradient plane (in f64 across planes).
pub fn weight_grad(g: &DepthwiseGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if small::applies(g) {
        return small::weight_grad(g, x, dy);
    }
    weight_grad_planes(g, x, dy)
}

/// [`weight_grad`] plane by plane.
fn weight_grad_planes(g: &DepthwiseGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let (hw, k2) = (g.height * g.width, g.kernel * g.kernel);
    let mut dw = vec![0.0f32; g.channels * k2];
    if dw.is_empty() {
        return dw;
    }
    let (c, ph) = Correlation::over_padded_input(g);
    dw.par_chunks_mut(k2)
        .enumerate()
        .for_each_init(Scratch::default, |sc, (ch, acc)| {
            let mut sums = vec![0.0f64; k2];
            for n in 0..g.batch {
                let plane = n * g.channels + ch;
                let padded = sc.canvas.place(
                    &x[plane * hw..(plane + 1) * hw],
                    g.height,
                    g.width,
                    1,
                    g.padding as isize,
                    ph,
                    c.pw,
                );
                let dy = &dy[plane * ho * wo..(plane + 1) * ho * wo];
                if c.flat() {
                    let dyp = sc.dy.place(dy, ho, wo, 1, 0, ho, c.pw);
                    correlate_grad_flat(c, padded, dyp, c.flat_len(), &mut sums);
                } else {
                    correlate_grad(c, padded, dy, &mut sums);
                }
            }
            for (a, s) in acc.iter_mut().zip(sums) {
                *a = s as f32;
            }
        });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_data::rng::Rng;

    /// The definition, term by term with explicit bounds tests.
    fn naive(g: &DepthwiseGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
        let (ho, wo) = (g.out_height().unwrap(), g.out_width().unwrap());
        let k = g.kernel;
        let mut y = vec![0.0f32; g.batch * g.channels * ho * wo];
        for n in 0..g.batch {
            for c in 0..g.channels {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0.0f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy =
                                    (oy * g.stride + ky * g.dilation) as i64 - g.padding as i64;
                                let ix =
                                    (ox * g.stride + kx * g.dilation) as i64 - g.padding as i64;
                                if iy < 0 || ix < 0 || iy >= g.height as i64 || ix >= g.width as i64
                                {
                                    continue;
                                }
                                let xi = ((n * g.channels + c) * g.height + iy as usize) * g.width
                                    + ix as usize;
                                acc += (w[(c * k + ky) * k + kx] * x[xi]) as f64;
                            }
                        }
                        y[((n * g.channels + c) * ho + oy) * wo + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                "{what}[{i}]: {p} vs {q}"
            );
        }
    }

    fn geometries() -> Vec<DepthwiseGeometry> {
        let mut v = Vec::new();
        for (h, w) in [(7, 9), (1, 1), (2, 5), (8, 8)] {
            for kernel in [1, 3, 5] {
                for stride in [1, 2, 3] {
                    for dilation in [1, 2] {
                        let g = DepthwiseGeometry {
                            batch: 2,
                            channels: 3,
                            height: h,
                            width: w,
                            kernel,
                            stride,
                            dilation,
                            padding: (kernel - 1) / 2 * dilation,
                        };
                        if g.out_height().is_some() && g.out_width().is_some() {
                            v.push(g);
                        }
                    }
                }
            }
        }
        // Rows long enough for the 16-, 8- and 4-wide column blocks and the single-column tail.
        for stride in [1, 2] {
            v.push(DepthwiseGeometry {
                batch: 1,
                channels: 2,
                height: 4,
                width: 61,
                kernel: 3,
                stride,
                dilation: 1,
                padding: 1,
            });
        }
        // Padding other than "same", including none and more than the kernel needs.
        for (padding, stride) in [(0, 1), (0, 2), (4, 1), (4, 2)] {
            v.push(DepthwiseGeometry {
                batch: 1,
                channels: 2,
                height: 6,
                width: 5,
                kernel: 3,
                stride,
                dilation: 1,
                padding,
            });
        }
        // Channels past one block of 64 and not a multiple of 16, a batch of 3, on maps the
        // channels-last path takes.
        for (h, w, stride) in [(3, 3, 1), (2, 2, 1), (6, 5, 2)] {
            v.push(DepthwiseGeometry {
                batch: 3,
                channels: 70,
                height: h,
                width: w,
                kernel: 3,
                stride,
                dilation: 1,
                padding: 1,
            });
        }
        // Flattened planes longer than one 64-lane block, with dilation.
        for dilation in [1, 2] {
            v.push(DepthwiseGeometry {
                batch: 2,
                channels: 2,
                height: 13,
                width: 29,
                kernel: 3,
                stride: 1,
                dilation,
                padding: dilation,
            });
        }
        v
    }

    /// A kernel: forward, input gradient or weight gradient.
    type Kernel = fn(&DepthwiseGeometry, &[f32], &[f32]) -> Vec<f32>;

    /// Both implementations, `(name, forward, input_grad, weight_grad)`: plane by plane and
    /// channels last, each run on every geometry whichever [`forward`] would pick.
    fn paths() -> [(&'static str, Kernel, Kernel, Kernel); 2] {
        [
            (
                "planes",
                forward_planes,
                input_grad_planes,
                weight_grad_planes,
            ),
            (
                "small",
                small::forward,
                small::input_grad,
                small::weight_grad,
            ),
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        let mut rng = Rng::new(1);
        for g in geometries() {
            let x = random(&mut rng, g.batch * g.channels * g.height * g.width);
            let w = random(&mut rng, g.channels * g.kernel * g.kernel);
            let want = naive(&g, &x, &w);
            close(&forward(&g, &x, &w), &want, &format!("{g:?}"));
            for (name, fwd, _, _) in paths() {
                close(&fwd(&g, &x, &w), &want, &format!("{name} {g:?}"));
            }
        }
    }

    /// The convolution is linear in x and in w, so ⟨dy, conv(x, w)⟩ = ⟨input_grad(dy, w), x⟩ =
    /// ⟨weight_grad(x, dy), w⟩; with unit vectors for x (or w) that pins every gradient entry
    /// to the definition.
    #[test]
    fn gradients_are_the_adjoints_of_the_definition() {
        let mut rng = Rng::new(2);
        for g in geometries() {
            let nx = g.batch * g.channels * g.height * g.width;
            let nw = g.channels * g.kernel * g.kernel;
            let ny = g.batch * g.channels * g.out_height().unwrap() * g.out_width().unwrap();
            let x = random(&mut rng, nx);
            let w = random(&mut rng, nw);
            let dy = random(&mut rng, ny);
            let inner = |a: &[f32], b: &[f32]| -> f32 {
                a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>() as f32
            };
            let want_dx: Vec<f32> = (0..nx)
                .map(|i| {
                    let mut e = vec![0.0; nx];
                    e[i] = 1.0;
                    inner(&dy, &naive(&g, &e, &w))
                })
                .collect();
            let want_dw: Vec<f32> = (0..nw)
                .map(|i| {
                    let mut e = vec![0.0; nw];
                    e[i] = 1.0;
                    inner(&dy, &naive(&g, &x, &e))
                })
                .collect();
            close(&input_grad(&g, &dy, &w), &want_dx, &format!("dx {g:?}"));
            close(&weight_grad(&g, &x, &dy), &want_dw, &format!("dw {g:?}"));
            for (name, _, dx, dw) in paths() {
                close(&dx(&g, &dy, &w), &want_dx, &format!("{name} dx {g:?}"));
                close(&dw(&g, &x, &dy), &want_dw, &format!("{name} dw {g:?}"));
            }
        }
    }

    #[test]
    fn output_sizes_follow_the_convolution_formula() {
        let g = DepthwiseGeometry {
            batch: 1,
            channels: 1,
            height: 56,
            width: 55,
            kernel: 3,
            stride: 2,
            dilation: 2,
            padding: 2,
        };
        // (56 + 4 − 5) / 2 + 1 = 28, (55 + 4 − 5) / 2 + 1 = 28.
        assert_eq!((g.out_height(), g.out_width()), (Some(28), Some(28)));
        let too_small = DepthwiseGeometry {
            padding: 0,
            height: 4,
            ..g
        };
        assert_eq!(too_small.out_height(), None);
    }
}
