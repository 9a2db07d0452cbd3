//! Resampling of NHWC images by separable interpolation (nearest, linear, cubic), with PyTorch's
//! `F.interpolate` coordinate conventions: `align_corners` maps the corner pixels onto each other;
//! otherwise pixel centres are mapped through the scale (the given scale factor's inverse when one
//! is given, `input / output` otherwise), linear clamps a negative source to 0, cubic uses
//! Keys' kernel with a = −0.75 and replicates the border, nearest takes `floor(o · scale)`.

use crate::parallel::{for_rows, Par};
use serde::{Deserialize, Serialize};

/// The interpolation kernel of a [`crate::Op::Resize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    /// Nearest neighbour (PyTorch's `nearest`, not `nearest-exact`).
    Nearest,
    /// Linear along each axis (bilinear).
    Linear,
    /// Cubic convolution along each axis (bicubic), a = −0.75.
    Cubic,
}

/// PyTorch's cubic convolution coefficient.
const CUBIC_A: f32 = -0.75;

/// For one axis: each output coordinate's source indices and weights, `taps` of each.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisTaps {
    /// Taps per output coordinate.
    pub taps: usize,
    /// `output × taps` source indices (each `< input`).
    pub index: Vec<usize>,
    /// `output × taps` weights.
    pub weight: Vec<f32>,
}

/// The source-coordinate scale of one axis.
fn axis_scale(n_in: usize, n_out: usize, scale: Option<f64>, align_corners: bool) -> f32 {
    if align_corners {
        if n_out > 1 {
            (n_in as f32 - 1.0) / (n_out as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        match scale {
            Some(s) if s > 0.0 => (1.0 / s) as f32,
            _ => n_in as f32 / n_out as f32,
        }
    }
}

/// Keys' cubic kernel for |x| ≤ 1.
fn cubic_near(x: f32) -> f32 {
    ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0
}

/// Keys' cubic kernel for 1 < |x| < 2.
fn cubic_far(x: f32) -> f32 {
    ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A
}

/// The taps resampling an axis of `n_in` samples to `n_out` (both at least 1). `scale` is the
/// scale factor the model was given, if any (it changes the mapping when `n_out / n_in` is not
/// exactly the factor); `align_corners` is ignored by `Nearest`.
pub fn axis_taps(
    mode: ResizeMode,
    n_in: usize,
    n_out: usize,
    scale: Option<f64>,
    align_corners: bool,
) -> AxisTaps {
    let last = n_in - 1;
    let mut t = AxisTaps {
        taps: match mode {
            ResizeMode::Nearest => 1,
            ResizeMode::Linear => 2,
            ResizeMode::Cubic => 4,
        },
        index: Vec::new(),
        weight: Vec::new(),
    };
    let ac = align_corners && mode != ResizeMode::Nearest;
    let s = axis_scale(n_in, n_out, scale, ac);
    for o in 0..n_out {
        let src = if ac {
            s * o as f32
        } else {
            s * (o as f32 + 0.5) - 0.5
        };
        match mode {
            ResizeMode::Nearest => {
                t.index.push(((o as f32 * s).floor() as usize).min(last));
                t.weight.push(1.0);
            }
            ResizeMode::Linear => {
                let src = src.max(0.0);
                let i0 = (src.floor() as usize).min(last);
                let l = (src - i0 as f32).clamp(0.0, 1.0);
                t.index.extend([i0, (i0 + 1).min(last)]);
                t.weight.extend([1.0 - l, l]);
            }
            ResizeMode::Cubic => {
                let i0 = (src.floor() as i64).min(last as i64);
                let x = (src - i0 as f32).clamp(0.0, 1.0);
                let w = [
                    cubic_far(x + 1.0),
                    cubic_near(x),
                    cubic_near(1.0 - x),
                    cubic_far(2.0 - x),
                ];
                for (k, wk) in w.into_iter().enumerate() {
                    t.index
                        .push((i0 - 1 + k as i64).clamp(0, last as i64) as usize);
                    t.weight.push(wk);
                }
            }
        }
    }
    t
}

/// Resamples `n` images of `(h, w, c)` to `(th.len, tw.len, c)` (`out` holds
/// `n × oh × ow × c` floats): `out[y, x] = Σ_a Σ_b wh[y,a] · ww[x,b] · in[ih[y,a], iw[x,b]]`.
pub fn resize(
    par: Par,
    hwc: [usize; 3],
    th: &AxisTaps,
    tw: &AxisTaps,
    n: usize,
    input: &[f32],
    out: &mut [f32],
) {
    let [h, w, c] = hwc;
    let oh = th.index.len() / th.taps;
    let ow = tw.index.len() / tw.taps;
    for_rows(
        par,
        &mut out[..n * oh * ow * c],
        n * oh,
        ow * c,
        |r, row| {
            let (b, y) = (r / oh, r % oh);
            let img = &input[b * h * w * c..(b + 1) * h * w * c];
            row.fill(0.0);
            for a in 0..th.taps {
                let wy = th.weight[y * th.taps + a];
                if wy == 0.0 {
                    continue;
                }
                let src_row = &img[th.index[y * th.taps + a] * w * c..][..w * c];
                for x in 0..ow {
                    let dst = &mut row[x * c..(x + 1) * c];
                    for bb in 0..tw.taps {
                        let wgt = wy * tw.weight[x * tw.taps + bb];
                        if wgt == 0.0 {
                            continue;
                        }
                        let src = &src_row[tw.index[x * tw.taps + bb] * c..][..c];
                        for (d, &v) in dst.iter_mut().zip(src) {
                            *d += wgt * v;
                        }
                    }
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense `out × in` matrix of an axis.
    fn dense(t: &AxisTaps, n_in: usize) -> Vec<f32> {
        let n_out = t.index.len() / t.taps;
        let mut m = vec![0.0; n_out * n_in];
        for o in 0..n_out {
            for k in 0..t.taps {
                m[o * n_in + t.index[o * t.taps + k]] += t.weight[o * t.taps + k];
            }
        }
        m
    }

    #[test]
    fn matrices_equal_pytorch_values() {
        // F.interpolate(torch.eye(2)[None, None], size=(4, 2), mode='bilinear')[0, 0] rows:
        // [1, 0], [.75, .25], [.25, .75], [0, 1].
        let t = axis_taps(ResizeMode::Linear, 2, 4, Some(2.0), false);
        assert_eq!(dense(&t, 2), [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]);
        // align_corners=True, 2 -> 3: [1, 0], [.5, .5], [0, 1].
        let t = axis_taps(ResizeMode::Linear, 2, 3, None, true);
        assert_eq!(dense(&t, 2), [1.0, 0.0, 0.5, 0.5, 0.0, 1.0]);
        // bicubic, align_corners=True, 4 -> 7: row 1 samples 0.5:
        // F.interpolate(torch.eye(4)[None,None], size=(7,4), mode='bicubic', align_corners=True)
        // [0, 0, 1] = [0.5, 0.59375, -0.09375, 0].
        let t = axis_taps(ResizeMode::Cubic, 4, 7, None, true);
        let m = dense(&t, 4);
        for (a, b) in m[4..8].iter().zip([0.5, 0.59375, -0.09375, 0.0]) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
        // nearest 3 -> 7: [0, 0, 0, 1, 1, 2, 2]; 4 -> 2: [0, 2].
        assert_eq!(
            axis_taps(ResizeMode::Nearest, 3, 7, None, false).index,
            [0, 0, 0, 1, 1, 2, 2]
        );
        assert_eq!(
            axis_taps(ResizeMode::Nearest, 4, 2, None, false).index,
            [0, 2]
        );
    }

    #[test]
    fn rows_sum_to_one() {
        for mode in [ResizeMode::Nearest, ResizeMode::Linear, ResizeMode::Cubic] {
            for (i, o) in [(1, 3), (4, 8), (5, 8), (7, 3), (2, 9), (3, 24)] {
                for ac in [false, true] {
                    let t = axis_taps(mode, i, o, None, ac);
                    for r in 0..o {
                        let s: f32 = t.weight[r * t.taps..(r + 1) * t.taps].iter().sum();
                        assert!(
                            (s - 1.0).abs() < 1e-5,
                            "{mode:?} {i}->{o} {ac} row {r}: {s}"
                        );
                        assert!(t.index[r * t.taps..(r + 1) * t.taps].iter().all(|&x| x < i));
                    }
                }
            }
        }
    }

    #[test]
    fn resize_applies_both_axes_as_a_tensor_product() {
        // Brute force: out = Mh · X_c · Mwᵀ per channel, from the dense matrices.
        let (h, w, c, n) = (3, 4, 2, 2);
        let x: Vec<f32> = (0..n * h * w * c)
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let th = axis_taps(ResizeMode::Cubic, h, 7, None, false);
        let tw = axis_taps(ResizeMode::Linear, w, 9, None, true);
        let (mh, mw) = (dense(&th, h), dense(&tw, w));
        let mut out = vec![0.0; n * 7 * 9 * c];
        resize(Par::SERIAL, [h, w, c], &th, &tw, n, &x, &mut out);
        for b in 0..n {
            for y in 0..7 {
                for xo in 0..9 {
                    for ch in 0..c {
                        let mut want = 0.0;
                        for iy in 0..h {
                            for ix in 0..w {
                                want += mh[y * h + iy]
                                    * mw[xo * w + ix]
                                    * x[((b * h + iy) * w + ix) * c + ch];
                            }
                        }
                        let got = out[((b * 7 + y) * 9 + xo) * c + ch];
                        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
                    }
                }
            }
        }
    }
}
