//! The AVX-512 int8 depthwise convolution: 16 channels per register, widened to 32 bits. [`tap`]
//! adds one tap to stored sums (the last channels, fewer than 16, through the scalar tap);
//! [`rows_requant`] keeps a pixel's sums in a register over all its taps and requantises them
//! there.

use super::DepthwiseI8;
use crate::kernels::int8_requant::{
    avx512::{codes16, Lanes},
    Requant,
};
use std::arch::x86_64::*;

/// `acc[i] += (x[i] − zero)·w[i]`.
///
/// # Safety
/// The CPU must have AVX-512 F; `acc`, `x` and `w` must have one length.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tap(acc: &mut [i32], x: &[u8], w: &[i8], zero: u8) {
    let c = acc.len();
    let z = _mm512_set1_epi32(i32::from(zero));
    let mut i = 0;
    while i + 16 <= c {
        // SAFETY: 16 values of each slice from `i` (`i + 16 ≤ c`, all three of length `c`).
        unsafe {
            let xv = _mm512_cvtepu8_epi32(_mm_loadu_si128(x.as_ptr().add(i).cast()));
            let wv = _mm512_cvtepi8_epi32(_mm_loadu_si128(w.as_ptr().add(i).cast()));
            let p = acc.as_mut_ptr().add(i);
            let prod = _mm512_mullo_epi32(_mm512_sub_epi32(xv, z), wv);
            _mm512_storeu_si512(
                p.cast(),
                _mm512_add_epi32(_mm512_loadu_si512(p.cast()), prod),
            );
        }
        i += 16;
    }
    super::scalar::tap(&mut acc[i..], &x[i..], &w[i..], zero);
}

/// Output rows `rows` of one image with the requantising epilogue fused: each output pixel's 16
/// channels are summed over the window's in-image taps in a register and turned into codes
/// there ([`codes16`]), so no 32-bit sum is stored. Pixels whose window lies inside the image
/// take [`interior_run`] (taps in pairs through `vpdpwssd`) when the kernel has at most 16 taps;
/// the others [`pixel`].
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI; the caller checked the operands' lengths
/// (`input` one image, `out` and `res` the rows' pixels, `rq` one entry per channel).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn rows_requant(
    op: &DepthwiseI8,
    input: &[u8],
    first_row: usize,
    rows: std::ops::Range<usize>,
    rq: &Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
) {
    if super::avx512_k3::fits(op) {
        // SAFETY: as this function's contract; `op` fits.
        return unsafe { super::avx512_k3::rows_k3(op, input, first_row, rows, rq, res, out) };
    }
    let [h, w, _] = op.hwc;
    let g = op.geom;
    let (ry, cx) = (g.axis(0, h), g.axis(1, w));
    let (oh, ow) = op.out_hw();
    let (iy, ix) = (ry.interior(oh), cx.interior(ow));
    // Rows are addressed from the input's first.
    let input = Rows {
        bytes: input,
        first: first_row * w * op.hwc[2],
    };
    let paired = g.kernel[0] * g.kernel[1] <= 2 * MAX_PAIRS && !ix.is_empty();
    for (r, oy) in rows.enumerate() {
        let fast = paired && iy.contains(&oy);
        let (x0, x1) = if fast { (ix.start, ix.end) } else { (ow, ow) };
        for ox in (0..x0).chain(x1..ow) {
            // SAFETY: as this function's contract.
            unsafe { pixel(op, input, r, oy, ox, rq, res, out) };
        }
        if fast {
            // SAFETY: as this function's contract; `x0..x1` are interior pixels of row `oy`.
            unsafe { interior_run(op, input, r, oy, x0..x1, rq, res, out) };
        }
    }
}

/// An image's rows from some row on: `bytes` starts at byte `first` of the image.
#[derive(Clone, Copy)]
struct Rows<'a> {
    bytes: &'a [u8],
    first: usize,
}

/// Taps paired for `vpdpwssd` (kernels of up to 16 taps, 3×3 included).
const MAX_PAIRS: usize = 8;

/// The codes of pixel `(oy, ox)` (row `r` of `out`), over its in-image taps one at a time.
///
/// # Safety
/// As [`rows_requant`].
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pixel(
    op: &DepthwiseI8,
    input: Rows,
    r: usize,
    oy: usize,
    ox: usize,
    rq: &Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
) {
    let [h, w, c] = op.hwc;
    let g = op.geom;
    let (ry, cx) = (g.axis(0, h), g.axis(1, w));
    let (_, ow) = op.out_hw();
    let kw = g.kernel[1];
    let z = _mm512_set1_epi32(i32::from(op.zero));
    let (x, wt) = (input.bytes.as_ptr(), op.weight.as_ptr());
    let (ky0, ky1) = ry.valid_taps(oy);
    let (kx0, kx1) = cx.valid_taps(ox);
    let o = (r * ow + ox) * c;
    for c0 in (0..c).step_by(16) {
        let mask = lanes(c - c0);
        let mut acc = _mm512_setzero_si512();
        for ky in ky0..ky1 {
            let iy = ry.input_at(oy, ky) as usize;
            for kx in kx0..kx1 {
                let ix = cx.input_at(ox, kx) as usize;
                // SAFETY: the tap lies in the image and the mask keeps the loads to channels
                // `c0..c`, inside pixel `(iy, ix)` and tap `(ky, kx)`.
                unsafe {
                    let xv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(
                        mask,
                        x.add((iy * w + ix) * c + c0 - input.first).cast(),
                    ));
                    let wv = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(
                        mask,
                        wt.add((ky * kw + kx) * c + c0).cast(),
                    ));
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_sub_epi32(xv, z), wv));
                }
            }
        }
        // SAFETY: `out` (and `res`) hold the rows' pixels, so channels `c0..c` of pixel `o / c`
        // are inside them; `rq` has one entry per channel.
        unsafe { store(rq, acc, c0, mask, res, out, o) };
    }
}

/// The mask of the first `n` of 16 lanes.
#[inline(always)]
pub(super) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

/// Requantises `acc` (channels `c0..`) and stores the codes at `out[o + c0..]`.
///
/// # Safety
/// As [`codes16`], with `out` (and `res`) holding the masked lanes from `o + c0`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn store(
    rq: &Requant,
    acc: __m512i,
    c0: usize,
    mask: __mmask16,
    res: Option<&[u8]>,
    out: &mut [u8],
    o: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let rp = res.map(|v| v.as_ptr().add(o + c0));
        let q = codes16(rq, acc, c0, mask, rp);
        _mm_mask_storeu_epi8(out.as_mut_ptr().add(o + c0).cast(), mask, q);
    }
}

/// Interleaves the 16 bytes of `a` and `b` (`a₀ b₀ a₁ b₁ …`) widened to 32 16-bit lanes, zero-
/// (`SIGNED = false`) or sign-extended.
#[inline(always)]
unsafe fn pairs<const SIGNED: bool>(a: __m128i, b: __m128i) -> __m512i {
    // SAFETY: register operations; the caller has AVX-512 BW.
    unsafe {
        let v = _mm256_set_m128i(_mm_unpackhi_epi8(a, b), _mm_unpacklo_epi8(a, b));
        if SIGNED {
            _mm512_cvtepi8_epi16(v)
        } else {
            _mm512_cvtepu8_epi16(v)
        }
    }
}

/// Interior pixels `xs` of output row `oy` (row `r` of `out`): for each 16 channels, the taps'
/// weights paired in registers once, then per pixel `Σ x·w` two taps per `vpdpwssd` (products of
/// 16-bit lanes, exact), less `zero·Σ w` (every tap is in the image), through the epilogue.
///
/// # Safety
/// As [`rows_requant`]; every pixel of `xs` in row `oy` has its whole window inside the image and
/// the kernel has at most `2·MAX_PAIRS` taps.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn interior_run(
    op: &DepthwiseI8,
    input: Rows,
    r: usize,
    oy: usize,
    xs: std::ops::Range<usize>,
    rq: &Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
) {
    let [h, w, c] = op.hwc;
    let g = op.geom;
    let (ry, cx) = (g.axis(0, h), g.axis(1, w));
    let (_, ow) = op.out_hw();
    let [kh, kw] = g.kernel;
    let taps = kh * kw;
    let npairs = taps.div_ceil(2);
    // Input offset of each tap relative to the window's first pixel, in bytes.
    let mut off = [0usize; 2 * MAX_PAIRS];
    for ky in 0..kh {
        for kx in 0..kw {
            off[ky * kw + kx] = (ky * g.dilation[0] * w + kx * g.dilation[1]) * c;
        }
    }
    if taps % 2 == 1 {
        // The odd tap is paired with itself under a zero weight.
        off[taps] = off[taps - 1];
    }
    let (x, wt) = (input.bytes.as_ptr(), op.weight.as_ptr());
    let iy0 = ry.input_at(oy, 0) as usize;
    for c0 in (0..c).step_by(16) {
        let mask = lanes(c - c0);
        // SAFETY: weight `(t, c0..c)` lies in `[kh][kw][c]`; register arithmetic.
        let (wp, zsum) = unsafe {
            let wtap = |t: usize| -> __m128i {
                if t < taps {
                    _mm_maskz_loadu_epi8(mask, wt.add(t * c + c0).cast())
                } else {
                    _mm_setzero_si128()
                }
            };
            let mut wp = [_mm512_setzero_si512(); MAX_PAIRS];
            let mut wsum = _mm512_setzero_si512();
            for (p, slot) in wp.iter_mut().enumerate().take(npairs) {
                let (a, b) = (wtap(2 * p), wtap(2 * p + 1));
                *slot = pairs::<true>(a, b);
                wsum = _mm512_add_epi32(wsum, _mm512_cvtepi8_epi32(a));
                wsum = _mm512_add_epi32(wsum, _mm512_cvtepi8_epi32(b));
            }
            let zsum = _mm512_mullo_epi32(wsum, _mm512_set1_epi32(i32::from(op.zero)));
            (wp, zsum)
        };
        // SAFETY: `rq` has one entry per channel.
        let lanes_c = unsafe { Lanes::new(rq, c0, mask) };
        for ox in xs.clone() {
            let base = (iy0 * w + cx.input_at(ox, 0) as usize) * c + c0 - input.first;
            // SAFETY: the window of an interior pixel lies in the image, so every tap's channels
            // `c0..c` (under the mask) are inside `input`.
            let acc = unsafe {
                let mut acc = _mm512_setzero_si512();
                for (p, &wv) in wp.iter().enumerate().take(npairs) {
                    let a = _mm_maskz_loadu_epi8(mask, x.add(base + off[2 * p]).cast());
                    let b = _mm_maskz_loadu_epi8(mask, x.add(base + off[2 * p + 1]).cast());
                    acc = _mm512_dpwssd_epi32(acc, pairs::<false>(a, b), wv);
                }
                _mm512_sub_epi32(acc, zsum)
            };
            let o = (r * ow + ox) * c + c0;
            // SAFETY: `out` (and `res`) hold the rows' pixels, so channels `c0..c` of this
            // pixel are inside them.
            unsafe {
                let q = lanes_c.codes(acc, res.map(|v| v.as_ptr().add(o)));
                _mm_mask_storeu_epi8(out.as_mut_ptr().add(o).cast(), mask, q);
            }
        }
    }
}
