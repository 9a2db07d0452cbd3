//! The int8 GEMM on AVX2: tiles of up to 2 rows × 16 columns. Each group's weights are widened
//! to 16 bits four columns at a time, the row's 4 activations broadcast as 16-bit values, and
//! `vpmaddwd` adds the products pairwise into 32-bit lanes (two partial sums per column, added
//! once at the end of the row). Every product fits 16 bits (|255 × −128| < 2¹⁵), so the sums are
//! exact, unlike `vpmaddubsw`'s saturating 16-bit pair sums.

use super::{a_group, PackedB8, KG, NR};
use std::arch::x86_64::*;

/// Rows per tile.
const MR: usize = 2;
/// Column quads per panel.
const QUADS: usize = NR / 4;

/// See [`super::gemm_u8i8`].
///
/// # Safety
/// The CPU must have AVX2; the caller checked the shapes (`a` holds `m` rows of `lda ≥ k`, `c`
/// holds `m` rows of `ldc ≥ n`, `b` its panels).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gemm(a: &[u8], m: usize, lda: usize, b: &PackedB8, c: &mut [i32], ldc: usize) {
    let (k, n, groups) = (b.k, b.n, b.groups());
    for p in 0..n.div_ceil(NR) {
        let panel = b.panel(p);
        let width = NR.min(n - p * NR);
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            let mut acc = [[_mm256_setzero_si256(); QUADS]; MR];
            for g in 0..groups {
                let w_group = &panel[g * NR * KG..(g + 1) * NR * KG];
                let mut w = [_mm256_setzero_si256(); QUADS];
                for (q, w) in w.iter_mut().enumerate() {
                    // SAFETY: 16 bytes at 16·q of the 64-byte group.
                    let bytes = unsafe { _mm_loadu_si128(w_group.as_ptr().add(16 * q).cast()) };
                    *w = _mm256_cvtepi8_epi16(bytes);
                }
                for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                    let row = &a[(i0 + r) * lda..(i0 + r) * lda + k];
                    let [a0, a1, a2, a3] = a_group(row, g, k).map(i64::from);
                    let x = _mm256_set1_epi64x(a0 | (a1 << 16) | (a2 << 32) | (a3 << 48));
                    for (acc, w) in acc.iter_mut().zip(&w) {
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(x, *w));
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let mut sums = [0i32; NR];
                for half in 0..2 {
                    // Pairs of partial sums of columns 8h..8h+8, back into column order.
                    let h = _mm256_hadd_epi32(acc[2 * half], acc[2 * half + 1]);
                    let ordered = _mm256_permute4x64_epi64::<0b11_01_10_00>(h);
                    // SAFETY: 8 values of `sums` from 8·half.
                    unsafe { _mm256_storeu_si256(sums.as_mut_ptr().add(8 * half).cast(), ordered) };
                }
                let start = (i0 + r) * ldc + p * NR;
                c[start..start + width].copy_from_slice(&sums[..width]);
            }
        }
    }
}
