//! Winograd F(4×4, 3×3) against the `f64` direct convolution of `kernels/reference.rs`: odd
//! sizes, partial tiles, padding 0–2, channel counts off the 16-lane grid, the epilogue, thread
//! splits and both code paths; and its error bound.

use super::*;
use crate::kernels::reference::{pack_im2col, with_threads, Case, RefConv};
use crate::parallel::Par;

/// `rc`'s operands as the kernels take them, with `weight` packed by `pack_im2col`.
fn params<'a>(rc: &RefConv, case: &'a Case, weight: &'a [f32], act: Activation) -> Im2colConv<'a> {
    Im2colConv {
        hwc: rc.hwc,
        cout: rc.cout,
        groups: 1,
        geom: rc.geom,
        weight,
        bias: &case.bias,
        act,
    }
}

/// The Winograd output of `case` (`batch` images) on `threads` threads.
fn run(
    rc: &RefConv,
    case: &Case,
    batch: usize,
    act: Activation,
    threads: usize,
    simd: bool,
) -> Vec<f32> {
    let [_, _, cin] = rc.hwc;
    let weight = pack_im2col(&case.w_oihw, rc.cout, cin, 3, 3, 1);
    let p = params(rc, case, &weight, act);
    assert!(fits(&p));
    let w = WinogradWeights::new(&weight, cin, rc.cout);
    let mut scratch = vec![f32::NAN; w.scratch_floats(threads)];
    let mut out = case.nan_output();
    with_threads(threads, |par| {
        winograd_conv(
            par,
            &p,
            &w,
            batch,
            &case.x,
            case.residual(),
            &mut out,
            &mut scratch,
            simd,
        )
    });
    out
}

#[test]
fn equals_the_direct_convolution() {
    for (seed, hwc, cout, pad, batch) in [
        (1u64, [7usize, 9, 5], 19usize, 1usize, 2usize),
        (2, [4, 4, 16], 16, 1, 1),
        (3, [10, 13, 33], 17, 0, 1),
        (4, [9, 6, 3], 40, 2, 3),
        (5, [3, 3, 1], 1, 1, 1),
        (6, [14, 14, 64], 48, 1, 1),
        // Enough tiles (144) for the threads to split tiles, and for one thread to run two
        // blocks; the cases above split output channels.
        (7, [30, 34, 8], 20, 1, 2),
    ] {
        let geom = ConvGeometry::square(3, 1, pad, 1);
        let rc = RefConv::new(hwc, cout, geom, 1);
        for (act, res) in [(Activation::None, false), (Activation::Relu6, true)] {
            let case = rc.case(batch, act, res, seed).expect("window fits");
            for threads in [1, 2, 3] {
                for simd in [false, true] {
                    let got = run(&rc, &case, batch, act, threads, simd);
                    assert!(got.iter().all(|v| v.is_finite()), "every output written");
                    let err = rel_max_err(&got, &case.want);
                    assert!(
                        err < 5e-5,
                        "case {seed}, {threads} threads: error {err:.2e}"
                    );
                }
            }
        }
    }
}

/// The largest error against `f64`, relative to the output's largest magnitude.
fn rel_max_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
    err / scale
}

/// The error bound of the module's documentation, on unit-scale data over 256 and 512 input
/// channels (ResNet's widest 3×3 layers): Winograd within 5e-5 of the output's largest magnitude
/// (measured 0.8e-5 and 2.3e-5), where im2col, summing the same products directly, stays near
/// 0.3e-5.
#[test]
fn error_is_bounded_against_f64() {
    for (cin, seed) in [(256usize, 11u64), (512, 12)] {
        let rc = RefConv::new([12, 12, cin], 32, ConvGeometry::square(3, 1, 1, 1), 1);
        let case = rc.case(1, Activation::None, false, seed).unwrap();
        let wino = rel_max_err(&run(&rc, &case, 1, Activation::None, 2, true), &case.want);
        let weight = pack_im2col(&case.w_oihw, rc.cout, cin, 3, 3, 1);
        let p = params(&rc, &case, &weight, Activation::None);
        let pb = crate::kernels::im2col::pack_groups(&p);
        let mut scratch = vec![0.0; crate::kernels::im2col::scratch_len(p.patch_len(), 1)];
        let mut out = case.nan_output();
        crate::kernels::im2col::im2col_conv(
            Par::SERIAL,
            &p,
            1,
            &case.x,
            None,
            &mut out,
            &mut scratch,
            Some((&pb[..], true)),
        );
        let direct = rel_max_err(&out, &case.want);
        eprintln!("cin {cin}: winograd {wino:.2e}, im2col {direct:.2e}");
        assert!(wino < 5e-5, "cin {cin}: winograd error {wino:.2e}");
        assert!(direct < 5e-6, "cin {cin}: im2col error {direct:.2e}");
    }
}

#[test]
fn only_dense_3x3_stride_1_convolutions_fit() {
    let p = |groups: usize, geom: ConvGeometry| Im2colConv {
        hwc: [8, 8, 4],
        cout: 4,
        groups,
        geom,
        weight: &[],
        bias: &[],
        act: Activation::None,
    };
    assert!(fits(&p(1, ConvGeometry::square(3, 1, 1, 1))));
    assert!(!fits(&p(1, ConvGeometry::square(3, 2, 1, 1))));
    assert!(!fits(&p(1, ConvGeometry::square(3, 1, 2, 2))));
    assert!(!fits(&p(2, ConvGeometry::square(3, 1, 1, 1))));
    assert!(!fits(&p(1, ConvGeometry::square(5, 1, 2, 1))));
}

/// The transforms written out term by term are the matrices: `bt6` applies `Bᵀ` and `at4`
/// applies `Aᵀ` to each unit vector.
#[test]
fn written_out_transforms_are_the_matrices() {
    for k in 0..6 {
        let mut x = [0f32; 6];
        x[k] = 1.0;
        let mut r = [0f32; 6];
        bt6(&x, 0, 1, &mut r, 0, 1, 1);
        for a in 0..6 {
            assert_eq!(r[a] as f64, BT[a][k], "Bᵀ[{a}][{k}]");
        }
        let mut y = [0f32; 4];
        at4(&x, 0, 1, &mut y, 0, 1, 1);
        for a in 0..4 {
            assert_eq!(y[a] as f64, AT[a][k], "Aᵀ[{a}][{k}]");
        }
    }
    // And F(4, 3) holds in one dimension: Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of d with g.
    let (d, g) = ([0.3, -1.2, 2.0, 0.7, -0.4, 1.5], [0.5, -2.0, 1.25]);
    for (i, want) in (0..4).map(|i| (i, (0..3).map(|k| d[i + k] * g[k]).sum::<f64>())) {
        let got: f64 = (0..6)
            .map(|x| {
                let gx: f64 = (0..3).map(|k| G[x][k] * g[k]).sum();
                let dx: f64 = (0..6).map(|j| BT[x][j] * d[j]).sum();
                AT[i][x] * gx * dx
            })
            .sum();
        assert!((got - want).abs() < 1e-12, "y[{i}]: {got} against {want}");
    }
}
