//! Between Burn's NCHW tensors and kestrel-runtime's NHWC buffers: the exported plans take and
//! give NHWC, the Burn models NCHW.

/// NCHW to NHWC for `n` images of `c` channels and `hw` pixels.
pub fn nchw_to_nhwc(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                out[(b * hw + p) * c + ch] = x[(b * c + ch) * hw + p];
            }
        }
    }
    out
}

/// NHWC to NCHW for `n` images of `c` channels and `hw` pixels.
pub fn nhwc_to_nchw(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for p in 0..hw {
            for ch in 0..c {
                out[(b * c + ch) * hw + p] = x[(b * hw + p) * c + ch];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_orders_are_inverse_and_place_channels_last() {
        // Two images of 2 channels and 3 pixels: the first one's NCHW [a0 a1 a2 | b0 b1 b2] is
        // NHWC [a0 b0 a1 b1 a2 b2].
        let nchw: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let nhwc = nchw_to_nhwc(&nchw, 2, 2, 3);
        assert_eq!(&nhwc[..6], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(nhwc_to_nchw(&nhwc, 2, 2, 3), nchw);
    }
}
