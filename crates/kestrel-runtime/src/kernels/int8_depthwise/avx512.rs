//! The AVX-512 tap of the int8 depthwise convolution: 16 channels per register, widened to 32
//! bits; the last channels (fewer than 16) through the scalar tap.

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
