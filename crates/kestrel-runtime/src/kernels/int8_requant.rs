//! The epilogue of every int8 convolution and linear layer (the int8 engine's, in
//! [`crate::quant`]): from exact `i32` sums to the next
//! value's `u8` codes (or to `f32` for the network's output), with the bias, the rescaled residual
//! and the activation's clamp in one pass over the row.
//!
//! For output channel `o` with sum `acc = Σ qx·qw` (the GEMM) or `Σ (qx − zx)·qw` (depthwise):
//!
//! ```text
//! y = (acc + corr[o]) · mult[o] + (qr − zr) · res_mult        corr = bias − zx·Σqw (GEMM) or bias
//! q = clamp(round_half_even(y) + zy, lo, hi)                  mult = sx·sw[o] / sy
//! ```
//!
//! `lo`/`hi` are the codes of the activation's bounds (ReLU: the zero point; ReLU6: the code of
//! 6). Rounding adds 1.5·2²³ after clamping `y` to ±1024 (far outside the codes), which rounds
//! half to even in every lane without a libm call ([`code`]), so the scalar and vector forms of
//! this loop give the same bits.

use crate::Activation;

/// 1.5·2²³: adding and subtracting it rounds an `f32` of magnitude below 2²² to the nearest
/// integer, ties to even.
const ROUND: f32 = 12_582_912.0;

/// Per-channel constants of one op's epilogue.
#[derive(Clone, Copy)]
pub(crate) struct Requant<'a> {
    /// Integer correction added to each sum (bias, zero-point term).
    pub corr: &'a [i32],
    /// Scale from the corrected sum to output codes (or to reals for `f32` output).
    pub mult: &'a [f32],
    /// `(scale ratio, zero point)` of the residual, if the op adds one.
    pub residual: Option<(f32, u8)>,
    /// Output zero point.
    pub zero: u8,
    /// Smallest and largest output code (the activation's clamp).
    pub lo: u8,
    /// See `lo`.
    pub hi: u8,
}

impl Requant<'_> {
    /// One row of `corr.len()` channels to codes.
    #[inline]
    pub fn row_u8(&self, acc: &[i32], res: Option<&[u8]>, out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the CPU has AVX-512 F and BW (checked above).
            return unsafe { self.row_u8_avx512(acc, res, out) };
        }
        self.row_u8_portable(acc, res, out)
    }

    /// [`Requant::row_u8`] compiled for AVX-512: the same operations in the same order (no
    /// fused multiply-adds), so the same bits, sixteen lanes at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    unsafe fn row_u8_avx512(&self, acc: &[i32], res: Option<&[u8]>, out: &mut [u8]) {
        self.row_u8_portable(acc, res, out)
    }

    #[inline(always)]
    fn row_u8_portable(&self, acc: &[i32], res: Option<&[u8]>, out: &mut [u8]) {
        let n = out.len();
        let (acc, corr, mult) = (&acc[..n], &self.corr[..n], &self.mult[..n]);
        let (z, lo, hi) = (self.zero as i32, self.lo as i32, self.hi as i32);
        match (res, self.residual) {
            (Some(r), Some((rm, rz))) => {
                let r = &r[..n];
                for i in 0..n {
                    let y = acc[i].wrapping_add(corr[i]) as f32 * mult[i]
                        + (r[i] as f32 - rz as f32) * rm;
                    out[i] = code(y, z, lo, hi);
                }
            }
            _ => {
                for i in 0..n {
                    let y = acc[i].wrapping_add(corr[i]) as f32 * mult[i];
                    out[i] = code(y, z, lo, hi);
                }
            }
        }
    }

    /// One row to reals (the network's output): `mult` is then `sx·sw`, the residual ratio `sr`.
    #[inline]
    pub fn row_f32(&self, acc: &[i32], res: Option<&[u8]>, act: Activation, out: &mut [f32]) {
        let n = out.len();
        for i in 0..n {
            let mut y = acc[i].wrapping_add(self.corr[i]) as f32 * self.mult[i];
            if let (Some(r), Some((rm, rz))) = (res, self.residual) {
                y += (r[i] as f32 - rz as f32) * rm;
            }
            out[i] = act.apply(y);
        }
    }
}

/// The code of real `y` (in output-scale units) with zero point `z`, clamped to `[lo, hi]`.
///
/// After `y` is clamped to ±1024, adding 1.5·2²³ rounds it to an integer (half to even) that
/// the float's low mantissa bits hold exactly: the code is an integer difference of bit
/// patterns, which every vector width computes alike.
#[inline(always)]
pub(crate) fn code(y: f32, z: i32, lo: i32, hi: i32) -> u8 {
    let t = (y.clamp(-1024.0, 1024.0) + ROUND).to_bits() as i32 - ROUND.to_bits() as i32;
    (t + z).clamp(lo, hi) as u8
}

/// The AVX-512 form of [`code`] over 16 channels: the same operations in the same order.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{Requant, ROUND};
    use std::arch::x86_64::*;

    /// The 16 codes of sums `acc` of channels `c0..c0 + 16` (lanes past `mask` unused), with the
    /// residual codes at `res` (16 readable under `mask`) when the op has one.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VL; `rq.corr` and `rq.mult` hold the masked lanes from
    /// `c0`, and `res`, if given, points at 16 codes of which the masked ones are readable.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn codes16(
        rq: &Requant,
        acc: __m512i,
        c0: usize,
        mask: __mmask16,
        res: Option<*const u8>,
    ) -> __m128i {
        // SAFETY: the caller guarantees the masked lanes of every pointer are readable.
        unsafe {
            let corr = _mm512_maskz_loadu_epi32(mask, rq.corr.as_ptr().add(c0).cast());
            let mult = _mm512_maskz_loadu_ps(mask, rq.mult.as_ptr().add(c0));
            let mut y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc, corr)), mult);
            if let (Some(r), Some((rm, rz))) = (res, rq.residual) {
                let rv =
                    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, r.cast())));
                let t = _mm512_mul_ps(
                    _mm512_sub_ps(rv, _mm512_set1_ps(rz as f32)),
                    _mm512_set1_ps(rm),
                );
                y = _mm512_add_ps(y, t);
            }
            let y = _mm512_max_ps(
                _mm512_min_ps(y, _mm512_set1_ps(1024.0)),
                _mm512_set1_ps(-1024.0),
            );
            let r = _mm512_add_ps(y, _mm512_set1_ps(ROUND));
            let q = _mm512_sub_epi32(
                _mm512_castps_si512(r),
                _mm512_set1_epi32(ROUND.to_bits() as i32),
            );
            let q = _mm512_add_epi32(q, _mm512_set1_epi32(rq.zero as i32));
            let q = _mm512_min_epi32(
                _mm512_max_epi32(q, _mm512_set1_epi32(rq.lo as i32)),
                _mm512_set1_epi32(rq.hi as i32),
            );
            _mm512_cvtepi32_epi8(q)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_and_clamps() {
        for (y, want) in [
            (0.5, 10),
            (1.5, 12),
            (2.5, 12),
            (-0.5, 10),
            (-1.5, 8),
            (0.49999997, 10),
            (1e9, 255),
            (-1e9, 0),
        ] {
            assert_eq!(code(y, 10, 0, 255), want, "{y}");
            assert_eq!(
                code(y, 10, 0, 255) as f32,
                (y.round_ties_even() + 10.0).clamp(0.0, 255.0),
                "{y}"
            );
        }
        assert_eq!(code(-3.0, 10, 10, 200), 10);
        assert_eq!(code(500.0, 10, 10, 200), 200);
    }
}
