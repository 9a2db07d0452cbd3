use super::*;
use crate::kernels::reference::{close, pack_depthwise, with_threads, RefConv};
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
    let c = hwc[2];
    let Some(case) = RefConv::new(hwc, c, geom, c).case(batch, act, with_res, seed) else {
        return;
    };
    let weight = pack_depthwise(&case.w_oihw, c, geom.kernel[0], geom.kernel[1]);
    let p = Depthwise {
        hwc,
        geom,
        weight: &weight,
        bias: &case.bias,
        act,
    };
    let mut out = case.nan_output();
    with_threads(threads, |par| {
        depthwise(par, &p, batch, &case.x, case.residual(), &mut out, simd)
    });
    close(&out, &case.want, 1e-5);
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
    let sq = |s, p, d| ConvGeometry::square(3, s, p, d);
    // non-square geometry
    let odd = ConvGeometry {
        kernel: [3, 1],
        stride: [2, 1],
        padding: [1, 0],
        dilation: [1, 2],
    };
    // (input, batch, window, activation, residual, threads, seed)
    let cases = [
        ([14, 14, 96], 1, sq(1, 1, 1), Activation::Relu6, false, 2, 1),
        ([15, 15, 40], 3, sq(2, 1, 1), Activation::Relu6, false, 2, 2),
        ([9, 9, 33], 1, sq(1, 2, 2), Activation::Relu, true, 1, 3),
        ([7, 5, 17], 3, odd, Activation::None, false, 2, 4),
    ];
    for simd in [false, true] {
        for (hwc, batch, g, act, res, threads, seed) in cases {
            check(hwc, batch, g, act, res, threads, simd, seed);
        }
    }
}

#[test]
fn row_entry_points_refuse_operands_that_do_not_fit() {
    // A 3×3 stride-1 padding-1 convolution over 6 × 5 × 4: each bad operand panics (with its
    // name) instead of being read out of bounds, on both paths.
    let geom = ConvGeometry::square(3, 1, 1, 1);
    let (weight, bias) = (vec![0.5f32; 9 * 4], vec![0.0f32; 4]);
    let band = vec![1.0f32; 6 * 5 * 4];
    let ok = Depthwise {
        hwc: [6, 5, 4],
        geom,
        weight: &weight,
        bias: &bias,
        act: Activation::None,
    };
    let run = |p: Depthwise, row_base: usize, oy: std::ops::Range<usize>, simd: bool| {
        let mut out = vec![0.0f32; 6 * 5 * 4];
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            depthwise_rows(
                &p,
                &band[row_base * 20..],
                row_base,
                oy.start,
                oy.end,
                &mut out,
                simd,
            )
        }))
        .map_err(|e| {
            e.downcast_ref::<String>().cloned().unwrap_or_else(|| {
                e.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            })
        })
    };
    for simd in [false, true] {
        assert!(run(ok, 0, 0..6, simd).is_ok());
        // The band may start at the first row the windows read: row 2 for output rows 3..5.
        assert!(run(ok, 2, 3..5, simd).is_ok());
        let short_w = &weight[..35];
        let short_b = &bias[..3];
        for (p, row_base, oy, what) in [
            (
                Depthwise {
                    weight: short_w,
                    ..ok
                },
                0,
                0..6,
                "weight length",
            ),
            (
                Depthwise {
                    bias: short_b,
                    ..ok
                },
                0,
                0..6,
                "bias length",
            ),
            (ok, 3, 3..5, "after the first row read"),
            (ok, 0, 0..7, "past the output"),
        ] {
            let e = run(p, row_base, oy, simd).unwrap_err();
            assert!(e.contains(what), "{what}: {e}");
        }
    }
}
