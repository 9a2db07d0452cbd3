//! Pooling on NHWC data: max pooling (PyTorch semantics: padding never wins) and global average
//! pooling.

use super::geometry::ConvGeometry;
use crate::parallel::{chunks_by, split_rows, Par};

/// Max pooling of `n` images of `(h, w, c)` with window `geom`.
pub fn max_pool(
    par: Par,
    hwc: [usize; 3],
    geom: &ConvGeometry,
    n: usize,
    input: &[f32],
    out: &mut [f32],
) {
    let [h, w, c] = hwc;
    let (oh, ow) = geom
        .output_hw(h, w)
        .expect("pool geometry checked by the plan");
    let row_len = ow * c;
    let rows = n * oh;
    let parts = split_rows(rows, par.threads(), 1);
    let mut starts = Vec::new();
    let mut s = 0;
    for &p in &parts {
        starts.push(s);
        s += p;
    }
    let items: Vec<_> = chunks_by(&mut out[..rows * row_len], &parts, row_len)
        .into_iter()
        .zip(starts)
        .collect();
    let g = *geom;
    let (rows_axis, cols_axis) = (g.axis(0, h), g.axis(1, w));
    par.run(items, |_, (chunk, r0)| {
        for (i, out_row) in chunk.chunks_exact_mut(row_len).enumerate() {
            let r = r0 + i;
            let (b, oy) = (r / oh, r % oh);
            let (ky0, ky1) = rows_axis.valid_taps(oy);
            for ox in 0..ow {
                let (kx0, kx1) = cols_axis.valid_taps(ox);
                let dst = &mut out_row[ox * c..(ox + 1) * c];
                dst.fill(f32::NEG_INFINITY);
                for ky in ky0..ky1 {
                    let iy = oy * g.stride[0] + ky * g.dilation[0] - g.padding[0];
                    for kx in kx0..kx1 {
                        let ix = ox * g.stride[1] + kx * g.dilation[1] - g.padding[1];
                        let src =
                            &input[((b * h + iy) * w + ix) * c..((b * h + iy) * w + ix + 1) * c];
                        for (d, &v) in dst.iter_mut().zip(src) {
                            *d = if v > *d || v.is_nan() { v } else { *d };
                        }
                    }
                }
            }
        }
    });
}

/// Mean over the `pixels` positions of each image: `[n][pixels][c]` → `[n][c]`.
pub fn global_avg_pool(n: usize, pixels: usize, c: usize, input: &[f32], out: &mut [f32]) {
    let scale = 1.0 / pixels.max(1) as f32;
    for b in 0..n {
        let dst = &mut out[b * c..(b + 1) * c];
        dst.fill(0.0);
        for p in 0..pixels {
            let src = &input[(b * pixels + p) * c..(b * pixels + p + 1) * c];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d += v;
            }
        }
        for d in dst.iter_mut() {
            *d *= scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::{close, lcg_vec, max_pool_ref};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn max_pool_matches_naive(h in 1usize..10, w in 1usize..10, c in 1usize..12, k in 1usize..4, s in 1usize..3,
                                  p in 0usize..2, d in 1usize..3, batch in prop::sample::select(vec![1usize, 3]),
                                  threads in 1usize..4, seed in 0u64..1000) {
            // PyTorch requires padding <= kernel/2.
            prop_assume!(2 * p <= k);
            let g = ConvGeometry::square(k, s, p, d);
            if let Some((oh, ow)) = g.output_hw(h, w) {
                let x = lcg_vec(batch * h * w * c, seed);
                let want = max_pool_ref([h, w, c], batch, &g, &x);
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut out = vec![0.0; batch * oh * ow * c];
                max_pool(Par::new(Some(&pool), threads), [h, w, c], &g, batch, &x, &mut out);
                close(&out, &want, 0.0);
            }
        }
    }

    #[test]
    fn global_average_is_the_mean() {
        // 2 images, 3 pixels, 2 channels
        let x = [
            1.0, 10.0, 2.0, 20.0, 3.0, 30.0, -1.0, 0.0, -2.0, 0.0, -3.0, 3.0,
        ];
        let mut out = [0.0; 4];
        global_avg_pool(2, 3, 2, &x, &mut out);
        assert_eq!(out, [2.0, 20.0, -2.0, 1.0]);
    }
}
