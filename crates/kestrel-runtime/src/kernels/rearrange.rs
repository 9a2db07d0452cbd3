//! Data movement on NHWC images: pixel shuffle (depth to space) and top-left cropping.

use crate::parallel::{for_rows, Par};

/// PyTorch's `pixel_shuffle` by `r` on `n` images of `(h, w, c·r²)`:
/// `out[r·y + i, r·x + j, ch] = in[y, x, ch·r² + i·r + j]`.
pub fn pixel_shuffle(
    par: Par,
    hwc: [usize; 3],
    r: usize,
    n: usize,
    input: &[f32],
    out: &mut [f32],
) {
    let [h, w, cin] = hwc;
    let c = cin / (r * r);
    let (oh, ow) = (h * r, w * r);
    for_rows(
        par,
        &mut out[..n * oh * ow * c],
        n * oh,
        ow * c,
        |row_i, row| {
            let (b, oy) = (row_i / oh, row_i % oh);
            let (y, i) = (oy / r, oy % r);
            let src_row = &input[(b * h + y) * w * cin..][..w * cin];
            for ox in 0..ow {
                let (x, j) = (ox / r, ox % r);
                let px = &src_row[x * cin..(x + 1) * cin];
                for (ch, d) in row[ox * c..(ox + 1) * c].iter_mut().enumerate() {
                    *d = px[ch * r * r + i * r + j];
                }
            }
        },
    );
}

/// The top-left `(oh, ow)` corner of `n` images of `(h, w, c)`.
pub fn crop(hwc: [usize; 3], out_hw: [usize; 2], n: usize, input: &[f32], out: &mut [f32]) {
    let [h, w, c] = hwc;
    let [oh, ow] = out_hw;
    for b in 0..n {
        for y in 0..oh {
            let src = &input[((b * h + y) * w) * c..][..ow * c];
            out[((b * oh + y) * ow) * c..][..ow * c].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_follows_the_definition_on_nchw_indices() {
        // torch.nn.functional.pixel_shuffle on NCHW: out[ch, r·y+i, r·x+j] = in[ch·r²+i·r+j, y, x].
        let (c, r, h, w) = (2, 3, 2, 4);
        let cin = c * r * r;
        let nchw: Vec<f32> = (0..cin * h * w).map(|i| i as f32).collect();
        let mut nhwc = vec![0.0; nchw.len()];
        for ch in 0..cin {
            for y in 0..h {
                for x in 0..w {
                    nhwc[(y * w + x) * cin + ch] = nchw[(ch * h + y) * w + x];
                }
            }
        }
        let mut out = vec![0.0; nchw.len()];
        pixel_shuffle(Par::SERIAL, [h, w, cin], r, 1, &nhwc, &mut out);
        for ch in 0..c {
            for oy in 0..h * r {
                for ox in 0..w * r {
                    let want =
                        nchw[((ch * r * r + (oy % r) * r + ox % r) * h + oy / r) * w + ox / r];
                    assert_eq!(out[(oy * w * r + ox) * c + ch], want);
                }
            }
        }
    }

    #[test]
    fn crop_keeps_the_top_left_corner() {
        let (h, w, c) = (3, 4, 2);
        let x: Vec<f32> = (0..2 * h * w * c).map(|i| i as f32).collect();
        let mut out = vec![0.0; 2 * 2 * 3 * c];
        crop([h, w, c], [2, 3], 2, &x, &mut out);
        for b in 0..2 {
            for y in 0..2 {
                for xx in 0..3 {
                    for ch in 0..c {
                        assert_eq!(
                            out[((b * 2 + y) * 3 + xx) * c + ch],
                            x[((b * h + y) * w + xx) * c + ch]
                        );
                    }
                }
            }
        }
    }
}
