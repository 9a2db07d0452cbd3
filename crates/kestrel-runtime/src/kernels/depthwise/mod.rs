//! Direct depthwise convolution on NHWC data (one filter per channel), vectorised over channels
//! with AVX2+FMA when the CPU has them and a portable scalar loop otherwise, with fused
//! bias + activation (+ optional residual).
//!
//! Weight layout: `[kh][kw][channels]`.
//!
//! One file per path: this module holds the operands, the entry points and the dispatch;
//! `scalar` the portable loop; `avx2` the AVX2 path for any kernel and border (one pixel at a
//! time over a table of its valid taps); `avx512_k3` the AVX-512 3×3 kernels for single output
//! rows (interior pixels sliding along the row, border pixels through a tap table) and
//! `avx512_k3_pairs` the ones that compute two output rows at once.

use super::epilogue::residual_act;
use super::geometry::ConvGeometry;
use crate::parallel::{row_pieces, Par};
use crate::Activation;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512_k3;
#[cfg(target_arch = "x86_64")]
mod avx512_k3_pairs;
mod scalar;
#[cfg(test)]
mod tests;

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

impl Depthwise<'_> {
    /// Output `(height, width)`; the plan checked that the window fits.
    fn out_hw(&self) -> (usize, usize) {
        self.geom
            .output_hw(self.hwc[0], self.hwc[1])
            .expect("depthwise geometry checked by the plan")
    }

    /// Panics unless the weights and biases have the lengths the channels and the kernel
    /// size say and the window fits the input: the SIMD kernels read them by those sizes.
    pub(crate) fn check(&self) {
        let c = self.hwc[2];
        let [kh, kw] = self.geom.kernel;
        assert_eq!(self.weight.len(), kh * kw * c, "depthwise: weight length");
        assert_eq!(self.bias.len(), c, "depthwise: bias length");
        self.out_hw();
    }
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
    let (oh, ow) = p.out_hw();
    assert!(input.len() >= n * h * w * c && out.len() >= n * oh * ow * c);
    p.check();
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
///
/// Every operand is checked (a panic, never an out-of-bounds access): the weight and bias
/// lengths, the channel range, the output rows (within the output and `out`), and the band
/// (from at most the first row the windows read, to at least the last).
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
    p.check();
    let (oh, ow) = p.out_hw();
    assert!(chs.end <= c, "depthwise: channel range out of bounds");
    assert!(oy1 <= oh, "depthwise: output rows past the output");
    assert!(
        out.len() >= oy1.saturating_sub(oy0) * ow * c,
        "depthwise: output too short"
    );
    if oy1 > oy0 {
        let g = &p.geom;
        let first =
            ((oy0 * g.stride[0]) as isize - g.padding[0] as isize).clamp(0, h as isize) as usize;
        assert!(
            row_base <= first,
            "depthwise: the band starts at row {row_base}, after the first row read ({first})"
        );
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
        unsafe { Band::new(p, band.as_ptr(), row_base, chs).rows(oy0..oy1, out.as_mut_ptr()) };
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for (oy, out_row) in (oy0..oy1).zip(out.chunks_exact_mut(ow * c)) {
        scalar::row_scalar(p, band, row_base, oy, chs.clone(), out_row);
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
    // SAFETY: this function's own contract is `Band::rows`'s.
    unsafe { Band::new(p, band, row_base, chs).rows(oy0..oy1, out) };
}

/// What the SIMD row kernels share within one call: the convolution, the input rows they read
/// and the channels they compute.
#[cfg(target_arch = "x86_64")]
struct Band<'a, 'b> {
    /// The convolution (its activation is applied).
    p: &'a Depthwise<'b>,
    /// The image's rows from `row_base` on, `w × c` floats each.
    image: *const f32,
    /// The image row `image` starts at.
    row_base: usize,
    /// Output width.
    ow: usize,
    /// The channels to compute (the rest of each output pixel is left alone).
    chs: std::ops::Range<usize>,
}

#[cfg(target_arch = "x86_64")]
impl<'a, 'b> Band<'a, 'b> {
    fn new(
        p: &'a Depthwise<'b>,
        image: *const f32,
        row_base: usize,
        chs: std::ops::Range<usize>,
    ) -> Self {
        let (_, ow) = p.out_hw();
        Band {
            p,
            image,
            row_base,
            ow,
            chs,
        }
    }

    /// Fills `offs` with the (input offset, weight offset) pair, in floats, of every tap of
    /// output pixel `(oy, ox)` that lies inside the image (input offsets counted from
    /// `row_base`), and returns how many there are; `offs` must hold `kh · kw` pairs. The tap
    /// table of the border and general paths.
    fn tap_offsets(&self, oy: usize, ox: usize, offs: &mut [(usize, usize)]) -> usize {
        let [h, w, c] = self.p.hwc;
        let (rows, cols) = (self.p.geom.axis(0, h), self.p.geom.axis(1, w));
        let kw = cols.k;
        let ((ky0, ky1), (kx0, kx1)) = (rows.valid_taps(oy), cols.valid_taps(ox));
        let mut t = 0;
        for ky in ky0..ky1 {
            let iy = oy * rows.s + ky * rows.d - rows.p;
            for kx in kx0..kx1 {
                let ix = ox * cols.s + kx * cols.d - cols.p;
                offs[t] = (((iy - self.row_base) * w + ix) * c, (ky * kw + kx) * c);
                t += 1;
            }
        }
        t
    }

    /// Output rows `oys` (written from `out` on), two at a time where
    /// [`avx512_k3_pairs::row_pair_avx512_k3`] applies, else one at a time.
    ///
    /// # Safety
    /// As [`Band::row`], for every row of `oys`.
    unsafe fn rows(&self, oys: std::ops::Range<usize>, out: *mut f32) {
        let [h, _, c] = self.p.hwc;
        let g = &self.p.geom;
        let pairs = g.kernel == [3, 3]
            && g.stride[0] == 1
            && g.dilation[0] == 1
            && super::avx512_available();
        // Consulted only when `pairs` holds: a 3-tap, stride-1, undilated axis over the rows.
        let rows = g.axis(0, h);
        let full = |oy: usize| rows.valid_taps(oy) == (0, 3);
        let mut oy = oys.start;
        while oy < oys.end {
            // SAFETY: row `oy` of the output starts `(oy − oys.start)·ow·c` floats into `out`,
            // which the caller made valid for every row of `oys`.
            let dst = unsafe { out.add((oy - oys.start) * self.ow * c) };
            if pairs && oy + 1 < oys.end && full(oy) && full(oy + 1) {
                // SAFETY: AVX-512 was detected (`pairs`); rows `oy` and `oy + 1` are in `oys`
                // with all six row taps inside the image (`full`), which the band holds.
                unsafe { avx512_k3_pairs::row_pair_avx512_k3(self, oy, dst) };
                oy += 2;
            } else {
                // SAFETY: row `oy` is in `oys`, for which the caller upholds `row`'s contract.
                unsafe { self.row(oy, dst) };
                oy += 1;
            }
        }
    }

    /// One output row with the widest SIMD path this CPU has (AVX-512 for 3×3 kernels, else
    /// AVX2).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `image` must be valid for reads of every input row the
    /// window of output row `oy` reads, `out_row` valid for writes of `ow × c` floats, and no
    /// other thread may access channels `chs` of that row.
    unsafe fn row(&self, oy: usize, out_row: *mut f32) {
        if self.p.geom.kernel == [3, 3] && super::avx512_available() {
            // SAFETY: AVX-512 was just detected; the caller's contract covers the rest.
            unsafe { avx512_k3::row_avx512_k3(self, oy, out_row) }
        } else {
            // SAFETY: the caller guarantees AVX2 and FMA and the row's buffers, for all pixels.
            unsafe { avx2::pixels_avx2(self, oy, 0..self.ow, out_row) }
        }
    }
}
