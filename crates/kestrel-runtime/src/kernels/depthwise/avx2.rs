//! The AVX2+FMA depthwise path for any kernel and any border: one output pixel at a time over a
//! table of its valid taps ([`Band::tap_offsets`]).

use super::Band;
use crate::kernels::epilogue::clamp;

/// Output pixels `oxs` of one row with AVX2+FMA, one pixel at a time over a table of its valid
/// taps (so any kernel and any border): 32 channels at a time in four accumulators, then 8, then a
/// scalar tail.
///
/// # Safety
/// AVX2 and FMA must be available; `b.image` must be valid for reads of every input row the
/// window of output row `oy` reads, `out_row` valid for writes of the pixels `oxs` (`c` floats
/// each, pixel `ox` at `ox · c`), and no other thread may access channels `b.chs` of those
/// pixels.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pixels_avx2(
    b: &Band,
    oy: usize,
    oxs: std::ops::Range<usize>,
    out_row: *mut f32,
) {
    use std::arch::x86_64::*;
    let p = b.p;
    let c = p.hwc[2];
    let [kh, kw] = p.geom.kernel;
    let (lo, hi) = p.act.bounds();
    let (vlo, vhi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
    let img = b.image;
    let wts = p.weight.as_ptr();
    let bias = p.bias.as_ptr();
    // Up to 7x7 taps fit the stack table; larger kernels use the heap.
    let mut offs_buf = [(0usize, 0usize); 49];
    let mut offs_vec = Vec::new();
    let offs_all: &mut [(usize, usize)] = if kh * kw <= offs_buf.len() {
        &mut offs_buf
    } else {
        offs_vec.resize(kh * kw, (0, 0));
        &mut offs_vec
    };
    for ox in oxs {
        let n = b.tap_offsets(oy, ox, offs_all);
        let offs = &offs_all[..n];
        // SAFETY: every `(io, wo)` in `offs` is a tap inside the image, so `img + io + ch` reads
        // channel `ch < c` of a row the caller made readable, and `wts + wo + ch`, `bias + ch`
        // lie in the `kh·kw·c` weights and `c` biases; `dst + ch` is channel `ch` of pixel `ox`,
        // which the caller made writable. Each step below reads channels `ch..ch + 32` (or 8, or
        // 1) only while they are below `chs.end ≤ c`.
        unsafe {
            let dst = out_row.add(ox * c);
            let (mut ch, end) = (b.chs.start, b.chs.end);
            while ch + 32 <= end {
                let mut a0 = _mm256_loadu_ps(bias.add(ch));
                let mut a1 = _mm256_loadu_ps(bias.add(ch + 8));
                let mut a2 = _mm256_loadu_ps(bias.add(ch + 16));
                let mut a3 = _mm256_loadu_ps(bias.add(ch + 24));
                for &(io, wo) in offs.iter() {
                    let s = img.add(io + ch);
                    let k = wts.add(wo + ch);
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(k), a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(s.add(8)), _mm256_loadu_ps(k.add(8)), a1);
                    a2 =
                        _mm256_fmadd_ps(_mm256_loadu_ps(s.add(16)), _mm256_loadu_ps(k.add(16)), a2);
                    a3 =
                        _mm256_fmadd_ps(_mm256_loadu_ps(s.add(24)), _mm256_loadu_ps(k.add(24)), a3);
                }
                _mm256_storeu_ps(dst.add(ch), _mm256_min_ps(_mm256_max_ps(a0, vlo), vhi));
                _mm256_storeu_ps(dst.add(ch + 8), _mm256_min_ps(_mm256_max_ps(a1, vlo), vhi));
                _mm256_storeu_ps(dst.add(ch + 16), _mm256_min_ps(_mm256_max_ps(a2, vlo), vhi));
                _mm256_storeu_ps(dst.add(ch + 24), _mm256_min_ps(_mm256_max_ps(a3, vlo), vhi));
                ch += 32;
            }
            while ch + 8 <= end {
                let mut a0 = _mm256_loadu_ps(bias.add(ch));
                for &(io, wo) in offs.iter() {
                    a0 = _mm256_fmadd_ps(
                        _mm256_loadu_ps(img.add(io + ch)),
                        _mm256_loadu_ps(wts.add(wo + ch)),
                        a0,
                    );
                }
                _mm256_storeu_ps(dst.add(ch), _mm256_min_ps(_mm256_max_ps(a0, vlo), vhi));
                ch += 8;
            }
            while ch < end {
                let mut a = *bias.add(ch);
                for &(io, wo) in offs.iter() {
                    a = (*img.add(io + ch)).mul_add(*wts.add(wo + ch), a);
                }
                *dst.add(ch) = clamp(a, lo, hi);
                ch += 1;
            }
        }
    }
}
