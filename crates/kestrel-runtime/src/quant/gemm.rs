//! The int8 GEMM ops' rows: the A operand (rows of pixels, or im2col patches gathered a block
//! of rows at a time) and the fused requantising epilogue, into codes or, for the network's
//! output, reals. Shared by the op-by-op engine and the fused blocks.

use super::engine::Dst;
use super::prepare::Int8Layer;
use crate::kernels::int8_gemm::{gemm_u8i8_requant, gemm_u8i8_with, Int8Path, PackedB8};
use crate::Shape;

/// A GEMM's sums and im2col patches.
#[derive(Default)]
pub(super) struct GemmScratch {
    pub(super) acc: Vec<i32>,
    patches: Vec<u8>,
}

/// The A operand of a GEMM op: rows of pixels, or im2col patches of a convolution.
pub(super) struct GemmSrc<'a> {
    /// The codes of the op's input (the whole batch for a convolution through im2col).
    pub(super) x: &'a [u8],
    /// The input's shape.
    pub(super) hwc: Shape,
    /// The convolution, if it runs through im2col patches.
    pub(super) conv: Option<&'a crate::plan::ConvOp>,
    /// The output's shape.
    pub(super) out: Shape,
    /// The input's zero point (the patches' padding).
    pub(super) zero: u8,
}

/// Rows of the GEMM output per block (the sums stay in cache for the epilogue).
fn block_rows(cout: usize) -> usize {
    ((32 * 1024 / cout.max(1)) / 8 * 8).clamp(8, 256)
}

/// GEMM rows `rows` (pixels or patches) with the epilogue, into `dst` (those rows only).
pub(super) fn gemm_rows(
    path: Int8Path,
    layer: &Int8Layer<PackedB8>,
    src: &GemmSrc,
    res: Option<&[u8]>,
    rows: std::ops::Range<usize>,
    mut dst: Dst,
    s: &mut GemmScratch,
) {
    let b = &layer.weight;
    let (k, cout) = (b.k, b.n);
    let mb = block_rows(cout);
    if s.acc.len() < mb * cout {
        s.acc.resize(mb * cout, 0);
    }
    let rq = layer.requant();
    for r0 in rows.clone().step_by(mb) {
        let m = mb.min(rows.end - r0);
        let a: &[u8] = match src.conv {
            None => &src.x[r0 * k..(r0 + m) * k],
            Some(cv) => {
                if s.patches.len() < mb * k {
                    s.patches.resize(mb * k, 0);
                }
                let o = src.out;
                let per = o.h * o.w;
                let (mut img, p) = (r0 / per, r0 % per);
                let (mut oy, mut ox) = (p / o.w, p % o.w);
                for patch in s.patches[..m * k].chunks_exact_mut(k) {
                    gather_patch(src, cv, img, (oy, ox), patch);
                    ox += 1;
                    if ox == o.w {
                        (ox, oy) = (0, oy + 1);
                        if oy == o.h {
                            (oy, img) = (0, img + 1);
                        }
                    }
                }
                &s.patches[..m * k]
            }
        };
        if let Dst::Codes(d) = &mut dst {
            let at = (r0 - rows.start) * cout;
            let resr = res.map(|x| &x[r0 * cout..(r0 + m) * cout]);
            let out = &mut d[at..at + m * cout];
            gemm_u8i8_requant(path, a, m, k, b, &rq, resr, out, cout, &mut s.acc);
            continue;
        }
        let acc = &mut s.acc[..m * cout];
        gemm_u8i8_with(path, a, m, k, b, acc, cout);
        for r in 0..m {
            let row = r0 + r;
            let (sums, resr) = (
                &acc[r * cout..(r + 1) * cout],
                res.map(|x| &x[row * cout..(row + 1) * cout]),
            );
            let at = (row - rows.start) * cout;
            match &mut dst {
                Dst::Codes(d) => rq.row_u8(sums, resr, &mut d[at..at + cout]),
                Dst::Reals(d) => rq.row_f32(sums, resr, layer.epi.act, &mut d[at..at + cout]),
            }
        }
    }
}

/// The im2col patch of output pixel `(oy, ox)` of image `img`: `[ky][kx][cin]` codes, the zero
/// point where the window leaves the image.
fn gather_patch(
    src: &GemmSrc,
    cv: &crate::plan::ConvOp,
    img: usize,
    (oy, ox): (usize, usize),
    patch: &mut [u8],
) {
    let x = src.hwc;
    let gm = cv.geom;
    let image = &src.x[img * x.len()..(img + 1) * x.len()];
    let kw = gm.kernel[1];
    let span = kw * x.c;
    let ix0 = (ox * gm.stride[1]) as isize - gm.padding[1] as isize;
    // The row of taps is one run of adjacent pixels when it lies inside the image undilated.
    let whole_row = gm.dilation[1] == 1 && ix0 >= 0 && ix0 as usize + kw <= x.w;
    for ky in 0..gm.kernel[0] {
        let iy = (oy * gm.stride[0] + ky * gm.dilation[0]) as isize - gm.padding[0] as isize;
        let dst = &mut patch[ky * span..(ky + 1) * span];
        if iy < 0 || iy >= x.h as isize {
            dst.fill(src.zero);
        } else if whole_row {
            let s = (iy as usize * x.w + ix0 as usize) * x.c;
            copy_small(dst, &image[s..s + span]);
        } else {
            for (kx, d) in dst.chunks_exact_mut(x.c).enumerate() {
                let ix = ix0 + (kx * gm.dilation[1]) as isize;
                if ix < 0 || ix >= x.w as isize {
                    d.fill(src.zero);
                } else {
                    let s = (iy as usize * x.w + ix as usize) * x.c;
                    copy_small(d, &image[s..s + x.c]);
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)`, without a library call for the few bytes of a small stem's taps.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    if dst.len() <= 32 {
        // Eight bytes a move, then the tail.
        let n = dst.len();
        let mut i = 0;
        while i + 8 <= n {
            dst[i..i + 8].copy_from_slice(&src[i..i + 8]);
            i += 8;
        }
        for (d, s) in dst[i..].iter_mut().zip(&src[i..n]) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}
