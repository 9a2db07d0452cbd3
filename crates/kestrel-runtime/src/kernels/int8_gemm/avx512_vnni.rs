//! The int8 GEMM on AVX-512 VNNI: tiles of up to 8 rows × 16 columns, each row's 16 sums in one
//! register, `vpdpbusd` adding 4 activation × weight products per column and group.

use super::{a_group, PackedB8, KG, NR};
use crate::kernels::int8_requant::{avx512::codes16, Requant};
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

/// [`gemm`] with the requantising epilogue fused: tiles of up to 8 rows × 32 columns (two
/// panels share each broadcast activation group), each row's sums turned into 16 codes per panel
/// in registers ([`codes16`]) and stored as bytes; no 32-bit sum reaches memory.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI; the caller checked the shapes (`a` holds `m`
/// rows of `lda ≥ k`, `out` (and `res`) `m` rows of `ldo ≥ n`, `rq` `n` channels).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn gemm_requant(
    a: &[u8],
    m: usize,
    lda: usize,
    b: &PackedB8,
    rq: &Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
    ldo: usize,
) {
    let (k, n, groups) = (b.k, b.n, b.groups());
    let panels = n.div_ceil(NR);
    let mask_of = |p: usize| -> __mmask16 {
        let width = NR.min(n - p * NR);
        if width == NR {
            0xffff
        } else {
            (1u16 << width) - 1
        }
    };
    for p0 in (0..panels).step_by(2) {
        let two = p0 + 1 < panels;
        let (w0, w1) = (b.panel(p0), if two { b.panel(p0 + 1) } else { b.panel(p0) });
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            let mut acc0 = [_mm512_setzero_si512(); MR];
            let mut acc1 = [_mm512_setzero_si512(); MR];
            for g in 0..groups {
                // SAFETY: each panel holds `groups` 64-byte groups.
                let (v0, v1) = unsafe {
                    (
                        _mm512_loadu_si512(w0.as_ptr().add(g * NR * KG).cast()),
                        _mm512_loadu_si512(w1.as_ptr().add(g * NR * KG).cast()),
                    )
                };
                for r in 0..rows {
                    let row = &a[(i0 + r) * lda..(i0 + r) * lda + k];
                    let x = _mm512_set1_epi32(i32::from_le_bytes(a_group(row, g, k)));
                    acc0[r] = _mm512_dpbusd_epi32(acc0[r], x, v0);
                    if two {
                        acc1[r] = _mm512_dpbusd_epi32(acc1[r], x, v1);
                    }
                }
            }
            for (p, acc) in [(p0, &acc0), (p0 + 1, &acc1)]
                .into_iter()
                .take(1 + two as usize)
            {
                let (c0, mask) = (p * NR, mask_of(p));
                for (r, &sums) in acc.iter().enumerate().take(rows) {
                    let o = (i0 + r) * ldo + c0;
                    // SAFETY: row `i0 + r` of `out` (and `res`) holds columns `c0..n`, which the
                    // mask keeps to; `rq` holds `n` channels.
                    unsafe {
                        let rp = res.map(|v| v.as_ptr().add(o));
                        let q = codes16(rq, sums, c0, mask, rp);
                        _mm_mask_storeu_epi8(out.as_mut_ptr().add(o).cast(), mask, q);
                    }
                }
            }
        }
    }
}
