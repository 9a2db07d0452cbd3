//! AVX-512 kernels for 3×3 depthwise convolutions, one output row at a time: border pixels (a
//! column tap outside the image) through a tap table, interior pixels 16 channels at a time with
//! the block's taps held in registers, sliding along the row where the horizontal dilation is 1.
//! Also the helpers the two-row kernels of `avx512_k3_pairs` share: [`lane_mask`],
//! [`load_taps`] and [`pixels_avx512`].

use super::Band;
use std::arch::x86_64::{__m512, __mmask16};

/// [`super::avx2::pixels_avx2`] in AVX-512 registers, for the border pixels of the AVX-512 3×3
/// kernels: 64 channels a step in four accumulators, then 16 at a time with the tail masked.
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available, the kernel 3×3; otherwise as
/// [`super::avx2::pixels_avx2`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn pixels_avx512(
    b: &Band,
    oy: usize,
    oxs: std::ops::Range<usize>,
    out_row: *mut f32,
) {
    use std::arch::x86_64::*;
    let (p, image, chs) = (b.p, b.image, &b.chs);
    let c = p.hwc[2];
    let (lo, hi) = p.act.bounds();
    let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    let (wts, bias) = (p.weight.as_ptr(), p.bias.as_ptr());
    let clamp = |v: __m512| _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
    // 3×3 kernels only.
    let mut table = [(0usize, 0usize); 9];
    for ox in oxs {
        let n = b.tap_offsets(oy, ox, &mut table);
        let offs = &table[..n];
        // SAFETY: as in `pixels_avx2`: the table holds only taps inside the image, the weights
        // and biases hold `c` floats a tap, and every load and store covers channels below
        // `chs.end ≤ c` (whole blocks of 64, then blocks of 16 masked to the channels left).
        unsafe {
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
}

/// One output row of a 3×3 depthwise convolution with AVX-512 (any stride, padding and dilation).
/// Border pixels, where a column tap falls outside the image, go through [`pixels_avx512`]; the
/// interior runs 16 channels at a time with the block's taps held in registers, sliding along the
/// row at horizontal dilation 1 and stride 1 or 2 ([`pixels_slide`]: each input column loaded once
/// per kernel row), else four output pixels per step.
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available and the kernel 3×3; otherwise as
/// [`Band::row`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row_avx512_k3(b: &Band, oy: usize, out_row: *mut f32) {
    let [h, w, _] = b.p.hwc;
    let ow = b.ow;
    let rows = b.p.geom.axis(0, h);
    let std::ops::Range { start: lo, end: hi } = b.p.geom.axis(1, w).interior(ow);
    // SAFETY: the border pixels `0..lo` and `hi..ow` are pixels of this row; the caller's
    // contract is `pixels_avx512`'s for them.
    unsafe {
        pixels_avx512(b, oy, 0..lo, out_row);
        pixels_avx512(b, oy, hi..ow, out_row);
    }
    if hi == lo {
        return;
    }
    let (ky0, ky1) = rows.valid_taps(oy);
    let interior = Interior {
        band: b,
        iy0: rows.input_at(oy, 0),
        ky0,
        cols: lo..hi,
    };
    // SAFETY: `ky1 − ky0` kernel rows are inside the image, the columns `lo..hi` have all three
    // column taps inside it, and the caller's contract covers the row's buffers.
    unsafe {
        match ky1 - ky0 {
            3 => interior_avx512::<3>(&interior, out_row),
            2 => interior_avx512::<2>(&interior, out_row),
            1 => interior_avx512::<1>(&interior, out_row),
            _ => {}
        }
    }
}

/// The interior pixels of one output row of a 3×3 depthwise convolution.
struct Interior<'a, 'b, 'c> {
    /// The input rows and channels.
    band: &'a Band<'b, 'c>,
    /// Input row of kernel row 0 (may be negative).
    iy0: isize,
    /// First valid kernel row.
    ky0: usize,
    /// Output columns whose three column taps are all inside the image.
    cols: std::ops::Range<usize>,
}

/// [`row_avx512_k3`]'s interior with `R` valid kernel rows.
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available; kernel rows `t.ky0..t.ky0 + R` of the output row
/// must lie inside the image and be readable from `t.band.image`, the columns `t.cols` must have all
/// three column taps inside the image, and `out_row` must be writable for the row's pixels.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn interior_avx512<const R: usize>(t: &Interior, out_row: *mut f32) {
    use std::arch::x86_64::*;
    let (p, chs) = (t.band.p, &t.band.chs);
    let [_, w, c] = p.hwc;
    let g = &p.geom;
    let (s, pad, dy, d) = (g.stride[1], g.padding[1], g.dilation[0], g.dilation[1]);
    let (lo, hi) = p.act.bounds();
    let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    let img = t.band.image;
    let wts = p.weight.as_ptr();
    let bias = p.bias.as_ptr();
    let dst = out_row;
    // Start of each valid kernel row's input row in `image`.
    let mut rows = [img; R];
    for (r, row) in rows.iter_mut().enumerate() {
        let iy = (t.iy0 + ((t.ky0 + r) * dy) as isize) as usize;
        // SAFETY: kernel row `ky0 + r` reads input row `iy`, inside the image and at or after
        // `row_base` (the caller's contract), so its start is inside the readable band.
        *row = unsafe { img.add((iy - t.band.row_base) * w * c) };
    }
    let sc = s * c;
    let dc = d * c;
    let mut ch = chs.start;
    while ch < chs.end {
        let m = lane_mask(chs.end - ch);
        // SAFETY: the masked lanes are channels `ch..` below `chs.end ≤ c` of the `c` biases and
        // of the `9·c` weights; the pixel kernels read only interior taps of the rows above and
        // write pixels `t.cols` of the output row (the caller's contract).
        unsafe {
            let bias_v = _mm512_maskz_loadu_ps(m, bias.add(ch));
            let wv = load_taps::<R>(wts, t.ky0, c, ch, m);
            let k: Taps<R> = Block::new(&rows, &wv, bias_v, [vlo, vhi], m, [sc, dc]);
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
        }
        ch += 16;
    }
}

/// The lanes of a 16-channel block with `left` channels still to do (all sixteen, or the tail).
#[inline(always)]
pub(super) fn lane_mask(left: usize) -> __mmask16 {
    if left >= 16 {
        0xFFFF
    } else {
        (1u16 << left) - 1
    }
}

/// The 3×3 filter's kernel rows `ky0..ky0 + R` for channels `ch..` (lanes `m`), one register per
/// tap; weights are `[ky][kx][c]`.
///
/// # Safety
/// AVX-512F must be available; `wts` must hold the `9 · c` weights, `ky0 + R ≤ 3`, and the lanes
/// of `m` must be channels below `c`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(super) unsafe fn load_taps<const R: usize>(
    wts: *const f32,
    ky0: usize,
    c: usize,
    ch: usize,
    m: __mmask16,
) -> [[__m512; 3]; R] {
    use std::arch::x86_64::*;
    let mut wv = [[_mm512_setzero_ps(); 3]; R];
    for (r, wr) in wv.iter_mut().enumerate() {
        for (kx, wk) in wr.iter_mut().enumerate() {
            // SAFETY: tap `(ky0 + r, kx)` of channels `ch..` (lanes `m`) lies in the weights.
            *wk = unsafe { _mm512_maskz_loadu_ps(m, wts.add(((ky0 + r) * 3 + kx) * c + ch)) };
        }
    }
    wv
}

/// One 16-channel block's operands in the 3×3 kernels: `ROWS` input rows (each pointing at the
/// block's first input pixel of the row) and `TAPS` kernel rows of three taps in registers, with
/// the bias, the activation's bounds and the lanes in use. A single output row reads one input
/// row per valid kernel row ([`Taps`]); a pair of rows reads four input rows for three kernel
/// rows.
pub(super) struct Block<'a, const ROWS: usize, const TAPS: usize> {
    /// The input rows the kernel rows read, each at the row's first float; the kernels add the
    /// offset of a window's first pixel and the block's first channel.
    pub(super) rows: &'a [*const f32; ROWS],
    /// The block's weights: three column taps per kernel row.
    pub(super) w: &'a [[__m512; 3]; TAPS],
    /// The block's biases.
    pub(super) bias: __m512,
    /// The activation's lower bound in every lane.
    pub(super) lo: __m512,
    /// The activation's upper bound in every lane.
    pub(super) hi: __m512,
    /// The lanes in use: channels below the end of the range computed.
    pub(super) m: __mmask16,
    /// Input step between neighbouring output pixels (stride × channels).
    pub(super) sc: usize,
    /// Input step between column taps (dilation × channels).
    pub(super) dc: usize,
}

/// The [`Block`] of a single output row with `R` valid kernel rows.
type Taps<'a, const R: usize> = Block<'a, R, R>;

impl<'a, const ROWS: usize, const TAPS: usize> Block<'a, ROWS, TAPS> {
    /// The block over `rows` with taps `w`, `bias`, clamp bounds `[lo, hi]`, lanes `m` and input
    /// steps `[sc, dc]`.
    #[inline(always)]
    pub(super) fn new(
        rows: &'a [*const f32; ROWS],
        w: &'a [[__m512; 3]; TAPS],
        bias: __m512,
        [lo, hi]: [__m512; 2],
        m: __mmask16,
        [sc, dc]: [usize; 2],
    ) -> Self {
        Block {
            rows,
            w,
            bias,
            lo,
            hi,
            m,
            sc,
            dc,
        }
    }
}

/// Output pixels `cols` of one 16-channel block with [`pixels_slide`] (horizontal stride `S`,
/// dilation 1), 8 (stride 1 only: at stride 2 the wider step measured slower), 4, 2 and 1 pixels
/// a step; returns the end of the range.
///
/// # Safety
/// As [`pixels_slide`], for every pixel of `cols`.
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
    // SAFETY: each step covers interior pixels `ox..` of `cols` only (the caller's contract);
    // pixel `ox` is written at `dst + ox·c + ch` and reads input column `ox·S − pad`.
    unsafe {
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
    }
    ox
}

/// `Q` neighbouring output pixels of one 16-channel block of a convolution with horizontal
/// stride `S` and dilation 1, the first reading input offset `x0` of each row: the
/// `(Q − 1)·S + 3` input columns of each kernel row are loaded once, each feeding every pixel
/// whose window covers it.
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available; the `Q` pixels must be interior pixels (all taps of
/// the rows `k.rows` inside the image, which must be readable), `dst` writable for `Q` pixels of
/// `c` floats at the block's lanes.
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
        // SAFETY: the `(Q − 1)·S + 3` columns from `x0` are the windows of the `Q` interior
        // pixels, inside kernel row `r`'s input row (the caller's contract).
        unsafe {
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
    }
    for (q, a) in acc.iter().enumerate() {
        let v = _mm512_min_ps(_mm512_max_ps(*a, k.lo), k.hi);
        // SAFETY: pixel `q` of the `Q` the caller made writable.
        unsafe { _mm512_mask_storeu_ps(dst.add(q * c), k.m, v) };
    }
}

/// `Q` neighbouring output pixels of one 16-channel block, the first reading input offset `x0` of
/// each row; one accumulator per pixel and kernel row, so dependency chains stay three FMAs long.
///
/// # Safety
/// As [`pixels_slide`], with neighbouring pixels `k.sc` floats apart and column taps `k.dc`.
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
        // SAFETY: pixel `q`'s tap `kx` reads `x0 + q·sc + kx·dc`, inside kernel row `r`'s input
        // row for interior pixels (the caller's contract).
        unsafe {
            let row = k.rows[r].add(x0);
            for kx in 0..3 {
                let xk = row.add(kx * k.dc);
                for (q, a) in acc.iter_mut().enumerate() {
                    let x = _mm512_maskz_loadu_ps(k.m, xk.add(q * k.sc));
                    a[r] = _mm512_fmadd_ps(x, k.w[r][kx], a[r]);
                }
            }
        }
    }
    for (q, a) in acc.iter().enumerate() {
        let mut v = _mm512_add_ps(k.bias, a[0]);
        for ar in &a[1..] {
            v = _mm512_add_ps(v, *ar);
        }
        let v = _mm512_min_ps(_mm512_max_ps(v, k.lo), k.hi);
        // SAFETY: pixel `q` of the `Q` the caller made writable.
        unsafe { _mm512_mask_storeu_ps(dst.add(q * c), k.m, v) };
    }
}
