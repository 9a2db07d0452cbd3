//! The portable depthwise path: one output row at a time, any kernel, stride, padding and
//! dilation, vectorised only as far as the compiler manages.

use super::Depthwise;
use crate::kernels::epilogue::clamp;

/// Channels `chs` of output row `oy`, portable code, reading the image's rows `row_base..` from
/// `image`.
pub(super) fn row_scalar(
    p: &Depthwise,
    image: &[f32],
    row_base: usize,
    oy: usize,
    chs: std::ops::Range<usize>,
    out_row: &mut [f32],
) {
    let [h, w, c] = p.hwc;
    let (_, ow) = p.out_hw();
    let (rows, cols) = (p.geom.axis(0, h), p.geom.axis(1, w));
    let kw = cols.k;
    let (lo, hi) = p.act.bounds();
    let (ky0, ky1) = rows.valid_taps(oy);
    for ox in 0..ow {
        let (kx0, kx1) = cols.valid_taps(ox);
        let dst = &mut out_row[ox * c + chs.start..ox * c + chs.end];
        dst.copy_from_slice(&p.bias[chs.clone()]);
        for ky in ky0..ky1 {
            let iy = rows.input_at(oy, ky) as usize;
            for kx in kx0..kx1 {
                let ix = cols.input_at(ox, kx) as usize;
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
