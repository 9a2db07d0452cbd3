//! The AVX2 tap of the int8 depthwise convolution: 8 channels per register, widened to 32 bits;
//! the last channels (fewer than 8) through the scalar tap.

use std::arch::x86_64::*;

/// `acc[i] += (x[i] − zero)·w[i]`.
///
/// # Safety
/// The CPU must have AVX2; `acc`, `x` and `w` must have one length.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tap(acc: &mut [i32], x: &[u8], w: &[i8], zero: u8) {
    let c = acc.len();
    let z = _mm256_set1_epi32(i32::from(zero));
    let mut i = 0;
    while i + 8 <= c {
        // SAFETY: 8 values of each slice from `i` (`i + 8 ≤ c`, all three of length `c`); the
        // 64-bit loads read 8 bytes.
        unsafe {
            let xv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(x.as_ptr().add(i).cast()));
            let wv = _mm256_cvtepi8_epi32(_mm_loadl_epi64(w.as_ptr().add(i).cast()));
            let p = acc.as_mut_ptr().add(i);
            let prod = _mm256_mullo_epi32(_mm256_sub_epi32(xv, z), wv);
            _mm256_storeu_si256(
                p.cast(),
                _mm256_add_epi32(_mm256_loadu_si256(p.cast()), prod),
            );
        }
        i += 8;
    }
    super::scalar::tap(&mut acc[i..], &x[i..], &w[i..], zero);
}
