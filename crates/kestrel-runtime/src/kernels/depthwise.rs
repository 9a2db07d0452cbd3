//! Direct depthwise convolution on NHWC data (one filter per channel), vectorised over channels
//! with AVX2+FMA when the CPU has them and a portable scalar loop otherwise, with fused
//! bias + activation (+ optional residual).
//!
//! Weight layout: `[kh][kw][channels]`.

use super::epilogue::{clamp, residual_act};
use super::geometry::{interior, valid_taps, ConvGeometry};
use crate::parallel::{row_pieces, Par};
use crate::Activation;

/// The operands of a depthwise convolution.
#[derive(Clone, Copy)]
pub struct Depthwise<'a> {
    /// Input `(height, width, channels)`.
    pub hwc: [usize; 3],
    /// Kernel, stride, padding and dilation.
    pub geom: ConvGeometry,
    /// `[kh][kw][c]` weights.
    pub weight: &'a [f32],
    /// `c` biases.
    pub bias: &'a [f32],
    /// Activation after bias (and residual).
    pub act: Activation,
}

/// Computes a batch of `n` images; `simd` selects the AVX2 path (ignored where unavailable).
pub fn depthwise(
    par: Par,
    p: &Depthwise,
    n: usize,
    input: &[f32],
    residual: Option<&[f32]>,
    out: &mut [f32],
    simd: bool,
) {
    let [h, w, c] = p.hwc;
    let (oh, ow) = p
        .geom
        .output_hw(h, w)
        .expect("depthwise geometry checked by the plan");
    assert!(input.len() >= n * h * w * c && out.len() >= n * oh * ow * c);
    assert!(p.weight.len() == p.geom.kernel[0] * p.geom.kernel[1] * c && p.bias.len() == c);
    let simd = simd && super::simd_available();
    let row_len = ow * c;
    let rows = n * oh;
    let items = row_pieces(out, rows, row_len, par.threads());
    let row_act = if residual.is_some() {
        Activation::None
    } else {
        p.act
    };
    // With a residual the activation comes after the add, so the rows are computed without it.
    let rows_p = Depthwise { act: row_act, ..*p };
    par.run(items, |_, (chunk, r0)| {
        // Runs of rows within one image, so that rows can be computed in pairs.
        let nrows = chunk.len() / row_len.max(1);
        let mut i = 0;
        while i < nrows {
            let (b, oy) = ((r0 + i) / oh, (r0 + i) % oh);
            let run = (oh - oy).min(nrows - i);
            let image = &input[b * h * w * c..(b + 1) * h * w * c];
            let dst = &mut chunk[i * row_len..(i + run) * row_len];
            depthwise_rows(&rows_p, image, 0, oy, oy + run, dst, simd);
            i += run;
        }
        if let Some(res) = residual {
            for (i, out_row) in chunk.chunks_exact_mut(row_len).enumerate() {
                let r = r0 + i;
                residual_act(out_row, Some(&res[r * row_len..(r + 1) * row_len]), p.act);
            }
        }
    });
}

/// Output rows `oy0..oy1` of one image, serially, reading input rows from `band`, which holds the
/// image's rows `row_base..` (every row the window needs must be present). Used by the fused
/// inverted-residual block.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_rows(
    p: &Depthwise,
    band: &[f32],
    row_base: usize,
    oy0: usize,
    oy1: usize,
    out: &mut [f32],
    simd: bool,
) {
    depthwise_rows_channels(p, band, row_base, oy0, oy1, 0..p.hwc[2], out, simd)
}

/// [`depthwise_rows`] for the channels `chs` only: `out` still has rows of all channels, and only
/// `chs` of each pixel are written (so threads can fill disjoint channel ranges of one output).
#[allow(clippy::too_many_arguments)]
pub fn depthwise_rows_channels(
    p: &Depthwise,
    band: &[f32],
    row_base: usize,
    oy0: usize,
    oy1: usize,
    chs: std::ops::Range<usize>,
    out: &mut [f32],
    simd: bool,
) {
    let [h, w, c] = p.hwc;
    let (_, ow) = p
        .geom
        .output_hw(h, w)
        .expect("depthwise geometry checked by the plan");
    assert!(chs.end <= c, "depthwise: channel range out of bounds");
    assert!(
        out.len() >= (oy1 - oy0) * ow * c,
        "depthwise: output too short"
    );
    if oy1 > oy0 {
        let g = &p.geom;
        let last = (((oy1 - 1) * g.stride[0] + (g.kernel[0] - 1) * g.dilation[0]) as isize
            - g.padding[0] as isize)
            .clamp(0, h as isize - 1) as usize;
        assert!(
            band.len() >= (last + 1 - row_base) * w * c,
            "depthwise: band too short"
        );
    }
    let simd = simd && super::simd_available();
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: AVX2 and FMA were detected above; `band` and `out` hold every row the output
        // rows `oy0..oy1` need (asserted above), and `out` is exclusively borrowed.
        unsafe {
            rows_avx2(
                p,
                band.as_ptr(),
                row_base,
                oy0..oy1,
                ow,
                chs,
                p.act,
                out.as_mut_ptr(),
            )
        };
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for (oy, out_row) in (oy0..oy1).zip(out.chunks_exact_mut(ow * c)) {
        row_scalar(p, band, row_base, oy, ow, chs.clone(), p.act, out_row);
    }
}

/// [`depthwise_rows_channels`] through raw pointers, for threads that fill disjoint channel
/// ranges of one output (and read the same ranges of one input) at the same time.
///
/// # Safety
/// AVX2 and FMA must be available ([`super::simd_available`]); `band` must be valid for reads of
/// every image row from `row_base` that the windows of output rows `oy0..oy1` read (`w × c` floats
/// a row), `out` valid for writes of `(oy1 − oy0) × ow × c` floats, `chs` within the channels,
/// and no other thread may write channels `chs` of `band` or access channels `chs` of `out`
/// during the call.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn depthwise_rows_channels_raw(
    p: &Depthwise,
    band: *const f32,
    row_base: usize,
    oy0: usize,
    oy1: usize,
    chs: std::ops::Range<usize>,
    out: *mut f32,
) {
    let [h, w, _] = p.hwc;
    let (_, ow) = p
        .geom
        .output_hw(h, w)
        .expect("depthwise geometry checked by the plan");
    rows_avx2(p, band, row_base, oy0..oy1, ow, chs, p.act, out);
}

/// Output rows `oys` (written from `out` on), two at a time where [`row_pair_avx512_k3`] applies,
/// else one at a time.
///
/// # Safety
/// As [`row_avx2`], for every row of `oys`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx2(
    p: &Depthwise,
    band: *const f32,
    row_base: usize,
    oys: std::ops::Range<usize>,
    ow: usize,
    chs: std::ops::Range<usize>,
    act: Activation,
    out: *mut f32,
) {
    let [h, _, c] = p.hwc;
    let g = &p.geom;
    let pairs =
        g.kernel == [3, 3] && g.stride[0] == 1 && g.dilation[0] == 1 && super::avx512_available();
    let full = |oy: usize| valid_taps(oy, h, 3, 1, g.padding[0], 1) == (0, 3);
    let mut oy = oys.start;
    while oy < oys.end {
        let dst = out.add((oy - oys.start) * ow * c);
        if pairs && oy + 1 < oys.end && full(oy) && full(oy + 1) {
            row_pair_avx512_k3(p, band, row_base, oy, ow, chs.clone(), act, dst);
            oy += 2;
        } else {
            row_avx2(p, band, row_base, oy, ow, chs.clone(), act, dst);
            oy += 1;
        }
    }
}

/// Output rows `oy` and `oy + 1` (at `out` and `out + ow·c`) of a 3×3, vertical-stride-1,
/// vertical-dilation-1 depthwise convolution whose six row taps are all inside the image: the
/// interior reads each of the four input rows once for both output rows (a third fewer loads
/// than two single rows); border pixels go through [`pixels_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_pair_avx512_k3(
    p: &Depthwise,
    image: *const f32,
    row_base: usize,
    oy: usize,
    ow: usize,
    chs: std::ops::Range<usize>,
    act: Activation,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    let [_, w, c] = p.hwc;
    let g = &p.geom;
    let (s, pad, d) = (g.stride[1], g.padding[1], g.dilation[1]);
    let out1 = out.add(ow * c);
    let std::ops::Range { start: lo, end: hi } = interior_columns(p, ow);
    for (row, dst) in [(oy, out), (oy + 1, out1)] {
        pixels_avx512(p, image, row_base, row, 0..lo, chs.clone(), act, dst);
        pixels_avx512(p, image, row_base, row, hi..ow, chs.clone(), act, dst);
    }
    if hi == lo {
        return;
    }
    // Input row (within `image`) of kernel row 0 for output row `oy`; inside the image, as the
    // caller checked.
    let first = oy - g.padding[0] - row_base;
    let mut rows = [image; 4];
    for (r, row) in rows.iter_mut().enumerate() {
        *row = image.add((first + r) * w * c);
    }
    let (lo_v, hi_v) = act.bounds();
    let (vlo, vhi) = (_mm512_set1_ps(lo_v), _mm512_set1_ps(hi_v));
    let wts = p.weight.as_ptr();
    let bias = p.bias.as_ptr();
    let (sc, dc) = (s * c, d * c);
    let mut ch = chs.start;
    while ch < chs.end {
        let m = lane_mask(chs.end - ch);
        let wv = load_taps::<3>(wts, 0, c, ch, m);
        let k = Pair {
            rows: &rows,
            w: &wv,
            bias: _mm512_maskz_loadu_ps(m, bias.add(ch)),
            lo: vlo,
            hi: vhi,
            m,
            sc,
            dc,
        };
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
        ch += 16;
    }
}

/// One 16-channel block's operands in [`row_pair_avx512_k3`]: four input rows, 3×3 taps.
#[cfg(target_arch = "x86_64")]
struct Pair<'a> {
    rows: &'a [*const f32; 4],
    w: &'a [[std::arch::x86_64::__m512; 3]; 3],
    bias: std::arch::x86_64::__m512,
    lo: std::arch::x86_64::__m512,
    hi: std::arch::x86_64::__m512,
    m: std::arch::x86_64::__mmask16,
    sc: usize,
    dc: usize,
}

/// `Q` neighbouring pixels of both output rows for one 16-channel block: each input load feeds
/// the upper row (kernel rows 0–2 from input rows 0–2) and the lower one (from input rows 1–3).
#[cfg(target_arch = "x86_64")]
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
    for q in 0..Q {
        let a = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(k.bias, up[q]), k.lo), k.hi);
        let b = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(k.bias, down[q]), k.lo), k.hi);
        _mm512_mask_storeu_ps(dst0.add(q * c), k.m, a);
        _mm512_mask_storeu_ps(dst1.add(q * c), k.m, b);
    }
}

/// Output pixels `cols` of both rows of one 16-channel block with [`pixel_pairs_slide`]
/// (horizontal stride and dilation 1), 6, 4, 2 and 1 pixels a step; returns the end of the range.
#[cfg(target_arch = "x86_64")]
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
    let at = |ox: usize| {
        (
            (ox - pad) * c + ch,
            out0.add(ox * c + ch),
            out1.add(ox * c + ch),
        )
    };
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
    ox
}

/// `Q` neighbouring pixels of both output rows for one 16-channel block of a convolution with
/// horizontal stride and dilation 1: the `Q + 2` input columns of each of the four input rows are
/// loaded once and each feeds every output pixel whose window covers it (up to three, in both
/// rows), so an input load feeds up to six FMAs.
#[cfg(target_arch = "x86_64")]
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
    for q in 0..Q {
        let a = _mm512_min_ps(_mm512_max_ps(up[q], k.lo), k.hi);
        let b = _mm512_min_ps(_mm512_max_ps(down[q], k.lo), k.hi);
        _mm512_mask_storeu_ps(dst0.add(q * c), k.m, a);
        _mm512_mask_storeu_ps(dst1.add(q * c), k.m, b);
    }
}

/// Channels `chs` of one output row, portable code.
#[allow(clippy::too_many_arguments)]
fn row_scalar(
    p: &Depthwise,
    image: &[f32],
    row_base: usize,
    oy: usize,
    ow: usize,
    chs: std::ops::Range<usize>,
    act: Activation,
    out_row: &mut [f32],
) {
    let [h, w, c] = p.hwc;
    let g = &p.geom;
    let [kh, kw] = g.kernel;
    let (lo, hi) = act.bounds();
    let (ky0, ky1) = valid_taps(oy, h, kh, g.stride[0], g.padding[0], g.dilation[0]);
    let iy0 = (oy * g.stride[0]) as isize - g.padding[0] as isize;
    for ox in 0..ow {
        let (kx0, kx1) = valid_taps(ox, w, kw, g.stride[1], g.padding[1], g.dilation[1]);
        let ix0 = (ox * g.stride[1]) as isize - g.padding[1] as isize;
        let dst = &mut out_row[ox * c + chs.start..ox * c + chs.end];
        dst.copy_from_slice(&p.bias[chs.clone()]);
        for ky in ky0..ky1 {
            let iy = (iy0 + (ky * g.dilation[0]) as isize) as usize;
            for kx in kx0..kx1 {
                let ix = (ix0 + (kx * g.dilation[1]) as isize) as usize;
                let at = ((iy - row_base) * w + ix) * c;
                let src = &image[at + chs.start..at + chs.end];
                let wt = &p.weight[(ky * kw + kx) * c + chs.start..(ky * kw + kx) * c + chs.end];
                for ((d, s), k) in dst.iter_mut().zip(src).zip(wt) {
                    *d += s * k;
                }
            }
        }
        for d in dst.iter_mut() {
            *d = clamp(*d, lo, hi);
        }
    }
}

/// One output row with the widest SIMD path this CPU has (AVX-512 for 3×3 kernels, else AVX2).
///
/// # Safety
/// AVX2 and FMA must be available; `image` must be valid for reads of every input row the window
/// of output row `oy` reads (rows `row_base..` of the image, `w × c` floats each), `out_row` valid
/// for writes of `ow × c` floats, and no other thread may access channels `chs` of that row.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_avx2(
    p: &Depthwise,
    image: *const f32,
    row_base: usize,
    oy: usize,
    ow: usize,
    chs: std::ops::Range<usize>,
    act: Activation,
    out_row: *mut f32,
) {
    if p.geom.kernel == [3, 3] && super::avx512_available() {
        row_avx512_k3(p, image, row_base, oy, ow, chs, act, out_row)
    } else {
        pixels_avx2(p, image, row_base, oy, 0..ow, chs, act, out_row)
    }
}

/// Output pixels `oxs` of one row with AVX2+FMA, one pixel at a time over a table of its valid
/// taps (so any kernel and any border): 32 channels at a time in four accumulators, then 8, then a
/// scalar tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn pixels_avx2(
    p: &Depthwise,
    image: *const f32,
    row_base: usize,
    oy: usize,
    oxs: std::ops::Range<usize>,
    chs: std::ops::Range<usize>,
    act: Activation,
    out_row: *mut f32,
) {
    use std::arch::x86_64::*;
    let c = p.hwc[2];
    let [kh, kw] = p.geom.kernel;
    let (lo, hi) = act.bounds();
    let (vlo, vhi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
    let img = image;
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
        let n = tap_offsets(p, row_base, oy, ox, offs_all);
        let offs = &offs_all[..n];
        let dst = out_row.add(ox * c);
        let (mut ch, end) = (chs.start, chs.end);
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
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(s.add(16)), _mm256_loadu_ps(k.add(16)), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(s.add(24)), _mm256_loadu_ps(k.add(24)), a3);
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

/// Fills `offs` with the (input offset, weight offset) pair, in floats, of every tap of output
/// pixel `(oy, ox)` that lies inside the image (input offsets counted from row `row_base`), and
/// returns how many there are; `offs` must hold `kh · kw` pairs.
fn tap_offsets(
    p: &Depthwise,
    row_base: usize,
    oy: usize,
    ox: usize,
    offs: &mut [(usize, usize)],
) -> usize {
    let [h, w, c] = p.hwc;
    let g = &p.geom;
    let [kh, kw] = g.kernel;
    let (ky0, ky1) = valid_taps(oy, h, kh, g.stride[0], g.padding[0], g.dilation[0]);
    let (kx0, kx1) = valid_taps(ox, w, kw, g.stride[1], g.padding[1], g.dilation[1]);
    let mut t = 0;
    for ky in ky0..ky1 {
        let iy = oy * g.stride[0] + ky * g.dilation[0] - g.padding[0];
        for kx in kx0..kx1 {
            let ix = ox * g.stride[1] + kx * g.dilation[1] - g.padding[1];
            offs[t] = (((iy - row_base) * w + ix) * c, (ky * kw + kx) * c);
            t += 1;
        }
    }
    t
}

/// [`pixels_avx2`] in AVX-512 registers, for the border pixels of the AVX-512 3×3 kernels:
/// 64 channels a step in four accumulators, then 16 at a time with the tail masked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn pixels_avx512(
    p: &Depthwise,
    image: *const f32,
    row_base: usize,
    oy: usize,
    oxs: std::ops::Range<usize>,
    chs: std::ops::Range<usize>,
    act: Activation,
    out_row: *mut f32,
) {
    use std::arch::x86_64::*;
    let c = p.hwc[2];
    let (lo, hi) = act.bounds();
    let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    let (wts, bias) = (p.weight.as_ptr(), p.bias.as_ptr());
    let clamp = |v: __m512| _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
    // 3×3 kernels only.
    let mut table = [(0usize, 0usize); 9];
    for ox in oxs {
        let n = tap_offsets(p, row_base, oy, ox, &mut table);
        let offs = &table[..n];
        let dst = out_row.add(ox * c);
        let mut ch = chs.start;
        while ch + 64 <= chs.end {
            let mut a = [_mm512_setzero_ps(); 4];
            for (j, a) in a.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(bias.add(ch + 16 * j));
            }
            for &(io, wo) in offs {
                for (j, a) in a.iter_mut().enumerate() {
                    let x = _mm512_loadu_ps(image.add(io + ch + 16 * j));
                    *a = _mm512_fmadd_ps(x, _mm512_loadu_ps(wts.add(wo + ch + 16 * j)), *a);
                }
            }
            for (j, a) in a.iter().enumerate() {
                _mm512_storeu_ps(dst.add(ch + 16 * j), clamp(*a));
            }
            ch += 64;
        }
        while ch < chs.end {
            let m = lane_mask(chs.end - ch);
            let mut a = _mm512_maskz_loadu_ps(m, bias.add(ch));
            for &(io, wo) in offs {
                let x = _mm512_maskz_loadu_ps(m, image.add(io + ch));
                a = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, wts.add(wo + ch)), a);
            }
            _mm512_mask_storeu_ps(dst.add(ch), m, clamp(a));
            ch += 16;
        }
    }
}

/// The output columns whose column taps all lie inside the image (see [`interior`]).
fn interior_columns(p: &Depthwise, ow: usize) -> std::ops::Range<usize> {
    let g = &p.geom;
    interior(
        ow,
        p.hwc[1],
        g.kernel[1],
        g.stride[1],
        g.padding[1],
        g.dilation[1],
    )
}

/// One output row of a 3×3 depthwise convolution with AVX-512 (any stride, padding and dilation).
/// Border pixels, where a column tap falls outside the image, go through [`pixels_avx512`]; the
/// interior runs 16 channels at a time with the block's taps held in registers, sliding along the
/// row at horizontal dilation 1 and stride 1 or 2 ([`pixels_slide`]: each input column loaded once
/// per kernel row), else four output pixels per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_avx512_k3(
    p: &Depthwise,
    image: *const f32,
    row_base: usize,
    oy: usize,
    ow: usize,
    chs: std::ops::Range<usize>,
    act: Activation,
    out_row: *mut f32,
) {
    let h = p.hwc[0];
    let g = &p.geom;
    let std::ops::Range { start: lo, end: hi } = interior_columns(p, ow);
    pixels_avx512(p, image, row_base, oy, 0..lo, chs.clone(), act, out_row);
    pixels_avx512(p, image, row_base, oy, hi..ow, chs.clone(), act, out_row);
    if hi == lo {
        return;
    }
    let (ky0, ky1) = valid_taps(oy, h, 3, g.stride[0], g.padding[0], g.dilation[0]);
    let iy0 = (oy * g.stride[0]) as isize - g.padding[0] as isize;
    let interior = Interior {
        p,
        image,
        row_base,
        iy0,
        ky0,
        cols: lo..hi,
        chs,
        act,
    };
    match ky1 - ky0 {
        3 => interior_avx512::<3>(&interior, out_row),
        2 => interior_avx512::<2>(&interior, out_row),
        1 => interior_avx512::<1>(&interior, out_row),
        _ => {}
    }
}

/// The interior pixels of one output row of a 3×3 depthwise convolution.
#[cfg(target_arch = "x86_64")]
struct Interior<'a, 'b> {
    p: &'a Depthwise<'b>,
    image: *const f32,
    row_base: usize,
    /// Input row of kernel row 0 (may be negative).
    iy0: isize,
    /// First valid kernel row.
    ky0: usize,
    /// Output columns whose three column taps are all inside the image.
    cols: std::ops::Range<usize>,
    /// Channels to compute.
    chs: std::ops::Range<usize>,
    act: Activation,
}

/// [`row_avx512_k3`]'s interior with `R` valid kernel rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn interior_avx512<const R: usize>(t: &Interior, out_row: *mut f32) {
    use std::arch::x86_64::*;
    let p = t.p;
    let [_, w, c] = p.hwc;
    let g = &p.geom;
    let (s, pad, dy, d) = (g.stride[1], g.padding[1], g.dilation[0], g.dilation[1]);
    let (lo, hi) = t.act.bounds();
    let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    let img = t.image;
    let wts = p.weight.as_ptr();
    let bias = p.bias.as_ptr();
    let dst = out_row;
    // Start of each valid kernel row's input row in `image`.
    let mut rows = [img; R];
    for (r, row) in rows.iter_mut().enumerate() {
        let iy = (t.iy0 + ((t.ky0 + r) * dy) as isize) as usize;
        *row = img.add((iy - t.row_base) * w * c);
    }
    let sc = s * c;
    let dc = d * c;
    let mut ch = t.chs.start;
    while ch < t.chs.end {
        let m = lane_mask(t.chs.end - ch);
        let b = _mm512_maskz_loadu_ps(m, bias.add(ch));
        let wv = load_taps::<R>(wts, t.ky0, c, ch, m);
        let k = Taps {
            rows: &rows,
            w: &wv,
            bias: b,
            lo: vlo,
            hi: vhi,
            m,
            sc,
            dc,
        };
        let mut ox = t.cols.start;
        if d == 1 && s == 1 {
            ox = slide_row::<R, 1>(&k, ox..t.cols.end, pad, ch, dst, c);
        } else if d == 1 && s == 2 {
            ox = slide_row::<R, 2>(&k, ox..t.cols.end, pad, ch, dst, c);
        }
        while ox + 4 <= t.cols.end {
            pixels_k3::<R, 4>(&k, (ox * s - pad) * c + ch, dst.add(ox * c + ch), c);
            ox += 4;
        }
        while ox < t.cols.end {
            pixels_k3::<R, 1>(&k, (ox * s - pad) * c + ch, dst.add(ox * c + ch), c);
            ox += 1;
        }
        ch += 16;
    }
}

/// The lanes of a 16-channel block with `left` channels still to do (all sixteen, or the tail).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lane_mask(left: usize) -> std::arch::x86_64::__mmask16 {
    if left >= 16 {
        0xFFFF
    } else {
        (1u16 << left) - 1
    }
}

/// The 3×3 filter's kernel rows `ky0..ky0 + R` for channels `ch..` (lanes `m`), one register per
/// tap; weights are `[ky][kx][c]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn load_taps<const R: usize>(
    wts: *const f32,
    ky0: usize,
    c: usize,
    ch: usize,
    m: std::arch::x86_64::__mmask16,
) -> [[std::arch::x86_64::__m512; 3]; R] {
    use std::arch::x86_64::*;
    let mut wv = [[_mm512_setzero_ps(); 3]; R];
    for (r, wr) in wv.iter_mut().enumerate() {
        for (kx, wk) in wr.iter_mut().enumerate() {
            *wk = _mm512_maskz_loadu_ps(m, wts.add(((ky0 + r) * 3 + kx) * c + ch));
        }
    }
    wv
}

/// One 16-channel block's operands in [`interior_avx512`].
#[cfg(target_arch = "x86_64")]
struct Taps<'a, const R: usize> {
    rows: &'a [*const f32; R],
    w: &'a [[std::arch::x86_64::__m512; 3]; R],
    bias: std::arch::x86_64::__m512,
    lo: std::arch::x86_64::__m512,
    hi: std::arch::x86_64::__m512,
    m: std::arch::x86_64::__mmask16,
    /// Input step between neighbouring output pixels (stride × channels).
    sc: usize,
    /// Input step between column taps (dilation × channels).
    dc: usize,
}

/// Output pixels `cols` of one 16-channel block with [`pixels_slide`] (horizontal stride `S`,
/// dilation 1), 8 (stride 1 only: at stride 2 the wider step measured slower), 4, 2 and 1 pixels
/// a step; returns the end of the range.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn slide_row<const R: usize, const S: usize>(
    k: &Taps<R>,
    cols: std::ops::Range<usize>,
    pad: usize,
    ch: usize,
    dst: *mut f32,
    c: usize,
) -> usize {
    let mut ox = cols.start;
    while S == 1 && ox + 8 <= cols.end {
        pixels_slide::<R, S, 8>(k, (ox * S - pad) * c + ch, dst.add(ox * c + ch), c);
        ox += 8;
    }
    while ox + 4 <= cols.end {
        pixels_slide::<R, S, 4>(k, (ox * S - pad) * c + ch, dst.add(ox * c + ch), c);
        ox += 4;
    }
    if ox + 2 <= cols.end {
        pixels_slide::<R, S, 2>(k, (ox * S - pad) * c + ch, dst.add(ox * c + ch), c);
        ox += 2;
    }
    if ox < cols.end {
        pixels_slide::<R, S, 1>(k, (ox * S - pad) * c + ch, dst.add(ox * c + ch), c);
        ox += 1;
    }
    ox
}

/// `Q` neighbouring output pixels of one 16-channel block of a convolution with horizontal
/// stride `S` and dilation 1, the first reading input offset `x0` of each row: the
/// `(Q − 1)·S + 3` input columns of each kernel row are loaded once, each feeding every pixel
/// whose window covers it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn pixels_slide<const R: usize, const S: usize, const Q: usize>(
    k: &Taps<R>,
    x0: usize,
    dst: *mut f32,
    c: usize,
) {
    use std::arch::x86_64::*;
    let w = *k.w;
    let mut acc = [k.bias; Q];
    for (r, wr) in w.iter().enumerate() {
        let row = k.rows[r].add(x0);
        for j in 0..(Q - 1) * S + 3 {
            let x = _mm512_maskz_loadu_ps(k.m, row.add(j * c));
            for (q, a) in acc.iter_mut().enumerate() {
                if j >= q * S && j - q * S < 3 {
                    *a = _mm512_fmadd_ps(x, wr[j - q * S], *a);
                }
            }
        }
    }
    for (q, a) in acc.iter().enumerate() {
        let v = _mm512_min_ps(_mm512_max_ps(*a, k.lo), k.hi);
        _mm512_mask_storeu_ps(dst.add(q * c), k.m, v);
    }
}

/// `Q` neighbouring output pixels of one 16-channel block, the first reading input offset `x0` of
/// each row; one accumulator per pixel and kernel row, so dependency chains stay three FMAs long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn pixels_k3<const R: usize, const Q: usize>(
    k: &Taps<R>,
    x0: usize,
    dst: *mut f32,
    c: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); R]; Q];
    for r in 0..R {
        let row = k.rows[r].add(x0);
        for kx in 0..3 {
            let xk = row.add(kx * k.dc);
            for (q, a) in acc.iter_mut().enumerate() {
                let x = _mm512_maskz_loadu_ps(k.m, xk.add(q * k.sc));
                a[r] = _mm512_fmadd_ps(x, k.w[r][kx], a[r]);
            }
        }
    }
    for (q, a) in acc.iter().enumerate() {
        let mut v = _mm512_add_ps(k.bias, a[0]);
        for ar in &a[1..] {
            v = _mm512_add_ps(v, *ar);
        }
        let v = _mm512_min_ps(_mm512_max_ps(v, k.lo), k.hi);
        _mm512_mask_storeu_ps(dst.add(q * c), k.m, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::{close, conv_ref, lcg_vec, pack_depthwise, RefConv};
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn check(
        hwc: [usize; 3],
        batch: usize,
        geom: ConvGeometry,
        act: Activation,
        with_res: bool,
        threads: usize,
        simd: bool,
        seed: u64,
    ) {
        let Some((oh, ow)) = geom.output_hw(hwc[0], hwc[1]) else {
            return;
        };
        let c = hwc[2];
        let x = lcg_vec(batch * hwc[0] * hwc[1] * c, seed);
        let w_oihw = lcg_vec(c * geom.kernel[0] * geom.kernel[1], seed + 1);
        let bias = lcg_vec(c, seed + 2);
        let res = lcg_vec(batch * oh * ow * c, seed + 3);
        let res = if with_res { Some(&res[..]) } else { None };
        let want = conv_ref(
            &RefConv::new(hwc, c, geom, c),
            batch,
            &x,
            &w_oihw,
            &bias,
            res,
            act,
        );
        let weight = pack_depthwise(&w_oihw, c, geom.kernel[0], geom.kernel[1]);
        let p = Depthwise {
            hwc,
            geom,
            weight: &weight,
            bias: &bias,
            act,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut out = vec![f32::NAN; batch * oh * ow * c];
        depthwise(
            Par::new(Some(&pool), threads),
            &p,
            batch,
            &x,
            res,
            &mut out,
            simd,
        );
        close(&out, &want, 1e-5);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_naive_reference(h in 1usize..12, w in 1usize..12, c in 1usize..75,
                                   k in prop::sample::select(vec![1usize, 3, 5]), s in 1usize..3, d in 1usize..3, p in 0usize..3,
                                   batch in prop::sample::select(vec![1usize, 3]), act in 0usize..3, res in any::<bool>(),
                                   threads in 1usize..4, simd in any::<bool>(), seed in 0u64..1000) {
            let act = [Activation::None, Activation::Relu, Activation::Relu6][act];
            check([h, w, c], batch, ConvGeometry::square(k, s, p, d), act, res, threads, simd, seed);
        }
    }

    #[test]
    fn every_row_width_of_the_sliding_kernels() {
        // Widths 1..=20 give interiors of every remainder after the 6-, 4-, 2- and 1-pixel steps;
        // 16, 20 and 35 channels give whole and masked 16-lane blocks; padding 0 and 1, stride
        // 1 and 2.
        for w in 1..=20 {
            for c in [16, 20, 35] {
                for (s, pad) in [(1, 1), (1, 0), (2, 1)] {
                    let g = ConvGeometry::square(3, s, pad, 1);
                    check([6, w, c], 1, g, Activation::Relu6, false, 1, true, w as u64);
                }
            }
        }
    }

    #[test]
    fn mobilenet_shapes_both_paths() {
        for simd in [false, true] {
            check(
                [14, 14, 96],
                1,
                ConvGeometry::square(3, 1, 1, 1),
                Activation::Relu6,
                false,
                2,
                simd,
                1,
            );
            check(
                [15, 15, 40],
                3,
                ConvGeometry::square(3, 2, 1, 1),
                Activation::Relu6,
                false,
                2,
                simd,
                2,
            );
            check(
                [9, 9, 33],
                1,
                ConvGeometry::square(3, 1, 2, 2),
                Activation::Relu,
                true,
                1,
                simd,
                3,
            );
            // non-square geometry
            let g = ConvGeometry {
                kernel: [3, 1],
                stride: [2, 1],
                padding: [1, 0],
                dilation: [1, 2],
            };
            check([7, 5, 17], 3, g, Activation::None, false, 2, simd, 4);
        }
    }
}
