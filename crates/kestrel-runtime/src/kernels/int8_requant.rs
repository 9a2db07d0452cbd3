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
//! half to even in every lane without a libm call (`code`), so the scalar and vector forms of
//! this loop give the same bits.

use crate::Activation;

/// 1.5·2²³: adding and subtracting it rounds an `f32` of magnitude below 2²² to the nearest
/// integer, ties to even.
const ROUND: f32 = 12_582_912.0;

/// Per-channel constants of one op's epilogue.
#[derive(Clone, Copy)]
pub struct Requant<'a> {
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
/// `y` is clamped to `[lo − z, hi − z]` first (rounding commutes with clamping to integers), and
/// adding 1.5·2²³ then rounds it to an integer (half to even) that the float's low mantissa bits
/// hold exactly: the code is an integer difference of bit patterns, which every vector width
/// computes alike.
#[inline(always)]
pub(crate) fn code(y: f32, z: i32, lo: i32, hi: i32) -> u8 {
    let y = y.clamp((lo - z) as f32, (hi - z) as f32);
    ((y + ROUND).to_bits() as i32 - (ROUND.to_bits() as i32 - z)) as u8
}

/// The AVX-512 form of [`code`] over 16 channels: the same operations in the same order.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{Requant, ROUND};
    use std::arch::x86_64::*;

    /// The epilogue constants of 16 channels, loaded once for every row or pixel that uses them.
    #[derive(Clone, Copy)]
    pub(crate) struct Lanes {
        corr: __m512i,
        mult: __m512,
        lo: __m512,
        hi: __m512,
        bias: __m512i,
        residual: Option<(__m512, __m512)>,
        mask: __mmask16,
    }

    impl Lanes {
        /// Channels `c0..c0 + 16` of `rq`, the lanes past `mask` unused.
        ///
        /// # Safety
        /// The CPU must have AVX-512 F, BW and VL; `rq.corr` and `rq.mult` hold the masked lanes
        /// from `c0`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(crate) unsafe fn new(rq: &Requant, c0: usize, mask: __mmask16) -> Lanes {
            let z = rq.zero as i32;
            // SAFETY: the caller guarantees the masked lanes are readable.
            let (corr, mult) = unsafe {
                (
                    _mm512_maskz_loadu_epi32(mask, rq.corr.as_ptr().add(c0).cast()),
                    _mm512_maskz_loadu_ps(mask, rq.mult.as_ptr().add(c0)),
                )
            };
            Lanes {
                corr,
                mult,
                lo: _mm512_set1_ps((rq.lo as i32 - z) as f32),
                hi: _mm512_set1_ps((rq.hi as i32 - z) as f32),
                bias: _mm512_set1_epi32(ROUND.to_bits() as i32 - z),
                residual: rq
                    .residual
                    .map(|(rm, rz)| (_mm512_set1_ps(rm), _mm512_set1_ps(rz as f32))),
                mask,
            }
        }

        /// These lanes with `sub` taken off the correction: for sums that carry a known extra
        /// term (a depthwise kernel's `z·Σw` when it sums `x·w` rather than `(x − z)·w`).
        /// Integer addition wraps alike in either order, so the codes are the same.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(crate) fn less(self, sub: __m512i) -> Lanes {
            Lanes {
                corr: _mm512_sub_epi32(self.corr, sub),
                ..self
            }
        }

        /// The 16 codes of sums `acc`, with the residual codes at `res` (the masked lanes
        /// readable) when the op has one.
        ///
        /// # Safety
        /// As [`Lanes::new`]; `res`, if given, points at 16 codes of which the masked ones are
        /// readable.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(crate) unsafe fn codes(&self, acc: __m512i, res: Option<*const u8>) -> __m128i {
            let sum = _mm512_cvtepi32_ps(_mm512_add_epi32(acc, self.corr));
            // SAFETY: the caller's contract.
            unsafe { self.codes_of(sum, res) }
        }

        /// Whether every lane's correction is below 2²³ in magnitude, so that
        /// [`Lanes::codes_small`] may take sums below 2²³ in `f32`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(crate) fn small(&self) -> bool {
            let m = _mm512_maskz_abs_epi32(self.mask, self.corr);
            _mm512_reduce_max_epi32(m) < 1 << 23
        }

        /// [`Lanes::codes`] of sums held exactly in `f32`, when they and every correction are
        /// below 2²³ in magnitude ([`Lanes::small`]): the corrected sum is below 2²⁴, so adding
        /// in `f32` is exact and gives the very value the integer addition converts to.
        ///
        /// # Safety
        /// As [`Lanes::codes`], and the magnitudes as above.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(crate) unsafe fn codes_small(&self, acc: __m512, res: Option<*const u8>) -> __m128i {
            let sum = _mm512_add_ps(acc, _mm512_cvtepi32_ps(self.corr));
            // SAFETY: the caller's contract.
            unsafe { self.codes_of(sum, res) }
        }

        /// The codes of corrected sums `sum`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        unsafe fn codes_of(&self, sum: __m512, res: Option<*const u8>) -> __m128i {
            let mut y = _mm512_mul_ps(sum, self.mult);
            if let (Some(r), Some((rm, rz))) = (res, self.residual) {
                // SAFETY: the caller guarantees the masked lanes are readable.
                let rv = unsafe { _mm_maskz_loadu_epi8(self.mask, r.cast()) };
                let rv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(rv));
                y = _mm512_add_ps(y, _mm512_mul_ps(_mm512_sub_ps(rv, rz), rm));
            }
            let y = _mm512_max_ps(_mm512_min_ps(y, self.hi), self.lo);
            let r = _mm512_add_ps(y, _mm512_set1_ps(ROUND));
            _mm512_cvtepi32_epi8(_mm512_sub_epi32(_mm512_castps_si512(r), self.bias))
        }
    }

    /// The 16 codes of sums `acc` of channels `c0..c0 + 16` ([`Lanes::new`] then
    /// [`Lanes::codes`]).
    ///
    /// # Safety
    /// As [`Lanes::new`] and [`Lanes::codes`].
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn codes16(
        rq: &Requant,
        acc: __m512i,
        c0: usize,
        mask: __mmask16,
        res: Option<*const u8>,
    ) -> __m128i {
        // SAFETY: the caller's contract.
        unsafe { Lanes::new(rq, c0, mask).codes(acc, res) }
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
