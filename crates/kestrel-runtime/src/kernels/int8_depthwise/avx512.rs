//! The AVX-512 int8 depthwise convolution: 16 channels per register, widened to 32 bits. [`tap`]
//! adds one tap to stored sums (the last channels, fewer than 16, through the scalar tap);
//! [`rows_requant`] keeps a pixel's sums in a register over all its taps and requantises them
//! there.

use super::DepthwiseI8;
use crate::kernels::int8_requant::{avx512::codes16, Requant};
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
/// there ([`codes16`]), so no 32-bit sum is stored.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; the caller checked the operands' lengths (`input` one
/// image, `out` and `res` the rows' pixels, `rq` one entry per channel).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn rows_requant(
    op: &DepthwiseI8,
    input: &[u8],
    rows: std::ops::Range<usize>,
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
    let (x, wt) = (input.as_ptr(), op.weight.as_ptr());
    for (r, oy) in rows.enumerate() {
        let (ky0, ky1) = ry.valid_taps(oy);
        for ox in 0..ow {
            let (kx0, kx1) = cx.valid_taps(ox);
            let o = (r * ow + ox) * c;
            for c0 in (0..c).step_by(16) {
                let mask: __mmask16 = if c - c0 >= 16 {
                    0xffff
                } else {
                    (1u16 << (c - c0)) - 1
                };
                let mut acc = _mm512_setzero_si512();
                for ky in ky0..ky1 {
                    let iy = ry.input_at(oy, ky) as usize;
                    for kx in kx0..kx1 {
                        let ix = cx.input_at(ox, kx) as usize;
                        // SAFETY: the tap lies in the image and the mask keeps the loads to
                        // channels `c0..c`, inside pixel `(iy, ix)` and tap `(ky, kx)`.
                        unsafe {
                            let xv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(
                                mask,
                                x.add((iy * w + ix) * c + c0).cast(),
                            ));
                            let wv = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(
                                mask,
                                wt.add((ky * kw + kx) * c + c0).cast(),
                            ));
                            acc = _mm512_add_epi32(
                                acc,
                                _mm512_mullo_epi32(_mm512_sub_epi32(xv, z), wv),
                            );
                        }
                    }
                }
                // SAFETY: `out` (and `res`) hold the rows' pixels, so channels `c0..c` of pixel
                // `o / c` are inside them; `rq` has one entry per channel.
                unsafe {
                    let rp = res.map(|v| v.as_ptr().add(o + c0));
                    let q = codes16(rq, acc, c0, mask, rp);
                    _mm_mask_storeu_epi8(out.as_mut_ptr().add(o + c0).cast(), mask, q);
                }
            }
        }
    }
}
