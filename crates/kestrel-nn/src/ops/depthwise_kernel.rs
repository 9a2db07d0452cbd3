//! Depthwise 2-D convolution on NCHW `f32` slices, for training: forward, input gradient and
//! weight gradient as direct loops.
//!
//! One k×k filter per channel (`groups = channels`, channel multiplier 1), square stride `s` and
//! dilation `d`, zero padding `p` on every side, no bias:
//!
//! `y[n,c,oy,ox] = Σ_{ky,kx} w[c,ky,kx] · x[n,c, oy·s − p + ky·d, ox·s − p + kx·d]`
//!
//! (terms whose input position falls outside the image are zero). The innermost loops run over a
//! row's output columns with the valid column range precomputed, so they have no bounds tests and
//! vectorise at stride 1. Forward and input gradient run one rayon task per (n, c) plane, the
//! weight gradient one per channel (summing over the batch), so no two tasks write to the same
//! memory and the result does not depend on the thread count.

use super::simd::{simd_kernel, sum_pairs};
use rayon::prelude::*;

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

/// The valid output columns of one kernel column: `ox` in `lo..hi` reads input column
/// `ox·s + off`, which lies in `0..W`.
#[derive(Clone, Copy, Debug)]
struct ColumnRange {
    lo: usize,
    hi: usize,
    off: isize,
}

impl DepthwiseGeometry {
    /// Output height `(H + 2p − d(k − 1) − 1) / s + 1`, or `None` if the kernel does not fit or
    /// a size is zero.
    pub fn out_height(&self) -> Option<usize> {
        out_size(
            self.height,
            self.kernel,
            self.stride,
            self.dilation,
            self.padding,
        )
    }

    /// Output width, as [`DepthwiseGeometry::out_height`].
    pub fn out_width(&self) -> Option<usize> {
        out_size(
            self.width,
            self.kernel,
            self.stride,
            self.dilation,
            self.padding,
        )
    }

    /// `(Ho, Wo)`; panics on a geometry that [`DepthwiseGeometry::out_height`] rejects (callers
    /// validate first).
    fn out_dims(&self) -> (usize, usize) {
        (
            self.out_height().expect("validated depthwise geometry"),
            self.out_width().expect("validated depthwise geometry"),
        )
    }

    /// The input row read by output row `oy` and kernel row `ky`, if inside the image.
    #[inline]
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let iy = (oy * self.stride + ky * self.dilation) as isize - self.padding as isize;
        (iy >= 0 && (iy as usize) < self.height).then_some(iy as usize)
    }

    /// The valid output-column range of each kernel column.
    fn column_ranges(&self, wo: usize) -> Vec<ColumnRange> {
        let s = self.stride as isize;
        (0..self.kernel)
            .map(|kx| {
                let off = (kx * self.dilation) as isize - self.padding as isize;
                // ox·s + off ≥ 0  ⇔  ox ≥ ceil(−off / s).
                let lo = if off >= 0 {
                    0
                } else {
                    ((-off + s - 1) / s) as usize
                };
                // ox·s + off ≤ W − 1  ⇔  ox ≤ floor((W − 1 − off) / s).
                let last = self.width as isize - 1 - off;
                let hi = if last < 0 {
                    0
                } else {
                    ((last / s) as usize + 1).min(wo)
                };
                ColumnRange {
                    lo: lo.min(hi),
                    hi,
                    off,
                }
            })
            .collect()
    }
}

fn out_size(n: usize, k: usize, s: usize, d: usize, p: usize) -> Option<usize> {
    if n == 0 || k == 0 || s == 0 || d == 0 {
        return None;
    }
    let span = d * (k - 1) + 1;
    let padded = n + 2 * p;
    (padded >= span).then(|| (padded - span) / s + 1)
}

/// `y` (N, C, Ho, Wo) from `x` (N, C, H, W) and `w` (C, 1, k, k).
pub fn forward(g: &DepthwiseGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let (hw, k2) = (g.height * g.width, g.kernel * g.kernel);
    debug_assert_eq!(x.len(), g.batch * g.channels * hw);
    debug_assert_eq!(w.len(), g.channels * k2);
    let cols = g.column_ranges(wo);
    let mut y = vec![0.0f32; g.batch * g.channels * ho * wo];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane, out)| {
            let c = plane % g.channels;
            let inp = &x[plane * hw..(plane + 1) * hw];
            let filt = &w[c * k2..(c + 1) * k2];
            forward_plane(g, &cols, inp, filt, out);
        });
    y
}

simd_kernel! {
    /// One (n, c) plane of [`forward`].
    fn forward_plane(g: &DepthwiseGeometry, cols: &[ColumnRange], inp: &[f32], filt: &[f32], out: &mut [f32]) {
        let (ho, wo) = g.out_dims();
        for oy in 0..ho {
            let out_row = &mut out[oy * wo..(oy + 1) * wo];
            for ky in 0..g.kernel {
                let Some(iy) = g.input_row(oy, ky) else {
                    continue;
                };
                let in_row = &inp[iy * g.width..(iy + 1) * g.width];
                for (kx, r) in cols.iter().enumerate() {
                    let wv = filt[ky * g.kernel + kx];
                    accumulate_row(&mut out_row[r.lo..r.hi], in_row, r, g.stride, wv);
                }
            }
        }
    }
}

/// `out[i] += wv · in_row[(lo + i)·s + off]` for the valid range `r`.
#[inline(always)]
fn accumulate_row(out: &mut [f32], in_row: &[f32], r: &ColumnRange, s: usize, wv: f32) {
    if r.hi <= r.lo {
        return;
    }
    let start = (r.lo * s) as isize + r.off;
    let start = start as usize;
    if s == 1 {
        let src = &in_row[start..start + out.len()];
        for (o, &v) in out.iter_mut().zip(src) {
            *o += wv * v;
        }
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            *o += wv * in_row[start + i * s];
        }
    }
}

/// `dx` (N, C, H, W) from the output gradient `dy` (N, C, Ho, Wo) and `w` (C, 1, k, k).
pub fn input_grad(g: &DepthwiseGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let (hw, k2) = (g.height * g.width, g.kernel * g.kernel);
    debug_assert_eq!(dy.len(), g.batch * g.channels * ho * wo);
    let cols = g.column_ranges(wo);
    let mut dx = vec![0.0f32; g.batch * g.channels * hw];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(hw).enumerate().for_each(|(plane, din)| {
        let c = plane % g.channels;
        let dout = &dy[plane * ho * wo..(plane + 1) * ho * wo];
        let filt = &w[c * k2..(c + 1) * k2];
        input_grad_plane(g, &cols, dout, filt, din);
    });
    dx
}

simd_kernel! {
    /// One (n, c) plane of [`input_grad`].
    fn input_grad_plane(g: &DepthwiseGeometry, cols: &[ColumnRange], dout: &[f32], filt: &[f32], din: &mut [f32]) {
        let (ho, wo) = g.out_dims();
        let s = g.stride;
        for oy in 0..ho {
            let dout_row = &dout[oy * wo..(oy + 1) * wo];
            for ky in 0..g.kernel {
                let Some(iy) = g.input_row(oy, ky) else {
                    continue;
                };
                let din_row = &mut din[iy * g.width..(iy + 1) * g.width];
                for (kx, r) in cols.iter().enumerate() {
                    if r.hi <= r.lo {
                        continue;
                    }
                    let wv = filt[ky * g.kernel + kx];
                    let start = ((r.lo * s) as isize + r.off) as usize;
                    let src = &dout_row[r.lo..r.hi];
                    if s == 1 {
                        let dst = &mut din_row[start..start + src.len()];
                        for (d, &v) in dst.iter_mut().zip(src) {
                            *d += wv * v;
                        }
                    } else {
                        for (i, &v) in src.iter().enumerate() {
                            din_row[start + i * s] += wv * v;
                        }
                    }
                }
            }
        }
    }
}

/// `dw` (C, 1, k, k) from the input `x` (N, C, H, W) and the output gradient `dy`
/// (N, C, Ho, Wo).
pub fn weight_grad(g: &DepthwiseGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (_, wo) = g.out_dims();
    let k2 = g.kernel * g.kernel;
    let cols = g.column_ranges(wo);
    let mut dw = vec![0.0f32; g.channels * k2];
    if dw.is_empty() {
        return dw;
    }
    dw.par_chunks_mut(k2).enumerate().for_each(|(c, acc)| {
        // Accumulate in f64 per channel: the sums run over N·Ho·Wo products.
        let mut sums = vec![0.0f64; k2];
        weight_grad_channel(g, &cols, x, dy, c, &mut sums);
        for (a, s) in acc.iter_mut().zip(sums) {
            *a = s as f32;
        }
    });
    dw
}

simd_kernel! {
    /// Channel `c` of [`weight_grad`], summed over the batch into `sums` (k² values).
    fn weight_grad_channel(g: &DepthwiseGeometry, cols: &[ColumnRange], x: &[f32], dy: &[f32], c: usize, sums: &mut [f64]) {
        let (ho, wo) = g.out_dims();
        let hw = g.height * g.width;
        let s = g.stride;
        for n in 0..g.batch {
            let plane = n * g.channels + c;
            let inp = &x[plane * hw..(plane + 1) * hw];
            let dout = &dy[plane * ho * wo..(plane + 1) * ho * wo];
            for oy in 0..ho {
                let dout_row = &dout[oy * wo..(oy + 1) * wo];
                for ky in 0..g.kernel {
                    let Some(iy) = g.input_row(oy, ky) else {
                        continue;
                    };
                    let in_row = &inp[iy * g.width..(iy + 1) * g.width];
                    for (kx, r) in cols.iter().enumerate() {
                        if r.hi <= r.lo {
                            continue;
                        }
                        let start = ((r.lo * s) as isize + r.off) as usize;
                        let src = &dout_row[r.lo..r.hi];
                        let dot: f32 = if s == 1 {
                            sum_pairs(src, &in_row[start..start + src.len()], |a, b| a * b)
                        } else {
                            strided_dot(src, &in_row[start..], s)
                        };
                        sums[ky * g.kernel + kx] += dot as f64;
                    }
                }
            }
        }
    }
}

/// `Σ a[i] · b[i·s]` with eight independent partial sums (so the compiler can vectorise it).
#[inline(always)]
fn strided_dot(a: &[f32], b: &[f32], s: usize) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for j in 0..8 {
            lanes[j] += a[i * 8 + j] * b[(i * 8 + j) * s];
        }
    }
    let mut tail = 0.0;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i * s];
    }
    lanes.iter().sum::<f32>() + tail
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
        // Padding other than "same", including none and more than the kernel needs.
        for padding in [0, 4] {
            v.push(DepthwiseGeometry {
                batch: 1,
                channels: 2,
                height: 6,
                width: 5,
                kernel: 3,
                stride: 2,
                dilation: 1,
                padding,
            });
        }
        v
    }

    #[test]
    fn forward_matches_the_definition() {
        let mut rng = Rng::new(1);
        for g in geometries() {
            let x = random(&mut rng, g.batch * g.channels * g.height * g.width);
            let w = random(&mut rng, g.channels * g.kernel * g.kernel);
            close(&forward(&g, &x, &w), &naive(&g, &x, &w), &format!("{g:?}"));
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
            let dx = input_grad(&g, &dy, &w);
            let want_dx: Vec<f32> = (0..nx)
                .map(|i| {
                    let mut e = vec![0.0; nx];
                    e[i] = 1.0;
                    inner(&dy, &naive(&g, &e, &w))
                })
                .collect();
            close(&dx, &want_dx, &format!("dx {g:?}"));
            let dw = weight_grad(&g, &x, &dy);
            let want_dw: Vec<f32> = (0..nw)
                .map(|i| {
                    let mut e = vec![0.0; nw];
                    e[i] = 1.0;
                    inner(&dy, &naive(&g, &x, &e))
                })
                .collect();
            close(&dw, &want_dw, &format!("dw {g:?}"));
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
