//! Autodiff gradients of the convolutions kestrel's models rely on (grouped / depthwise, strided,
//! dilated) agree with central finite differences.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn loss_at(
    x: &[f32],
    w: &[f32],
    xs: [usize; 4],
    ws: [usize; 4],
    opt: &ConvOptions<2>,
    probe: &[f32],
) -> f64 {
    let d = Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), xs), &d);
    let w = Tensor::<4>::from_data(TensorData::new(w.to_vec(), ws), &d);
    let y = conv2d(x, w, None, opt.clone());
    let dims = y.dims();
    let p = Tensor::<4>::from_data(TensorData::new(probe.to_vec(), dims), &d);
    (y * p).sum().into_scalar::<f32>() as f64
}

fn check(groups: usize, stride: usize, dilation: usize) {
    let (n, c, h, wd, k) = (2, 4, 7, 6, 3);
    let xs = [n, c, h, wd];
    let ws = [c, c / groups, k, k];
    let opt = ConvOptions::new([stride; 2], [dilation; 2], [dilation; 2], groups);
    let ad = Device::flex().autodiff();
    ad.seed(1);
    let x = Tensor::<4>::random(xs, Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let w = Tensor::<4>::random(ws, Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let y = conv2d(x.clone(), w.clone(), None, opt.clone());
    let probe = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &ad);
    let probe_v: Vec<f32> = probe.clone().into_data().try_to_vec().unwrap();
    let grads = (y * probe).sum().backward();
    let gw: Vec<f32> = w.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    let gx: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    let xv: Vec<f32> = x.into_data().try_to_vec().unwrap();
    let wv: Vec<f32> = w.into_data().try_to_vec().unwrap();
    let eps = 1e-2f32;
    for i in (0..wv.len()).step_by(5) {
        let (mut a, mut b) = (wv.clone(), wv.clone());
        a[i] += eps;
        b[i] -= eps;
        let num = (loss_at(&xv, &a, xs, ws, &opt, &probe_v)
            - loss_at(&xv, &b, xs, ws, &opt, &probe_v))
            / (2.0 * eps as f64);
        assert!(
            (num - gw[i] as f64).abs() < 2e-2 * (1.0 + num.abs()),
            "weight grad {i}: autodiff {} vs numeric {num} (g{groups} s{stride} d{dilation})",
            gw[i]
        );
    }
    for i in (0..xv.len()).step_by(7) {
        let (mut a, mut b) = (xv.clone(), xv.clone());
        a[i] += eps;
        b[i] -= eps;
        let num = (loss_at(&a, &wv, xs, ws, &opt, &probe_v)
            - loss_at(&b, &wv, xs, ws, &opt, &probe_v))
            / (2.0 * eps as f64);
        assert!(
            (num - gx[i] as f64).abs() < 2e-2 * (1.0 + num.abs()),
            "input grad {i}: autodiff {} vs numeric {num} (g{groups} s{stride} d{dilation})",
            gx[i]
        );
    }
}

#[test]
fn depthwise_and_grouped_conv_gradients_match_finite_differences() {
    for (g, s, d) in [(4, 1, 1), (4, 2, 1), (4, 1, 2), (2, 2, 1), (1, 1, 1)] {
        check(g, s, d);
    }
}

/// Direct evaluation of the convolution sum, for the forward reference.
#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    s: usize,
    p: usize,
    d: usize,
    g: usize,
) -> (Vec<f32>, [usize; 4]) {
    let [n, c, h, wd] = xs;
    let [co, cig, k, _] = ws;
    let ho = (h + 2 * p - d * (k - 1) - 1) / s + 1;
    let wo = (wd + 2 * p - d * (k - 1) - 1) / s + 1;
    let mut y = vec![0f32; n * co * ho * wo];
    let cog = co / g;
    for b in 0..n {
        for o in 0..co {
            let grp = o / cog;
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = 0f32;
                    for ci in 0..cig {
                        let cin = grp * cig + ci;
                        for u in 0..k {
                            for v in 0..k {
                                let yy = (i * s + u * d) as isize - p as isize;
                                let xx = (j * s + v * d) as isize - p as isize;
                                if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                    acc += x[((b * c + cin) * h + yy as usize) * wd + xx as usize]
                                        * w[((o * cig + ci) * k + u) * k + v];
                                }
                            }
                        }
                    }
                    y[((b * co + o) * ho + i) * wo + j] = acc;
                }
            }
        }
    }
    (y, [n, co, ho, wo])
}

#[test]
fn conv_forward_matches_the_direct_sum() {
    let d = Device::flex();
    d.seed(2);
    for (g, s, dil, c, h, w) in [
        (8, 2, 1, 8, 9, 7),
        (8, 1, 1, 8, 6, 6),
        (8, 2, 2, 8, 11, 10),
        (1, 2, 1, 3, 9, 9),
        (2, 1, 1, 4, 5, 8),
    ] {
        let xs = [2, c, h, w];
        let ws = [c, c / g, 3, 3];
        let x = Tensor::<4>::random(xs, Distribution::Normal(0.0, 1.0), &d);
        let wt = Tensor::<4>::random(ws, Distribution::Normal(0.0, 1.0), &d);
        let y = conv2d(
            x.clone(),
            wt.clone(),
            None,
            ConvOptions::new([s; 2], [dil; 2], [dil; 2], g),
        );
        let xv: Vec<f32> = x.into_data().try_to_vec().unwrap();
        let wv: Vec<f32> = wt.into_data().try_to_vec().unwrap();
        let (want, shape) = naive_conv(&xv, xs, &wv, ws, s, dil, dil, g);
        assert_eq!(y.dims(), shape);
        let got: Vec<f32> = y.into_data().try_to_vec().unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "g{g} s{s} d{dil}: {a} vs {b}");
        }
    }
}
