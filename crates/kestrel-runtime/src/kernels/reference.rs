//! Test-only naive references: direct loops in `f64` over NHWC input and PyTorch OIHW weights.

use super::ConvGeometry;
pub(crate) use crate::layout::{pack_depthwise, pack_im2col, pack_pointwise};
use crate::Activation;

/// Deterministic pseudo-random values in [-1, 1).
pub(crate) fn lcg_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Asserts `got` equals `want` within `tol` relative to `max(1, |want|)`.
pub(crate) fn close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g as f64 == w {
            continue; // includes equal infinities (a window entirely in the padding)
        }
        let err = (g as f64 - w).abs() / w.abs().max(1.0);
        assert!(
            err <= tol,
            "element {i}: got {g}, want {w} (rel err {err:e})"
        );
    }
}

/// A convolution described as PyTorch's `Conv2d` would be.
pub(crate) struct RefConv {
    pub hwc: [usize; 3],
    pub cout: usize,
    pub geom: ConvGeometry,
    pub groups: usize,
}

impl RefConv {
    pub fn new(hwc: [usize; 3], cout: usize, geom: ConvGeometry, groups: usize) -> Self {
        RefConv {
            hwc,
            cout,
            geom,
            groups,
        }
    }
}

fn act64(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
    }
}

#[allow(clippy::needless_range_loop)]
/// `act(conv(x, w) + bias + residual)` with `x` NHWC and `w` OIHW, returned NHWC in `f64`.
pub(crate) fn conv_ref(
    c: &RefConv,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    act: Activation,
) -> Vec<f64> {
    let [h, wd, cin] = c.hwc;
    let g = &c.geom;
    let (oh, ow) = g.output_hw(h, wd).expect("geometry fits");
    let cin_g = cin / c.groups;
    let cout_g = c.cout / c.groups;
    let [kh, kw] = g.kernel;
    let mut out = vec![0.0f64; n * oh * ow * c.cout];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..c.cout {
                    let grp = o / cout_g;
                    let mut acc = bias[o] as f64;
                    for i in 0..cin_g {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                    - g.padding[0] as isize;
                                let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                    - g.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((b * h + iy as usize) * wd + ix as usize) * cin
                                    + grp * cin_g
                                    + i;
                                let wi = ((o * cin_g + i) * kh + ky) * kw + kx;
                                acc += x[xi] as f64 * w[wi] as f64;
                            }
                        }
                    }
                    let oi = ((b * oh + oy) * ow + ox) * c.cout + o;
                    if let Some(r) = residual {
                        acc += r[oi] as f64;
                    }
                    out[oi] = act64(act, acc);
                }
            }
        }
    }
    out
}

/// Max pooling (padding counts as −∞, as in PyTorch) in `f64`.
pub(crate) fn max_pool_ref(hwc: [usize; 3], n: usize, g: &ConvGeometry, x: &[f32]) -> Vec<f64> {
    let [h, w, c] = hwc;
    let (oh, ow) = g.output_hw(h, w).unwrap();
    let mut out = vec![f64::NEG_INFINITY; n * oh * ow * c];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut m = f64::NEG_INFINITY;
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                - g.padding[0] as isize;
                            let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                - g.padding[1] as isize;
                            if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                m = m.max(
                                    x[((b * h + iy as usize) * w + ix as usize) * c + ch] as f64,
                                );
                            }
                        }
                    }
                    out[((b * oh + oy) * ow + ox) * c + ch] = m;
                }
            }
        }
    }
    out
}
