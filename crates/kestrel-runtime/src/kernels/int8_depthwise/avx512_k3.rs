//! The AVX-512 int8 depthwise 3×3 (dilation 1, horizontal stride 1 or 2) with the requantising
//! epilogue fused: MobileNets' every depthwise layer.
//!
//! The sums run in `f32` lanes: a code times a weight is at most 255·128 < 2¹⁵ in magnitude and
//! nine of them stay below 2²⁴, so every multiply-add is exact and the sum converts back to the
//! very `i32` the integer kernels make. What that buys is reuse: a block of `Q` neighbouring
//! output pixels loads each input column of its window once per kernel row, widens it once, and
//! feeds it to every pixel whose window covers it (three at stride 1), where the general kernel
//! loads and widens every tap of every pixel.
//!
//! Taps outside the image read the zero point (the padding value, `x − z = 0`), so the border
//! pixels run the same code: the sum is `Σ x·w` over all nine taps, and `z·Σw` comes off through
//! the epilogue's correction.

use super::DepthwiseI8;
use crate::kernels::int8_requant::{avx512::Lanes, Requant};
use std::arch::x86_64::*;

/// Whether [`rows_k3`] takes `op`: a 3×3 kernel, dilation 1, horizontal stride 1 or 2.
pub(super) fn fits(op: &DepthwiseI8) -> bool {
    let g = op.geom;
    g.kernel == [3, 3] && g.dilation == [1, 1] && matches!(g.stride[1], 1 | 2)
}

/// Bytes of input a chunk of rows may span while every channel block of it is run (the rows stay
/// in the first-level cache between blocks, and each block's weights are widened once a chunk).
const CHUNK_BYTES: usize = 48 * 1024;

/// One 16-channel block's operands.
struct Block {
    /// `[ky·3 + kx]`: the weights as `f32`.
    w: [__m512; 9],
    /// The zero point in every lane: what a tap outside the image reads.
    zero: __m512,
    /// The block's channels.
    mask: __mmask16,
    /// First channel.
    c0: usize,
    /// Channels per pixel.
    c: usize,
    /// Image width in pixels.
    width: isize,
    /// The epilogue, its correction less `z·Σw`.
    lanes: Lanes,
    /// Whether the corrections are small enough for [`Lanes::codes_small`].
    small: bool,
}

/// Output rows `rows` of one image as codes (`rows.len()·ow·c` into `out`), `input` holding the
/// image's rows from `first_row` on.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; `op` [`fits`]; the caller checked the operands:
/// `input` holds every row the output rows' windows reach inside the image (from `first_row`),
/// `out` (and `res`) the rows' pixels, `rq` one entry per channel.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn rows_k3(
    op: &DepthwiseI8,
    input: &[u8],
    first_row: usize,
    rows: std::ops::Range<usize>,
    rq: &Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
) {
    let [h, w, c] = op.hwc;
    let g = op.geom;
    let (_, ow) = op.out_hw();
    let (sy, py) = (g.stride[0], g.padding[0] as isize);
    let row_bytes = (w * c).max(1);
    let chunk = (CHUNK_BYTES / (row_bytes * sy.max(1))).max(1);
    let interior = g.axis(1, w).interior(ow);
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = rows.end.min(r0 + chunk);
        for c0 in (0..c).step_by(16) {
            // SAFETY: the caller's contract; `c0 < c`.
            let k = unsafe { block(op, rq, c0) };
            for oy in r0..r1 {
                let mut taps = [std::ptr::null::<u8>(); 3];
                for (ky, t) in taps.iter_mut().enumerate() {
                    let iy = (oy * sy) as isize + ky as isize - py;
                    if iy >= 0 && (iy as usize) < h {
                        // SAFETY: row `iy` is inside the image, so inside `input` (the caller's
                        // contract), from `first_row`.
                        *t = unsafe { input.as_ptr().add((iy as usize - first_row) * w * c) };
                    }
                }
                let r = oy - rows.start;
                let o = out.as_mut_ptr();
                let rp = res.map_or(std::ptr::null(), |v| v.as_ptr());
                // SAFETY: pixels of output row `r` only (the caller's contract).
                unsafe {
                    if op.geom.stride[1] == 1 {
                        row::<1>(&k, &taps, g.padding[1], interior.clone(), ow, r, rp, o);
                    } else {
                        row::<2>(&k, &taps, g.padding[1], interior.clone(), ow, r, rp, o);
                    }
                }
            }
        }
        r0 = r1;
    }
}

/// The weights of channels `c0..c0 + 16` widened, and the epilogue with `z·Σw` taken off.
///
/// # Safety
/// As [`rows_k3`], with `c0 < c`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn block(op: &DepthwiseI8, rq: &Requant, c0: usize) -> Block {
    let c = op.hwc[2];
    let mask = super::avx512::lanes(c - c0);
    let mut w = [_mm512_setzero_ps(); 9];
    let mut sum = _mm512_setzero_si512();
    for (t, wv) in w.iter_mut().enumerate() {
        // SAFETY: tap `t`'s masked channels lie in the `[3][3][c]` weights.
        let v = unsafe {
            _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(
                mask,
                op.weight.as_ptr().add(t * c + c0).cast(),
            ))
        };
        sum = _mm512_add_epi32(sum, v);
        *wv = _mm512_cvtepi32_ps(v);
    }
    let zsum = _mm512_mullo_epi32(sum, _mm512_set1_epi32(i32::from(op.zero)));
    // SAFETY: `rq` has one entry per channel (the caller's contract).
    let lanes = unsafe { Lanes::new(rq, c0, mask).less(zsum) };
    Block {
        w,
        zero: _mm512_set1_ps(f32::from(op.zero)),
        mask,
        c0,
        c,
        width: op.hwc[1] as isize,
        small: lanes.small(),
        lanes,
    }
}

/// Output row `r` (of `out`): pixels whose window lies inside the image (`interior`) eight at a
/// time without bounds checks, the others (and the tails) with them.
///
/// # Safety
/// As [`rows_k3`]; `taps` holds kernel rows' input rows (null outside the image).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn row<const S: usize>(
    k: &Block,
    taps: &[*const u8; 3],
    pad: usize,
    interior: std::ops::Range<usize>,
    ow: usize,
    r: usize,
    res: *const u8,
    out: *mut u8,
) {
    let all_rows = taps.iter().all(|t| !t.is_null());
    let at =
        |ox: usize| -> (isize, usize) { ((ox * S) as isize - pad as isize, (r * ow + ox) * k.c) };
    let mut ox = 0;
    // SAFETY: every call below is for pixels `ox..ox + Q` of row `r`, inside `0..ow`; the
    // unchecked ones only inside `interior`, with every kernel row in the image.
    unsafe {
        if all_rows {
            while ox < interior.start.min(ow) {
                let (ix, o) = at(ox);
                pixels::<1, S, true>(k, taps, ix, res, out, o);
                ox += 1;
            }
            while ox + 8 <= interior.end {
                let (ix, o) = at(ox);
                pixels::<8, S, false>(k, taps, ix, res, out, o);
                ox += 8;
            }
            while ox + 4 <= interior.end {
                let (ix, o) = at(ox);
                pixels::<4, S, false>(k, taps, ix, res, out, o);
                ox += 4;
            }
        }
        while ox + 8 <= ow {
            let (ix, o) = at(ox);
            pixels::<8, S, true>(k, taps, ix, res, out, o);
            ox += 8;
        }
        while ox < ow {
            let (ix, o) = at(ox);
            pixels::<1, S, true>(k, taps, ix, res, out, o);
            ox += 1;
        }
    }
}

/// `Q` neighbouring output pixels (the first reading input column `ix`) of one channel block:
/// each of the `(Q − 1)·S + 3` input columns of each kernel row loaded and widened once, added to
/// every pixel whose window covers it; then the epilogue, with the residual codes at `res + o`.
/// `CHECK`: columns outside the image and rows outside it (null) read the zero point.
///
/// # Safety
/// As [`rows_k3`]; without `CHECK` every tap lies inside the image; `out + o` (and `res + o`)
/// hold `Q` pixels of `c` codes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pixels<const Q: usize, const S: usize, const CHECK: bool>(
    k: &Block,
    taps: &[*const u8; 3],
    ix: isize,
    res: *const u8,
    out: *mut u8,
    o: usize,
) {
    let cols = (Q - 1) * S + 3;
    let mut acc = [_mm512_setzero_ps(); Q];
    for (ky, &row) in taps.iter().enumerate() {
        for j in 0..cols {
            let x = ix + j as isize;
            let v = if CHECK && (row.is_null() || x < 0 || x >= k.width) {
                k.zero
            } else {
                // SAFETY: column `x` of row `row` is inside the image (the caller's contract, or
                // checked just above); the mask keeps the load to the block's channels.
                unsafe {
                    let p = row.offset(x * k.c as isize).add(k.c0);
                    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k.mask, p.cast())))
                }
            };
            for (q, a) in acc.iter_mut().enumerate() {
                let kx = j as isize - (q * S) as isize;
                if (0..3).contains(&kx) {
                    *a = _mm512_fmadd_ps(v, k.w[ky * 3 + kx as usize], *a);
                }
            }
        }
    }
    for (q, a) in acc.iter().enumerate() {
        let at = o + q * k.c + k.c0;
        // SAFETY: pixel `q`'s block channels lie in `out` (and `res`), the caller's contract;
        // the sums are below 9·255·128 < 2¹⁹ in magnitude, for `codes_small`.
        unsafe {
            let rp = (!res.is_null()).then(|| res.add(at));
            let codes = if k.small {
                k.lanes.codes_small(*a, rp)
            } else {
                k.lanes.codes(_mm512_cvtps_epi32(*a), rp)
            };
            _mm_mask_storeu_epi8(out.add(at).cast(), k.mask, codes);
        }
    }
}
