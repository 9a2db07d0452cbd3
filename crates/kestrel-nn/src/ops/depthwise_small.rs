//! Depthwise convolution on small maps, channels last: forward, input gradient and weight
//! gradient of the same convolution as [`super::depthwise_kernel`].
//!
//! On maps of a few pixels (a MobileNet's 6×6, 3×3 and 2×2 maps at small inputs) the
//! plane-by-plane kernels spend their time per plane — placing it on a padded background, a
//! call, a block of lanes that is mostly padding — rather than per value. Here a block of
//! channels of one image is first laid out channels last on a zero-padded grid
//! (`[y][x][channel]`, the channels a multiple of sixteen lanes apart), so that each tap of each
//! output pixel is one multiply-add over sixteen channels at a time; results go back to their
//! NCHW planes value by value.
//!
//! Forward and input gradient run one rayon task per (image, block of [`BLOCK`] channels), the
//! weight gradient one per block of [`LANES`] channels (summing over the batch, in f64 across
//! images), so no two tasks write the same memory and the result does not depend on the thread
//! count. The taps are summed in the same order as the plane kernels' forward.

use super::depthwise_kernel::DepthwiseGeometry;
use super::flex_io;
use super::simd::simd_kernel;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Input planes of at most this many values take this path.
const SMALL_PLANE: usize = 64;

/// Channels per multiply-add.
const LANES: usize = 16;

/// Channels per task of the forward and the input gradient.
const BLOCK: usize = 64;

/// Whether `g` runs here rather than plane by plane: its input planes are small.
pub(super) fn applies(g: &DepthwiseGeometry) -> bool {
    g.height * g.width <= SMALL_PLANE
}

/// One block of channels laid out channels last on the zero-padded input grid.
#[derive(Clone, Copy)]
struct Grid {
    /// Input height and width.
    h: usize,
    w: usize,
    /// Padding on every side.
    p: usize,
    /// Padded row length `w + 2p`.
    wp: usize,
    /// Output height and width.
    ho: usize,
    wo: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    /// Floats from one grid position to the next: the block's channels rounded up to [`LANES`].
    lanes: usize,
}

impl Grid {
    fn new(g: &DepthwiseGeometry, channels: usize) -> Grid {
        let (ho, wo) = g.out_dims();
        Grid {
            h: g.height,
            w: g.width,
            p: g.padding,
            wp: g.width + 2 * g.padding,
            ho,
            wo,
            kernel: g.kernel,
            stride: g.stride,
            dilation: g.dilation,
            lanes: channels.div_ceil(LANES) * LANES,
        }
    }

    /// Floats of the padded grid.
    fn len(&self) -> usize {
        (self.h + 2 * self.p) * self.wp * self.lanes
    }

    /// Offset of the first lane of padded position `(y, x)`.
    #[inline(always)]
    fn at(&self, y: usize, x: usize) -> usize {
        (y * self.wp + x) * self.lanes
    }

    /// Offset of the lanes tap `(ky, kx)` of output `o` (row-major) reads.
    #[inline(always)]
    fn tap(&self, o: usize, ky: usize, kx: usize) -> usize {
        let (oy, ox) = (o / self.wo, o % self.wo);
        let (s, d) = (self.stride, self.dilation);
        self.at(oy * s + ky * d, ox * s + kx * d)
    }
}

/// Lays out `cw` planes (`src`, `h × w` each) channels last inside the padding of `grid`
/// (`dst`, whose padding is zero and stays so).
fn lay_out(grid: &Grid, src: &[f32], cw: usize, dst: &mut [f32]) {
    let hw = grid.h * grid.w;
    for (c, plane) in src.chunks_exact(hw).take(cw).enumerate() {
        for (iy, row) in plane.chunks_exact(grid.w).enumerate() {
            let base = grid.at(iy + grid.p, grid.p) + c;
            for (ix, &v) in row.iter().enumerate() {
                dst[base + ix * grid.lanes] = v;
            }
        }
    }
}

/// Every block's filters tap-major, block after block: block `b` (channels `b·block ..`,
/// `cw` of them, lanes rounded up to [`LANES`]) starts at `b·block·k²` and holds
/// `[t·lanes + c] = w[(b·block + c)·k² + t]` (lanes past `cw` zero).
fn tap_table(w: &[f32], channels: usize, k2: usize, block: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; channels.div_ceil(LANES) * LANES * k2];
    for c0 in (0..channels).step_by(block) {
        let cw = block.min(channels - c0);
        let lanes = cw.div_ceil(LANES) * LANES;
        let table = &mut out[c0 * k2..][..lanes * k2];
        for c in 0..cw {
            for (t, &v) in w[(c0 + c) * k2..][..k2].iter().enumerate() {
                table[t * lanes + c] = v;
            }
        }
    }
    out
}

/// The output gradient of output `o` for lanes `j·16 ..`: `dy[(j·16 + l)·howo + o]`, zero past
/// `cw` channels.
#[inline(always)]
fn gather(dy: &[f32], howo: usize, o: usize, j: usize, cw: usize) -> [f32; LANES] {
    let mut v = [0.0f32; LANES];
    for (l, e) in v.iter_mut().enumerate().take(cw.saturating_sub(j * LANES)) {
        *e = dy[(j * LANES + l) * howo + o];
    }
    v
}

simd_kernel! {
    /// `out[c][o] = Σ_{ky,kx} taps[ky][kx][c] · pad[tap (ky, kx) of o][c]` for the block's `cw`
    /// channels (`out` holds their `ho × wo` planes one after another).
    fn forward_block(grid: Grid, pad: &[f32], taps: &[f32], cw: usize, out: &mut [MaybeUninit<f32>]) {
        let (k, howo) = (grid.kernel, grid.ho * grid.wo);
        for o in 0..howo {
            for j in 0..grid.lanes / LANES {
                let mut acc = [0.0f32; LANES];
                for ky in 0..k {
                    for kx in 0..k {
                        let src = &pad[grid.tap(o, ky, kx) + j * LANES..][..LANES];
                        let wv = &taps[(ky * k + kx) * grid.lanes + j * LANES..][..LANES];
                        for l in 0..LANES {
                            acc[l] += wv[l] * src[l];
                        }
                    }
                }
                for (l, &a) in acc.iter().enumerate().take(cw.saturating_sub(j * LANES)) {
                    out[(j * LANES + l) * howo + o].write(a);
                }
            }
        }
    }
}

simd_kernel! {
    /// `acc[tap (ky, kx) of o][c] += taps[ky][kx][c] · dy[c][o]` over every output `o`: the
    /// input gradient of the block, scattered onto the padded grid (`acc`, zeroed by the caller).
    fn scatter_block(grid: Grid, dy: &[f32], taps: &[f32], cw: usize, acc: &mut [f32]) {
        let (k, howo) = (grid.kernel, grid.ho * grid.wo);
        for o in 0..howo {
            for j in 0..grid.lanes / LANES {
                let v = gather(dy, howo, o, j, cw);
                for ky in 0..k {
                    for kx in 0..k {
                        let dst = &mut acc[grid.tap(o, ky, kx) + j * LANES..][..LANES];
                        let wv = &taps[(ky * k + kx) * grid.lanes + j * LANES..][..LANES];
                        for l in 0..LANES {
                            dst[l] += wv[l] * v[l];
                        }
                    }
                }
            }
        }
    }
}

simd_kernel! {
    /// `sums[ky][kx][c] += Σ_o dy[c][o] · pad[tap (ky, kx) of o][c]` for one image of one block
    /// of at most sixteen channels (`grid.lanes` = 16), summed over the image in f32.
    fn weight_block(grid: Grid, pad: &[f32], dy: &[f32], cw: usize, sums: &mut [f64]) {
        let (k, howo) = (grid.kernel, grid.ho * grid.wo);
        let mut acc = vec![[0.0f32; LANES]; k * k];
        for o in 0..howo {
            let v = gather(dy, howo, o, 0, cw);
            for ky in 0..k {
                for kx in 0..k {
                    let src = &pad[grid.tap(o, ky, kx)..][..LANES];
                    let a = &mut acc[ky * k + kx];
                    for l in 0..LANES {
                        a[l] += v[l] * src[l];
                    }
                }
            }
        }
        for (s, a) in sums.chunks_exact_mut(LANES).zip(&acc) {
            for l in 0..LANES {
                s[l] += a[l] as f64;
            }
        }
    }
}

/// The (image, first channel, block of planes) tasks of an NCHW buffer of `g`'s batch and
/// channels with `plane` values per plane, in blocks of [`BLOCK`] channels.
fn tasks<'a>(
    g: &DepthwiseGeometry,
    buf: &'a mut [MaybeUninit<f32>],
    plane: usize,
) -> Vec<(usize, usize, &'a mut [MaybeUninit<f32>])> {
    buf.chunks_mut(g.channels * plane)
        .enumerate()
        .flat_map(|(n, image)| {
            image
                .chunks_mut(BLOCK * plane)
                .enumerate()
                .map(move |(b, planes)| (n, b * BLOCK, planes))
        })
        .collect()
}

/// `y` (N, C, Ho, Wo) from `x` (N, C, H, W) and `w` (C, 1, k, k), as
/// [`super::depthwise_kernel::forward`].
pub(super) fn forward(g: &DepthwiseGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let howo = ho * wo;
    let hw = g.height * g.width;
    let len = g.batch * g.channels * howo;
    if len == 0 {
        return Vec::new();
    }
    let k2 = g.kernel * g.kernel;
    let table = tap_table(w, g.channels, k2, BLOCK);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        tasks(g, y, howo).into_par_iter().for_each_init(
            Vec::new,
            |pad: &mut Vec<f32>, (n, c0, out)| {
                let cw = out.len() / howo;
                let grid = Grid::new(g, cw);
                // A fresh zero grid when the block's width changes (the last, narrower block);
                // otherwise every value inside the padding is overwritten below.
                if pad.len() != grid.len() {
                    *pad = vec![0.0; grid.len()];
                }
                let src = &x[(n * g.channels + c0) * hw..(n * g.channels + c0 + cw) * hw];
                lay_out(&grid, src, cw, pad);
                let filters = &table[c0 * k2..][..grid.lanes * k2];
                forward_block(grid, pad, filters, cw, out);
            },
        );
    };
    // SAFETY: `forward_block` writes all `ho × wo` outputs of each of its block's `cw` planes,
    // and the tasks cover every plane.
    unsafe { flex_io::filled(len, fill) }
}

/// `dx` (N, C, H, W) from the output gradient `dy` (N, C, Ho, Wo) and `w` (C, 1, k, k), as
/// [`super::depthwise_kernel::input_grad`]: each output's gradient, times the filter, is added
/// onto the padded grid at the taps it read, and the grid's inside is the input gradient.
pub(super) fn input_grad(g: &DepthwiseGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let howo = ho * wo;
    let hw = g.height * g.width;
    let len = g.batch * g.channels * hw;
    if len == 0 {
        return Vec::new();
    }
    let k2 = g.kernel * g.kernel;
    let table = tap_table(w, g.channels, k2, BLOCK);
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        tasks(g, dx, hw).into_par_iter().for_each_init(
            Vec::new,
            |pad: &mut Vec<f32>, (n, c0, out)| {
                let cw = out.len() / hw;
                let grid = Grid::new(g, cw);
                pad.clear();
                pad.resize(grid.len(), 0.0);
                let src = &dy[(n * g.channels + c0) * howo..(n * g.channels + c0 + cw) * howo];
                let filters = &table[c0 * k2..][..grid.lanes * k2];
                scatter_block(grid, src, filters, cw, pad);
                for (c, plane) in out.chunks_exact_mut(hw).enumerate() {
                    for (iy, row) in plane.chunks_exact_mut(g.width).enumerate() {
                        let base = grid.at(iy + grid.p, grid.p) + c;
                        for (ix, v) in row.iter_mut().enumerate() {
                            v.write(pad[base + ix * grid.lanes]);
                        }
                    }
                }
            },
        );
    };
    // SAFETY: every value of every plane of the block is written from the grid above, and the
    // tasks cover every plane.
    unsafe { flex_io::filled(len, fill) }
}

/// `dw` (C, 1, k, k) from the input `x` (N, C, H, W) and the output gradient `dy`
/// (N, C, Ho, Wo), as [`super::depthwise_kernel::weight_grad`].
pub(super) fn weight_grad(g: &DepthwiseGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (ho, wo) = g.out_dims();
    let howo = ho * wo;
    let (hw, k2) = (g.height * g.width, g.kernel * g.kernel);
    let mut dw = vec![0.0f32; g.channels * k2];
    if dw.is_empty() {
        return dw;
    }
    dw.par_chunks_mut(LANES * k2)
        .enumerate()
        .for_each(|(b, out)| {
            let (c0, cw) = (b * LANES, out.len() / k2);
            let grid = Grid::new(g, LANES);
            let mut pad = vec![0.0f32; grid.len()];
            let mut sums = vec![0.0f64; k2 * LANES];
            for n in 0..g.batch {
                let first = n * g.channels + c0;
                lay_out(&grid, &x[first * hw..(first + cw) * hw], cw, &mut pad);
                let dy = &dy[first * howo..(first + cw) * howo];
                weight_block(grid, &pad, dy, cw, &mut sums);
            }
            for (c, f) in out.chunks_exact_mut(k2).enumerate() {
                for (t, v) in f.iter_mut().enumerate() {
                    *v = sums[t * LANES + c] as f32;
                }
            }
        });
    dw
}
