//! The portable int8 GEMM: the reference the SIMD paths must equal exactly.

use super::{a_group, PackedB8, KG, NR};

/// See [`super::gemm_u8i8`]; shapes checked by the caller.
pub(super) fn gemm(a: &[u8], m: usize, lda: usize, b: &PackedB8, c: &mut [i32], ldc: usize) {
    let (k, n, groups) = (b.k, b.n, b.groups());
    for i in 0..m {
        let row = &a[i * lda..i * lda + k];
        for p in 0..n.div_ceil(NR) {
            let panel = b.panel(p);
            let mut acc = [0i32; NR];
            for g in 0..groups {
                let av = a_group(row, g, k);
                let w = &panel[g * NR * KG..(g + 1) * NR * KG];
                for (j, acc) in acc.iter_mut().enumerate() {
                    for t in 0..KG {
                        *acc += i32::from(av[t]) * i32::from(w[j * KG + t]);
                    }
                }
            }
            let width = NR.min(n - p * NR);
            c[i * ldc + p * NR..i * ldc + p * NR + width].copy_from_slice(&acc[..width]);
        }
    }
}
