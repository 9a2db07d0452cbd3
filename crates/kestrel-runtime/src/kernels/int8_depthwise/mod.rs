//! Int8 depthwise convolution on NHWC data: `u8` activations with a zero point, `s8` weights per
//! channel (`[kh][kw][c]`), exact `i32` sums `Σ (x − z)·w` over the window's taps that fall inside
//! the image (padding is the real zero, `x = z`, so it adds nothing). Requantisation comes after.
//!
//! The taps of each output pixel come from the geometry (any kernel, stride, padding and
//! dilation); each tap adds one row of channels, vectorised over channels: `scalar` (the
//! reference every path must equal), `avx512` (16 channels per register) and `avx2` (8), chosen
//! at run time like the int8 GEMM's ([`super::int8_gemm::Int8Path`]). Every product fits 16 bits
//! (|±255 × −128| < 2¹⁵) and the sums 32, so every path is exact.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_k3;
mod scalar;
#[cfg(test)]
mod tests;

use super::geometry::ConvGeometry;
use super::int8_gemm::Int8Path;

/// The operands of an int8 depthwise convolution.
#[derive(Clone, Copy)]
pub struct DepthwiseI8<'a> {
    /// Input `(height, width, channels)`.
    pub hwc: [usize; 3],
    /// Kernel, stride, padding and dilation.
    pub geom: ConvGeometry,
    /// The activations' zero point.
    pub zero: u8,
    /// `[kh][kw][c]` weights.
    pub weight: &'a [i8],
}

impl DepthwiseI8<'_> {
    /// Output `(height, width)`.
    ///
    /// # Panics
    /// If the window does not fit the input, or the weights are not `kh·kw·c` long.
    pub fn out_hw(&self) -> (usize, usize) {
        let [kh, kw] = self.geom.kernel;
        assert_eq!(
            self.weight.len(),
            kh * kw * self.hwc[2],
            "int8 depthwise: weight length"
        );
        self.geom
            .output_hw(self.hwc[0], self.hwc[1])
            .expect("int8 depthwise: the window does not fit the input")
    }
}

/// The sums of one image (`input` is `h·w·c` values) into `out` (`oh·ow·c`), on the fastest path.
///
/// # Panics
/// As [`DepthwiseI8::out_hw`], and if `input` or `out` has the wrong length.
pub fn depthwise_u8i8(op: &DepthwiseI8, input: &[u8], out: &mut [i32]) {
    depthwise_u8i8_with(Int8Path::best(), op, input, out)
}

/// [`depthwise_u8i8`] on a given path (tests force each one).
///
/// # Panics
/// As [`depthwise_u8i8`], and if this CPU cannot run `path`.
pub fn depthwise_u8i8_with(path: Int8Path, op: &DepthwiseI8, input: &[u8], out: &mut [i32]) {
    let (oh, _) = op.out_hw();
    depthwise_u8i8_rows(path, op, input, 0..oh, out)
}

/// The sums of output rows `rows` of one image into `out` (`rows.len()·ow·c` values): the unit
/// the engine splits across threads.
///
/// # Panics
/// As [`depthwise_u8i8_with`], and if `rows` ends past the output.
pub fn depthwise_u8i8_rows(
    path: Int8Path,
    op: &DepthwiseI8,
    input: &[u8],
    rows: std::ops::Range<usize>,
    out: &mut [i32],
) {
    rows_from(path, op, input, 0, rows, out)
}

/// [`depthwise_u8i8_rows`] with `input` holding the image's rows from `first_row` on.
fn rows_from(
    path: Int8Path,
    op: &DepthwiseI8,
    input: &[u8],
    first_row: usize,
    rows: std::ops::Range<usize>,
    out: &mut [i32],
) {
    let [h, w, c] = op.hwc;
    let ow = check_rows(path, op, input, first_row, &rows, out.len());
    let first = first_row * w * c;
    let g = op.geom;
    let (ry, cx) = (g.axis(0, h), g.axis(1, w));
    out.fill(0);
    for (r, oy) in rows.enumerate() {
        for ox in 0..ow {
            let acc = &mut out[(r * ow + ox) * c..(r * ow + ox + 1) * c];
            let ((ky0, ky1), (kx0, kx1)) = (ry.valid_taps(oy), cx.valid_taps(ox));
            for ky in ky0..ky1 {
                let iy = ry.input_at(oy, ky) as usize;
                for kx in kx0..kx1 {
                    let ix = cx.input_at(ox, kx) as usize;
                    let x = &input[(iy * w + ix) * c - first..(iy * w + ix + 1) * c - first];
                    let wt =
                        &op.weight[(ky * g.kernel[1] + kx) * c..(ky * g.kernel[1] + kx + 1) * c];
                    tap(path, acc, x, wt, op.zero);
                }
            }
        }
    }
}

/// Output rows `rows` of one image as codes (`rows.len()·ow·c` of them into `out`): the sums
/// of [`depthwise_u8i8_rows`] through the epilogue `rq` (with the residual codes `res` of the
/// same pixels, if the op adds one). `input` holds whole rows of the image from `first_row` on
/// (0: the whole image; a fused block holds only the rows a band needs), at least every row the
/// output rows' windows reach inside the image. AVX-512 fuses the two
/// (`avx512::rows_requant`; `avx512_k3` for 3×3 kernels); the other paths store the sums of
/// each row in `scratch` first. Every path gives the same codes.
///
/// # Panics
/// As [`depthwise_u8i8_rows`], and if `res` or the epilogue's channels do not fit.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_u8i8_requant(
    path: Int8Path,
    op: &DepthwiseI8,
    input: &[u8],
    first_row: usize,
    rows: std::ops::Range<usize>,
    rq: &crate::kernels::int8_requant::Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
    scratch: &mut Vec<i32>,
) {
    let c = op.hwc[2];
    let ow = check_rows(path, op, input, first_row, &rows, out.len());
    assert!(
        res.is_none_or(|r| r.len() == out.len()),
        "int8 depthwise: residual length"
    );
    assert!(
        rq.corr.len() >= c && rq.mult.len() >= c,
        "int8 depthwise: epilogue channels"
    );
    #[cfg(target_arch = "x86_64")]
    if path == Int8Path::Avx512Vnni
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
    {
        // SAFETY: the CPU has AVX-512 F and VNNI (the path is available), BW and VL (checked);
        // the lengths were checked above.
        return unsafe { avx512::rows_requant(op, input, first_row, rows, rq, res, out) };
    }
    let row = ow * c;
    if scratch.len() < row {
        scratch.resize(row, 0);
    }
    for (r, oy) in rows.enumerate() {
        let acc = &mut scratch[..row];
        rows_from(path, op, input, first_row, oy..oy + 1, acc);
        for (j, sums) in acc.chunks_exact(c).enumerate() {
            let at = (r * ow + j) * c;
            rq.row_u8(sums, res.map(|v| &v[at..at + c]), &mut out[at..at + c]);
        }
    }
}

/// Panics unless `input` holds whole rows of the image from `first_row` on, among them every
/// row the windows of output rows `rows` reach inside the image, `rows` lie in the output,
/// `out_len` values hold them and this CPU can run `path`; returns the output width.
fn check_rows(
    path: Int8Path,
    op: &DepthwiseI8,
    input: &[u8],
    first_row: usize,
    rows: &std::ops::Range<usize>,
    out_len: usize,
) -> usize {
    let [h, w, c] = op.hwc;
    let (oh, ow) = op.out_hw();
    assert!(rows.end <= oh, "int8 depthwise: rows {rows:?} of {oh}");
    let row = (w * c).max(1);
    assert!(
        input.len().is_multiple_of(row) && first_row + input.len() / row <= h,
        "int8 depthwise: input length"
    );
    if !rows.is_empty() {
        let g = op.geom;
        let span = (g.kernel[0] - 1) * g.dilation[0] + 1;
        let need0 = (rows.start * g.stride[0]).saturating_sub(g.padding[0]);
        let need1 = ((rows.end - 1) * g.stride[0] + span)
            .saturating_sub(g.padding[0])
            .min(h);
        assert!(
            first_row <= need0 && need1 <= first_row + input.len() / row,
            "int8 depthwise: input rows {first_row}.. do not hold rows {need0}..{need1}"
        );
    }
    assert_eq!(
        out_len,
        rows.len() * ow * c,
        "int8 depthwise: output length"
    );
    assert!(
        path.available(),
        "int8 depthwise: this CPU cannot run {path:?}"
    );
    ow
}

/// `acc[i] += (x[i] − zero)·w[i]` over the channels (all three the same length).
#[inline]
fn tap(path: Int8Path, acc: &mut [i32], x: &[u8], w: &[i8], zero: u8) {
    match path {
        Int8Path::Scalar => scalar::tap(acc, x, w, zero),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that the CPU has AVX2; the three slices have one length.
        Int8Path::Avx2 => unsafe { avx2::tap(acc, x, w, zero) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that the CPU has AVX-512 F (with VNNI, the path's name); the
        // three slices have one length.
        Int8Path::Avx512Vnni => unsafe { avx512::tap(acc, x, w, zero) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("checked by available()"),
    }
}
