//! The int8 GEMM on AVX-512 VNNI: tiles of up to 8 rows × 16 columns, each row's 16 sums in one
//! register, `vpdpbusd` adding 4 activation × weight products per column and group.

use super::{a_group, PackedB8, KG, NR};
use crate::kernels::int8_requant::{avx512::Lanes, Requant};
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
/// in registers ([`Lanes`]) and stored as bytes; no 32-bit sum reaches memory.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI; the caller checked the shapes (`a` holds `m`
/// rows of `lda ≥ k`, `out` (and `res`) `m` rows of `ldo ≥ n`, `rq` `n` channels).
#[allow(clippy::too_many_arguments)]
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
    let n = b.n;
    let panels = n.div_ceil(NR);
    for p0 in (0..panels).step_by(2) {
        let two = p0 + 1 < panels;
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            // SAFETY: as this function's contract; the tile reads rows `i0..i0 + rows`.
            unsafe {
                match (rows, two) {
                    (8, true) => tile::<8, true>(a, i0, lda, b, p0, rq, res, out, ldo),
                    (8, false) => tile::<8, false>(a, i0, lda, b, p0, rq, res, out, ldo),
                    (r, true) => {
                        for i in 0..r {
                            tile::<1, true>(a, i0 + i, lda, b, p0, rq, res, out, ldo)
                        }
                    }
                    (r, false) => {
                        for i in 0..r {
                            tile::<1, false>(a, i0 + i, lda, b, p0, rq, res, out, ldo)
                        }
                    }
                }
            }
        }
    }
}

/// Rows `i0..i0 + R` × panels `p0` (and `p0 + 1` when `TWO`): the sums in `R` (or `2R`)
/// registers over every group of 4, then the epilogue.
///
/// # Safety
/// As [`gemm_requant`], with rows `i0..i0 + R` inside `a`, `out` and `res`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<const R: usize, const TWO: bool>(
    a: &[u8],
    i0: usize,
    lda: usize,
    b: &PackedB8,
    p0: usize,
    rq: &Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
    ldo: usize,
) {
    let (k, n) = (b.k, b.n);
    let (full, groups) = (k / KG, b.groups());
    let w0 = b.panel(p0).as_ptr();
    let w1 = if TWO { b.panel(p0 + 1).as_ptr() } else { w0 };
    // SAFETY: inlined into `gemm_requant`, which has AVX-512 F, BW, VL and VNNI (as every
    // intrinsic below relies on).
    let zero = unsafe { _mm512_setzero_si512() };
    let mut acc0 = [zero; R];
    let mut acc1 = [zero; R];
    let ap = a.as_ptr();
    for g in 0..full {
        // SAFETY: group `g < k / 4` lies inside each panel and inside each row's `k` values.
        unsafe {
            let v0 = _mm512_loadu_si512(w0.add(g * NR * KG).cast());
            let v1 = _mm512_loadu_si512(w1.add(g * NR * KG).cast());
            for r in 0..R {
                let word = ap
                    .add((i0 + r) * lda + g * KG)
                    .cast::<i32>()
                    .read_unaligned();
                let x = _mm512_set1_epi32(word);
                acc0[r] = _mm512_dpbusd_epi32(acc0[r], x, v0);
                if TWO {
                    acc1[r] = _mm512_dpbusd_epi32(acc1[r], x, v1);
                }
            }
        }
    }
    if full < groups {
        // The last group, past `k`: its weights are zero beyond `k`, its activations read safely.
        // SAFETY: group `full` lies inside each panel.
        let (v0, v1) = unsafe {
            (
                _mm512_loadu_si512(w0.add(full * NR * KG).cast()),
                _mm512_loadu_si512(w1.add(full * NR * KG).cast()),
            )
        };
        for r in 0..R {
            let row = &a[(i0 + r) * lda..(i0 + r) * lda + k];
            // SAFETY: register arithmetic only.
            unsafe {
                let x = _mm512_set1_epi32(i32::from_le_bytes(a_group(row, full, k)));
                acc0[r] = _mm512_dpbusd_epi32(acc0[r], x, v0);
                if TWO {
                    acc1[r] = _mm512_dpbusd_epi32(acc1[r], x, v1);
                }
            }
        }
    }
    // The sums are handed on by value: taking their address would keep them in memory through
    // the loop above (measured: a store per accumulator and group).
    // SAFETY: as this function's contract.
    unsafe {
        store_panel(acc0, i0, p0, n, rq, res, out, ldo);
        if TWO {
            store_panel(acc1, i0, p0 + 1, n, rq, res, out, ldo);
        }
    }
}

/// The codes of rows `i0..i0 + R` of panel `p` from their sums.
///
/// # Safety
/// As [`gemm_requant`], with rows `i0..i0 + R` inside `out` and `res`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn store_panel<const R: usize>(
    acc: [__m512i; R],
    i0: usize,
    p: usize,
    n: usize,
    rq: &Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
    ldo: usize,
) {
    let c0 = p * NR;
    let width = NR.min(n - c0);
    let mask: __mmask16 = if width == NR {
        0xffff
    } else {
        (1u16 << width) - 1
    };
    // SAFETY: `rq` holds `n` channels; row `i0 + r` of `out` (and `res`) holds columns `c0..n`,
    // which the mask keeps to.
    unsafe {
        let lanes = Lanes::new(rq, c0, mask);
        for (r, sums) in acc.into_iter().enumerate() {
            let o = (i0 + r) * ldo + c0;
            let q = lanes.codes(sums, res.map(|v| v.as_ptr().add(o)));
            _mm_mask_storeu_epi8(out.as_mut_ptr().add(o).cast(), mask, q);
        }
    }
}
