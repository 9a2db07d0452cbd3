//! AVX-512 kernels for 3×3, vertical-stride-1, vertical-dilation-1 depthwise convolutions that
//! compute two output rows at once: the four input rows the pair's windows cover are each read
//! once for both rows (a third fewer loads than two single rows).

use super::avx512_k3::{lane_mask, load_taps, pixels_avx512, Block};
use super::Band;

/// One 16-channel block's operands in [`row_pair_avx512_k3`]: four input rows, 3×3 taps.
type Pair<'a> = Block<'a, 4, 3>;

/// Output rows `oy` and `oy + 1` (at `out` and `out + ow·c`) of a 3×3, vertical-stride-1,
/// vertical-dilation-1 depthwise convolution whose six row taps are all inside the image: the
/// interior reads each of the four input rows once for both output rows; border pixels go
/// through [`pixels_avx512`].
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available and the geometry as above, with all six row taps of
/// the two rows inside the image; `b.image` must be valid for reads of the four input rows,
/// `out` for writes of two rows of `ow × c` floats, and no other thread may access channels
/// `b.chs` of those rows.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row_pair_avx512_k3(b: &Band, oy: usize, out: *mut f32) {
    use std::arch::x86_64::*;
    let (p, image, row_base, ow, chs) = (b.p, b.image, b.row_base, b.ow, &b.chs);
    let [_, w, c] = p.hwc;
    let g = &p.geom;
    let (s, pad, d) = (g.stride[1], g.padding[1], g.dilation[1]);
    // SAFETY: the second output row starts one row (`ow·c` floats) after the first.
    let out1 = unsafe { out.add(ow * c) };
    let std::ops::Range { start: lo, end: hi } = g.axis(1, w).interior(ow);
    for (row, dst) in [(oy, out), (oy + 1, out1)] {
        // SAFETY: the border pixels of both rows; the caller's contract is `pixels_avx512`'s.
        unsafe {
            pixels_avx512(b, row, 0..lo, dst);
            pixels_avx512(b, row, hi..ow, dst);
        }
    }
    if hi == lo {
        return;
    }
    // Input row (within `image`) of kernel row 0 for output row `oy`; inside the image, as the
    // caller checked.
    let first = oy - g.padding[0] - row_base;
    let mut rows = [image; 4];
    for (r, row) in rows.iter_mut().enumerate() {
        // SAFETY: input rows `first..first + 4` are the pair's windows, inside the readable band.
        *row = unsafe { image.add((first + r) * w * c) };
    }
    let (lo_v, hi_v) = p.act.bounds();
    let (vlo, vhi) = (_mm512_set1_ps(lo_v), _mm512_set1_ps(hi_v));
    let wts = p.weight.as_ptr();
    let bias = p.bias.as_ptr();
    let (sc, dc) = (s * c, d * c);
    let mut ch = chs.start;
    while ch < chs.end {
        let m = lane_mask(chs.end - ch);
        // SAFETY: the masked lanes are channels below `chs.end ≤ c` of the weights and biases;
        // the pixel kernels read interior taps of the four rows above and write interior pixels
        // `lo..hi` of both output rows (the caller's contract).
        unsafe {
            let wv = load_taps::<3>(wts, 0, c, ch, m);
            let bias_v = _mm512_maskz_loadu_ps(m, bias.add(ch));
            let k: Pair = Block::new(&rows, &wv, bias_v, [vlo, vhi], m, [sc, dc]);
            let mut ox = lo;
            if s == 1 && d == 1 {
                ox = slide_pairs(&k, lo..hi, pad, ch, [out, out1], c);
            }
            while ox + 4 <= hi {
                let x0 = (ox * s - pad) * c + ch;
                pixel_pairs_k3::<4>(&k, x0, out.add(ox * c + ch), out1.add(ox * c + ch), c);
                ox += 4;
            }
            while ox < hi {
                let x0 = (ox * s - pad) * c + ch;
                pixel_pairs_k3::<1>(&k, x0, out.add(ox * c + ch), out1.add(ox * c + ch), c);
                ox += 1;
            }
        }
        ch += 16;
    }
}

/// `Q` neighbouring pixels of both output rows for one 16-channel block: each input load feeds
/// the upper row (kernel rows 0–2 from input rows 0–2) and the lower one (from input rows 1–3).
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available; the `Q` pixels must be interior pixels of both rows
/// (every tap inside the four readable rows `k.rows`, neighbouring pixels `k.sc` floats apart and
/// column taps `k.dc`), and `dst0`, `dst1` writable for `Q` pixels of `c` floats at the block's
/// lanes.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn pixel_pairs_k3<const Q: usize>(
    k: &Pair,
    x0: usize,
    dst0: *mut f32,
    dst1: *mut f32,
    c: usize,
) {
    use std::arch::x86_64::*;
    let mut up = [_mm512_setzero_ps(); Q];
    let mut down = [_mm512_setzero_ps(); Q];
    for r in 0..4 {
        // SAFETY: interior taps of row `r` (the caller's contract).
        unsafe {
            let row = k.rows[r].add(x0);
            for kx in 0..3 {
                let xk = row.add(kx * k.dc);
                for q in 0..Q {
                    let x = _mm512_maskz_loadu_ps(k.m, xk.add(q * k.sc));
                    if r < 3 {
                        up[q] = _mm512_fmadd_ps(x, k.w[r][kx], up[q]);
                    }
                    if r > 0 {
                        down[q] = _mm512_fmadd_ps(x, k.w[r - 1][kx], down[q]);
                    }
                }
            }
        }
    }
    for q in 0..Q {
        let a = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(k.bias, up[q]), k.lo), k.hi);
        let b = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(k.bias, down[q]), k.lo), k.hi);
        // SAFETY: pixel `q` of the `Q` the caller made writable in both rows.
        unsafe {
            _mm512_mask_storeu_ps(dst0.add(q * c), k.m, a);
            _mm512_mask_storeu_ps(dst1.add(q * c), k.m, b);
        }
    }
}

/// Output pixels `cols` of both rows of one 16-channel block with [`pixel_pairs_slide`]
/// (horizontal stride and dilation 1), 6, 4, 2 and 1 pixels a step; returns the end of the range.
///
/// # Safety
/// As [`pixel_pairs_slide`], for every pixel of `cols` (output pixel `ox` at `out0 + ox·c + ch`
/// and `out1 + ox·c + ch`).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn slide_pairs(
    k: &Pair,
    cols: std::ops::Range<usize>,
    pad: usize,
    ch: usize,
    [out0, out1]: [*mut f32; 2],
    c: usize,
) -> usize {
    let mut ox = cols.start;
    // SAFETY: pixel `ox` of `cols`, in both rows (the caller's contract).
    let at = |ox: usize| unsafe {
        (
            (ox - pad) * c + ch,
            out0.add(ox * c + ch),
            out1.add(ox * c + ch),
        )
    };
    // SAFETY: each step covers pixels `ox..` of `cols` only.
    unsafe {
        while ox + 6 <= cols.end {
            let (x0, d0, d1) = at(ox);
            pixel_pairs_slide::<6>(k, x0, d0, d1, c);
            ox += 6;
        }
        if ox + 4 <= cols.end {
            let (x0, d0, d1) = at(ox);
            pixel_pairs_slide::<4>(k, x0, d0, d1, c);
            ox += 4;
        }
        if ox + 2 <= cols.end {
            let (x0, d0, d1) = at(ox);
            pixel_pairs_slide::<2>(k, x0, d0, d1, c);
            ox += 2;
        }
        if ox < cols.end {
            let (x0, d0, d1) = at(ox);
            pixel_pairs_slide::<1>(k, x0, d0, d1, c);
            ox += 1;
        }
    }
    ox
}

/// `Q` neighbouring pixels of both output rows for one 16-channel block of a convolution with
/// horizontal stride and dilation 1: the `Q + 2` input columns of each of the four input rows are
/// loaded once and each feeds every output pixel whose window covers it (up to three, in both
/// rows), so an input load feeds up to six FMAs.
///
/// # Safety
/// As [`pixel_pairs_k3`] at stride and dilation 1.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn pixel_pairs_slide<const Q: usize>(
    k: &Pair,
    x0: usize,
    dst0: *mut f32,
    dst1: *mut f32,
    c: usize,
) {
    use std::arch::x86_64::*;
    let w = *k.w;
    let mut up = [k.bias; Q];
    let mut down = [k.bias; Q];
    for r in 0..4 {
        // SAFETY: the `Q + 2` columns from `x0` are the windows of the `Q` interior pixels,
        // inside row `r` (the caller's contract).
        unsafe {
            let row = k.rows[r].add(x0);
            for j in 0..Q + 2 {
                let x = _mm512_maskz_loadu_ps(k.m, row.add(j * c));
                for q in 0..Q {
                    if j >= q && j - q < 3 {
                        if r < 3 {
                            up[q] = _mm512_fmadd_ps(x, w[r][j - q], up[q]);
                        }
                        if r > 0 {
                            down[q] = _mm512_fmadd_ps(x, w[r - 1][j - q], down[q]);
                        }
                    }
                }
            }
        }
    }
    for q in 0..Q {
        let a = _mm512_min_ps(_mm512_max_ps(up[q], k.lo), k.hi);
        let b = _mm512_min_ps(_mm512_max_ps(down[q], k.lo), k.hi);
        // SAFETY: pixel `q` of the `Q` the caller made writable in both rows.
        unsafe {
            _mm512_mask_storeu_ps(dst0.add(q * c), k.m, a);
            _mm512_mask_storeu_ps(dst1.add(q * c), k.m, b);
        }
    }
}
