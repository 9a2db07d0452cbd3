//! Test-only naive references: direct loops in `f64` over NHWC input and PyTorch OIHW weights.

use super::ConvGeometry;
pub(crate) use crate::layout::{pack_depthwise, pack_im2col, pack_pointwise};
use crate::parallel::Par;
use crate::Activation;

/// Runs `f` with a [`Par`] over a fresh pool of `threads` threads.
pub(crate) fn with_threads<R>(threads: usize, f: impl FnOnce(Par) -> R) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    f(Par::new(Some(&pool), threads))
}

/// `n` states of a linear congruential generator seeded with `seed`.
fn lcg_states(n: usize, seed: u64) -> impl Iterator<Item = u64> {
    let step = |s: u64| {
        s.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
    };
    let mut s = step(seed);
    (0..n).map(move |_| {
        s = step(s);
        s
    })
}

/// Deterministic pseudo-random values in [-1, 1).
pub(crate) fn lcg_vec(n: usize, seed: u64) -> Vec<f32> {
    lcg_states(n, seed)
        .map(|s| ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        .collect()
}

/// Deterministic pseudo-random bytes (read as `u8` or `i8`, every value likely).
pub(crate) fn lcg_bytes(n: usize, seed: u64) -> Vec<u8> {
    lcg_states(n, seed).map(|s| (s >> 40) as u8).collect()
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

    /// Pseudo-random operands for `batch` images (input from `seed`, OIHW weights from
    /// `seed + 1`, bias `seed + 2`, residual `seed + 3`, used when `with_res`) and the expected
    /// output; `None` when the window does not fit the input.
    pub fn case(&self, batch: usize, act: Activation, with_res: bool, seed: u64) -> Option<Case> {
        let [h, w, cin] = self.hwc;
        let (oh, ow) = self.geom.output_hw(h, w)?;
        let [kh, kw] = self.geom.kernel;
        let x = lcg_vec(batch * h * w * cin, seed);
        let w_oihw = lcg_vec(self.cout * (cin / self.groups) * kh * kw, seed + 1);
        let bias = lcg_vec(self.cout, seed + 2);
        let res = lcg_vec(batch * oh * ow * self.cout, seed + 3);
        let residual = with_res.then_some(&res[..]);
        let want = conv_ref(self, batch, &x, &w_oihw, &bias, residual, act);
        Some(Case {
            x,
            w_oihw,
            bias,
            res: with_res.then_some(res),
            want,
        })
    }
}

/// A convolution's test operands and its reference output ([`RefConv::case`]).
pub(crate) struct Case {
    /// NHWC input.
    pub x: Vec<f32>,
    /// PyTorch OIHW weights.
    pub w_oihw: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
    /// The residual, shaped like the output, if the case has one.
    pub res: Option<Vec<f32>>,
    /// The reference output, NHWC.
    pub want: Vec<f64>,
}

impl Case {
    /// The residual as a kernel takes it.
    pub fn residual(&self) -> Option<&[f32]> {
        self.res.as_deref()
    }

    /// An output buffer of the right size, filled with NaN so unwritten elements show.
    pub fn nan_output(&self) -> Vec<f32> {
        vec![f32::NAN; self.want.len()]
    }
}

/// Along axis `i` of window `g`: the input coordinate `o·s − p + t·d` that tap `t` of output `o`
/// reads — or, for a transposed convolution, the output coordinate that input `o` scatters to
/// through tap `t`. Written out here so the references do not share the kernels' geometry code.
fn coord(g: &ConvGeometry, i: usize, o: usize, t: usize) -> isize {
    (o * g.stride[i] + t * g.dilation[i]) as isize - g.padding[i] as isize
}

/// The taps `(ky, kx)` of window `g` at `(oy, ox)` (row-major) whose coordinates ([`coord`])
/// fall inside an `h × w` map, with those coordinates: `(ky, kx, y, x)`.
pub(crate) fn taps_inside(
    g: &ConvGeometry,
    [oy, ox]: [usize; 2],
    [h, w]: [usize; 2],
) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
    let [kh, kw] = g.kernel;
    (0..kh).flat_map(move |ky| {
        (0..kw).filter_map(move |kx| {
            let (y, x) = (coord(g, 0, oy, ky), coord(g, 1, ox, kx));
            let inside = y >= 0 && x >= 0 && y < h as isize && x < w as isize;
            inside.then_some((ky, kx, y as usize, x as usize))
        })
    })
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
                        for (ky, kx, iy, ix) in taps_inside(g, [oy, ox], [h, wd]) {
                            let xi = ((b * h + iy) * wd + ix) * cin + grp * cin_g + i;
                            let wi = ((o * cin_g + i) * kh + ky) * kw + kx;
                            acc += x[xi] as f64 * w[wi] as f64;
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
                    for (_, _, iy, ix) in taps_inside(g, [oy, ox], [h, w]) {
                        m = m.max(x[((b * h + iy) * w + ix) * c + ch] as f64);
                    }
                    out[((b * oh + oy) * ow + ox) * c + ch] = m;
                }
            }
        }
    }
    out
}
