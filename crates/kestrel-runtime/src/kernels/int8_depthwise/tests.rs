//! Every path against an integer reference written here from the definition: odd sizes, channel
//! tails, strides, padding, dilation and extreme values.

use super::*;
use crate::kernels::reference::lcg_bytes;

/// `Σ (x − z)·w` over the in-image taps, straight from the definition, in i64.
fn reference(op: &DepthwiseI8, input: &[u8]) -> Vec<i64> {
    let [h, w, c] = op.hwc;
    let g = op.geom;
    let (oh, ow) = g.output_hw(h, w).unwrap();
    let mut out = vec![0i64; oh * ow * c];
    for oy in 0..oh {
        for ox in 0..ow {
            for ky in 0..g.kernel[0] {
                for kx in 0..g.kernel[1] {
                    let iy =
                        (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.padding[0] as isize;
                    let ix =
                        (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.padding[1] as isize;
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                        continue;
                    }
                    for ch in 0..c {
                        let x = input[((iy as usize) * w + ix as usize) * c + ch];
                        let wt = op.weight[(ky * g.kernel[1] + kx) * c + ch];
                        out[(oy * ow + ox) * c + ch] +=
                            (i64::from(x) - i64::from(op.zero)) * i64::from(wt);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_path_equals_the_integer_reference() {
    for (seed, hwc, geom, zero) in [
        (
            1u64,
            [7usize, 9, 3],
            ConvGeometry::square(3, 1, 1, 1),
            128u8,
        ),
        (2, [8, 8, 16], ConvGeometry::square(3, 2, 1, 1), 0),
        (3, [11, 6, 37], ConvGeometry::square(3, 1, 2, 2), 17),
        (4, [5, 5, 24], ConvGeometry::square(5, 2, 2, 1), 255),
        (5, [9, 13, 71], ConvGeometry::square(3, 2, 0, 1), 90),
        (6, [4, 4, 8], ConvGeometry::square(3, 1, 1, 1), 3),
    ] {
        let [h, w, c] = hwc;
        let weight: Vec<i8> = lcg_bytes(geom.kernel[0] * geom.kernel[1] * c, seed + 100)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        let op = DepthwiseI8 {
            hwc,
            geom,
            zero,
            weight: &weight,
        };
        let input = lcg_bytes(h * w * c, seed);
        let want = reference(&op, &input);
        let (oh, ow) = op.out_hw();
        for path in Int8Path::all_available() {
            let mut out = vec![7i32; oh * ow * c];
            depthwise_u8i8_with(path, &op, &input, &mut out);
            let got: Vec<i64> = out.iter().map(|&v| i64::from(v)).collect();
            assert!(got == want, "{path:?} case {seed}");
        }
    }
}

/// The largest products on every tap: (0 − 255) × −128 and (255 − 0) × −128.
#[test]
fn extreme_values_are_exact() {
    let (hwc, geom) = ([6usize, 6, 35], ConvGeometry::square(3, 1, 1, 1));
    let weight = vec![-128i8; 9 * 35];
    for (x, zero) in [(0u8, 255u8), (255, 0)] {
        let op = DepthwiseI8 {
            hwc,
            geom,
            zero,
            weight: &weight,
        };
        let input = vec![x; 6 * 6 * 35];
        let want = reference(&op, &input);
        for path in Int8Path::all_available() {
            let mut out = vec![0i32; 6 * 6 * 35];
            depthwise_u8i8_with(path, &op, &input, &mut out);
            assert!(
                out.iter().zip(&want).all(|(&g, &w)| i64::from(g) == w),
                "{path:?}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "weight length")]
fn weights_of_the_wrong_length_are_refused() {
    let op = DepthwiseI8 {
        hwc: [4, 4, 2],
        geom: ConvGeometry::square(3, 1, 1, 1),
        zero: 0,
        weight: &[0i8; 17],
    };
    depthwise_u8i8(&op, &[0u8; 32], &mut [0i32; 32]);
}

/// The requantising form on every path: the integer reference's sums through the portable
/// epilogue, code for code (odd channel counts, borders, strides, dilation, a 5×5 kernel of more
/// taps than the paired interior loop takes, an even 2×2 one, extreme products, a residual).
#[test]
fn requantised_rows_equal_the_reference_codes_on_every_path() {
    use crate::kernels::int8_requant::Requant;
    for (seed, hwc, geom, zero) in [
        (
            1u64,
            [7usize, 9, 3],
            ConvGeometry::square(3, 1, 1, 1),
            128u8,
        ),
        (2, [8, 8, 16], ConvGeometry::square(3, 2, 1, 1), 0),
        (3, [11, 10, 37], ConvGeometry::square(3, 1, 2, 2), 17),
        (4, [9, 9, 24], ConvGeometry::square(5, 1, 2, 1), 255),
        (5, [9, 13, 71], ConvGeometry::square(3, 2, 0, 1), 90),
        (6, [6, 7, 40], ConvGeometry::square(2, 1, 0, 1), 3),
        // Rows long enough for the 3×3 kernel's blocks of eight and four pixels and its tails.
        (7, [5, 23, 71], ConvGeometry::square(3, 1, 1, 1), 200),
        (8, [10, 21, 33], ConvGeometry::square(3, 2, 1, 1), 5),
        (9, [3, 3, 16], ConvGeometry::square(3, 1, 1, 1), 0),
        (10, [2, 40, 17], ConvGeometry::square(3, 1, 1, 1), 77),
    ] {
        let [h, w, c] = hwc;
        let mut weight: Vec<i8> = lcg_bytes(geom.kernel[0] * geom.kernel[1] * c, seed + 100)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        weight[0] = -128;
        let op = DepthwiseI8 {
            hwc,
            geom,
            zero,
            weight: &weight,
        };
        let mut input = lcg_bytes(h * w * c, seed);
        input[0] = 255;
        let (oh, ow) = op.out_hw();
        let corr: Vec<i32> = lcg_bytes(c, seed + 7)
            .iter()
            .map(|&v| v as i32 * 40 - 5000)
            .collect();
        let mult: Vec<f32> = lcg_bytes(c, seed + 8)
            .iter()
            .map(|&v| 1e-4 + v as f32 * 2e-5)
            .collect();
        let res = lcg_bytes(oh * ow * c, seed + 9);
        for residual in [None, Some((0.37f32, 120u8))] {
            let rq = Requant {
                corr: &corr,
                mult: &mult,
                residual,
                zero: 60,
                lo: 10,
                hi: 250,
            };
            let resv = residual.map(|_| &res[..]);
            let sums = reference(&op, &input);
            let mut want = vec![0u8; oh * ow * c];
            for (px, s) in sums.chunks_exact(c).enumerate() {
                let s: Vec<i32> = s.iter().map(|&v| v as i32).collect();
                let at = px * c;
                rq.row_u8(&s, resv.map(|r| &r[at..at + c]), &mut want[at..at + c]);
            }
            for path in Int8Path::all_available() {
                // Two calls over a split of the rows, as threads split them.
                let split = oh / 2;
                let mut out = vec![0u8; oh * ow * c];
                let (top, bottom) = out.split_at_mut(split * ow * c);
                let mut scratch = Vec::new();
                let (r0, r1) = (
                    resv.map(|r| &r[..split * ow * c]),
                    resv.map(|r| &r[split * ow * c..]),
                );
                let all = 0;
                depthwise_u8i8_requant(
                    path,
                    &op,
                    &input,
                    all,
                    0..split,
                    &rq,
                    r0,
                    top,
                    &mut scratch,
                );
                // The lower part from only the input rows its windows reach, as a fused block
                // holds them.
                let g = op.geom;
                let first = (split * g.stride[0]).saturating_sub(g.padding[0]).min(h);
                let part = &input[first * w * c..];
                depthwise_u8i8_requant(
                    path,
                    &op,
                    part,
                    first,
                    split..oh,
                    &rq,
                    r1,
                    bottom,
                    &mut scratch,
                );
                assert!(out == want, "{path:?} case {seed}, residual {residual:?}");
            }
        }
    }
}

/// The largest sums the requantising kernels meet, code for code: every tap (0 − 255)·−128 or
/// (255 − 0)·−128 under the epilogue, at the borders and inside, on every path.
#[test]
fn requantised_extremes_are_exact() {
    use crate::kernels::int8_requant::Requant;
    let (hwc, geom, c) = ([6usize, 19, 35], ConvGeometry::square(3, 1, 1, 1), 35);
    let weight = vec![-128i8; 9 * c];
    let (corr, mult) = (vec![0i32; c], vec![1e-4f32; c]);
    let rq = Requant {
        corr: &corr,
        mult: &mult,
        residual: None,
        zero: 128,
        lo: 0,
        hi: 255,
    };
    for (x, zero) in [(0u8, 255u8), (255, 0)] {
        let op = DepthwiseI8 {
            hwc,
            geom,
            zero,
            weight: &weight,
        };
        let input = vec![x; 6 * 19 * c];
        let sums = reference(&op, &input);
        let mut want = vec![0u8; sums.len()];
        for (s, q) in sums.chunks_exact(c).zip(want.chunks_exact_mut(c)) {
            let s: Vec<i32> = s.iter().map(|&v| v as i32).collect();
            rq.row_u8(&s, None, q);
        }
        assert!(want.iter().any(|&q| q != 0 && q != 255), "not saturated");
        for path in Int8Path::all_available() {
            let mut out = vec![0u8; want.len()];
            depthwise_u8i8_requant(
                path,
                &op,
                &input,
                0,
                0..6,
                &rq,
                None,
                &mut out,
                &mut Vec::new(),
            );
            assert!(out == want, "{path:?} x {x} zero {zero}");
        }
    }
}
