//! The int8 GEMM on AVX-512 VNNI: tiles of up to 8 rows × 16 columns, each row's 16 sums in one
//! register, `vpdpbusd` adding 4 activation × weight products per column and group.

use super::{a_group, PackedB8, KG, NR};
use std::arch::x86_64::*;

/// Rows per tile.
const MR: usize = 8;

/// See [`super::gemm_u8i8`].
///
/// # Safety
/// The CPU must have AVX-512 F and VNNI; the caller checked the shapes (`a` holds `m` rows of
/// `lda ≥ k`, `c` holds `m` rows of `ldc ≥ n`, `b` its panels).
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn gemm(a: &[u8], m: usize, lda: usize, b: &PackedB8, c: &mut [i32], ldc: usize) {
    let (k, n, groups) = (b.k, b.n, b.groups());
    for p in 0..n.div_ceil(NR) {
        let panel = b.panel(p);
        let width = NR.min(n - p * NR);
        let mask: __mmask16 = if width == NR {
            0xffff
        } else {
            (1u16 << width) - 1
        };
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            let mut acc = [_mm512_setzero_si512(); MR];
            for g in 0..groups {
                let w_group = &panel[g * NR * KG..(g + 1) * NR * KG];
                // SAFETY: `w_group` is 64 bytes, one unaligned 512-bit load.
                let w = unsafe { _mm512_loadu_si512(w_group.as_ptr().cast()) };
                for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                    let row = &a[(i0 + r) * lda..(i0 + r) * lda + k];
                    let x = _mm512_set1_epi32(i32::from_le_bytes(a_group(row, g, k)));
                    *acc = _mm512_dpbusd_epi32(*acc, x, w);
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let out = &mut c[(i0 + r) * ldc + p * NR..(i0 + r) * ldc + p * NR + width];
                // SAFETY: `out` holds `width` values and the mask writes only those lanes.
                unsafe { _mm512_mask_storeu_epi32(out.as_mut_ptr(), mask, *acc) };
            }
        }
    }
}
