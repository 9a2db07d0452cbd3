//! Pooling on NHWC data: max pooling (PyTorch semantics: padding never wins) and global average
//! pooling.

use super::geometry::ConvGeometry;
use crate::parallel::{chunks_by, split_rows, Par};

/// Max pooling of `n` images of `(h, w, c)` with window `geom`; `simd` lets the AVX-512 kernel
/// run where the CPU has it.
pub fn max_pool(
    par: Par,
    hwc: [usize; 3],
    geom: &ConvGeometry,
    n: usize,
    input: &[f32],
    out: &mut [f32],
    simd: bool,
) {
    let [h, w, c] = hwc;
    let (oh, ow) = geom
        .output_hw(h, w)
        .expect("pool geometry checked by the plan");
    assert!(input.len() >= n * h * w * c, "max pool: input too short");
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
    let wide = simd && super::avx512_available();
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
    par.run(items, |_, (chunk, r0)| {
        // Offsets of the window's valid pixels, reused from pixel to pixel.
        let mut taps = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
        for (i, out_row) in chunk.chunks_exact_mut(row_len).enumerate() {
            let r = r0 + i;
            let (b, oy) = (r / oh, r % oh);
            let (ky0, ky1) = rows_axis.valid_taps(oy);
            for ox in 0..ow {
                let (kx0, kx1) = cols_axis.valid_taps(ox);
                taps.clear();
                for ky in ky0..ky1 {
                    let iy = oy * g.stride[0] + ky * g.dilation[0] - g.padding[0];
                    for kx in kx0..kx1 {
                        let ix = ox * g.stride[1] + kx * g.dilation[1] - g.padding[1];
                        taps.push(((b * h + iy) * w + ix) * c);
                    }
                }
                let dst = &mut out_row[ox * c..(ox + 1) * c];
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: AVX-512F detected; every tap's `c` floats lie in `input` (a valid
                    // pixel of an image the length assertion covers).
                    unsafe { window_max_avx512(dst, input, &taps) };
                    continue;
                }
                window_max(dst, input, &taps);
            }
        }
    });
}

/// `dst[j] = max over taps t of input[t + j]`, NaN winning (PyTorch's max pooling); `-∞` with
/// no tap.
fn window_max(dst: &mut [f32], input: &[f32], taps: &[usize]) {
    let c = dst.len();
    dst.fill(f32::NEG_INFINITY);
    for &t in taps {
        for (d, &v) in dst.iter_mut().zip(&input[t..t + c]) {
            *d = if v > *d || v.is_nan() { v } else { *d };
        }
    }
}

/// [`window_max`] sixteen channels at a time.
///
/// # Safety
/// AVX-512F must be available and `input[t..t + dst.len()]` in bounds for every tap `t`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn window_max_avx512(dst: &mut [f32], input: &[f32], taps: &[usize]) {
    use std::arch::x86_64::*;
    let c = dst.len();
    debug_assert!(taps.iter().all(|&t| t + c <= input.len()));
    let mut j = 0;
    while j < c {
        let lanes = (c - j).min(16);
        let mask = (((1u32 << lanes) - 1) & 0xffff) as __mmask16;
        let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
        for &t in taps {
            // SAFETY: the lanes of `mask` are channels `j..j + lanes` of a tap in bounds.
            let v = unsafe { _mm512_maskz_loadu_ps(mask, input.as_ptr().add(t + j)) };
            // Take `v` where it is larger or NaN (a NaN already in `acc` compares false: stays).
            let take =
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, acc) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            acc = _mm512_mask_mov_ps(acc, take, v);
        }
        // SAFETY: the lanes of `mask` are channels `j..j + lanes` of `dst`.
        unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add(j), mask, acc) };
        j += lanes;
    }
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
        fn max_pool_matches_naive(h in 1usize..10, w in 1usize..10, c in 1usize..40, k in 1usize..4, s in 1usize..3,
                                  p in 0usize..2, d in 1usize..3, batch in prop::sample::select(vec![1usize, 3]),
                                  threads in 1usize..4, seed in 0u64..1000) {
            // PyTorch requires padding <= kernel/2.
            prop_assume!(2 * p <= k);
            let g = ConvGeometry::square(k, s, p, d);
            if let Some((oh, ow)) = g.output_hw(h, w) {
                let x = lcg_vec(batch * h * w * c, seed);
                let want = max_pool_ref([h, w, c], batch, &g, &x);
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                for simd in [false, true] {
                    let mut out = vec![0.0; batch * oh * ow * c];
                    let par = Par::new(Some(&pool), threads);
                    max_pool(par, [h, w, c], &g, batch, &x, &mut out, simd);
                    close(&out, &want, 0.0);
                }
            }
        }
    }

    #[test]
    fn a_nan_in_the_window_wins() {
        // One image 4 × 4 × 20 (a whole and a partial 16-channel chunk), 3 × 3 stride 2 pad 1:
        // a NaN at pixel (1, 1) channel 17 reaches the outputs whose windows hold that pixel,
        // (0, 0), (0, 1), (1, 0) and (1, 1), in that channel only; an infinity elsewhere wins its
        // windows; the rest is the plain maximum.
        let (h, w, c) = (4, 4, 20);
        let mut x = lcg_vec(h * w * c, 3);
        x[(w + 1) * c + 17] = f32::NAN;
        x[(2 * w + 3) * c + 2] = f32::INFINITY;
        let g = ConvGeometry::square(3, 2, 1, 1);
        for simd in [false, true] {
            let mut out = vec![0.0; 2 * 2 * c];
            max_pool(Par::SERIAL, [h, w, c], &g, 1, &x, &mut out, simd);
            for (px, o) in out.chunks_exact(c).enumerate() {
                assert!(o[17].is_nan(), "pixel {px}: NaN lost (simd {simd})");
                assert!(o.iter().enumerate().all(|(j, v)| j == 17 || !v.is_nan()));
            }
            // Pixel (2, 3) lies in the window of output (1, 1) alone.
            assert_eq!(out[3 * c + 2], f32::INFINITY);
            assert!(out[c + 2].is_finite());
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
