//! Transposed convolution (PyTorch's `ConvTranspose2d`) on NHWC data, computed output-stationary:
//! each output pixel gathers the input pixels whose scattered window covers it,
//! `out[oy, ox] = bias + Σ x[iy, ix] · W[ky, kx]` over `oy = iy·s − p + ky·d` (and likewise along
//! x). General in kernel, stride, padding, output padding, dilation and groups.

use super::epilogue::clamp;
use super::geometry::ConvGeometry;
use crate::parallel::{for_rows, Par};
use crate::Activation;

/// Output length of one axis: `(n − 1)·s − 2p + d·(k − 1) + output_padding + 1`, or `None` when
/// it is not positive or overflows.
pub fn out_len(n: usize, k: usize, s: usize, p: usize, d: usize, op: usize) -> Option<usize> {
    if n == 0 || k == 0 || s == 0 || d == 0 {
        return None;
    }
    let grown = (n - 1)
        .checked_mul(s)?
        .checked_add(d.checked_mul(k - 1)?)?
        .checked_add(op)?
        .checked_add(1)?;
    grown.checked_sub(p.checked_mul(2)?).filter(|&v| v > 0)
}

/// Output `(height, width)` of a transposed convolution on `(h, w)`.
pub fn output_hw(
    geom: &ConvGeometry,
    output_padding: [usize; 2],
    h: usize,
    w: usize,
) -> Option<(usize, usize)> {
    let g = geom;
    Some((
        out_len(
            h,
            g.kernel[0],
            g.stride[0],
            g.padding[0],
            g.dilation[0],
            output_padding[0],
        )?,
        out_len(
            w,
            g.kernel[1],
            g.stride[1],
            g.padding[1],
            g.dilation[1],
            output_padding[1],
        )?,
    ))
}

/// Repacks PyTorch `ConvTranspose2d` weights `[cin][cout/groups][kh][kw]` into the kernel's
/// `[groups][kh][kw][cin/groups][cout/groups]`.
pub fn pack_conv_transpose(
    weight: &[f32],
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    groups: usize,
) -> Vec<f32> {
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let mut out = vec![0.0; weight.len()];
    for g in 0..groups {
        for ky in 0..kh {
            for kx in 0..kw {
                for i in 0..cin_g {
                    for o in 0..cout_g {
                        let src = (((g * cin_g + i) * cout_g + o) * kh + ky) * kw + kx;
                        let dst = ((((g * kh + ky) * kw + kx) * cin_g) + i) * cout_g + o;
                        out[dst] = weight[src];
                    }
                }
            }
        }
    }
    out
}

/// A transposed convolution's operands (weights packed by [`pack_conv_transpose`]).
#[derive(Debug, Clone, Copy)]
pub struct ConvTranspose<'a> {
    /// Input height, width, channels.
    pub hwc: [usize; 3],
    /// Output height and width.
    pub out_hw: [usize; 2],
    /// Output channels.
    pub cout: usize,
    /// Channel groups.
    pub groups: usize,
    /// Kernel, stride, padding, dilation.
    pub geom: ConvGeometry,
    /// Packed weights.
    pub weight: &'a [f32],
    /// One bias per output channel.
    pub bias: &'a [f32],
    /// Activation.
    pub act: Activation,
}

/// Input coordinates `(tap, i)` along one axis that reach output coordinate `o`.
fn sources(
    o: usize,
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    out: &mut Vec<(usize, usize)>,
) {
    out.clear();
    for t in 0..k {
        let num = (o + p) as isize - (t * d) as isize;
        if num >= 0 && (num as usize).is_multiple_of(s) && (num as usize / s) < n {
            out.push((t, num as usize / s));
        }
    }
}

/// Runs `n` images.
pub fn conv_transpose(par: Par, p: &ConvTranspose, n: usize, input: &[f32], out: &mut [f32]) {
    let [h, w, cin] = p.hwc;
    let [oh, ow] = p.out_hw;
    let (cin_g, cout_g) = (cin / p.groups, p.cout / p.groups);
    let [kh, kw] = p.geom.kernel;
    let g = p.geom;
    let (lo, hi) = p.act.bounds();
    // Taps of every output column, computed once.
    let mut cols = Vec::with_capacity(ow);
    let mut tmp = Vec::new();
    for ox in 0..ow {
        sources(
            ox,
            w,
            kw,
            g.stride[1],
            g.padding[1],
            g.dilation[1],
            &mut tmp,
        );
        cols.push(tmp.clone());
    }
    let row_len = ow * p.cout;
    for_rows(
        par,
        &mut out[..n * oh * row_len],
        n * oh,
        row_len,
        |r, row| {
            let (b, oy) = (r / oh, r % oh);
            let mut ys = Vec::with_capacity(kh);
            sources(oy, h, kh, g.stride[0], g.padding[0], g.dilation[0], &mut ys);
            for (ox, xs) in cols.iter().enumerate() {
                let dst = &mut row[ox * p.cout..(ox + 1) * p.cout];
                dst.copy_from_slice(p.bias);
                for &(ky, iy) in &ys {
                    for &(kx, ix) in xs {
                        let px = &input[((b * h + iy) * w + ix) * cin..][..cin];
                        for gi in 0..p.groups {
                            let wg = &p.weight[((gi * kh + ky) * kw + kx) * cin_g * cout_g..]
                                [..cin_g * cout_g];
                            let d = &mut dst[gi * cout_g..(gi + 1) * cout_g];
                            for (i, &xv) in px[gi * cin_g..(gi + 1) * cin_g].iter().enumerate() {
                                for (o, &wv) in d.iter_mut().zip(&wg[i * cout_g..(i + 1) * cout_g])
                                {
                                    *o += xv * wv;
                                }
                            }
                        }
                    }
                }
                for v in dst.iter_mut() {
                    *v = clamp(*v, lo, hi);
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: scatter every input pixel through the kernel (NCHW, PyTorch weights).
    #[allow(clippy::too_many_arguments)]
    fn scatter(
        x: &[f32],
        wt: &[f32],
        bias: &[f32],
        [h, w, cin]: [usize; 3],
        cout: usize,
        groups: usize,
        g: &ConvGeometry,
        op: [usize; 2],
    ) -> (Vec<f32>, usize, usize) {
        let (oh, ow) = output_hw(g, op, h, w).unwrap();
        let (cin_g, cout_g) = (cin / groups, cout / groups);
        let [kh, kw] = g.kernel;
        let mut y = vec![0.0f32; oh * ow * cout];
        for (i, v) in y.iter_mut().enumerate() {
            *v = bias[i % cout];
        }
        for iy in 0..h {
            for ix in 0..w {
                for ic in 0..cin {
                    let gi = ic / cin_g;
                    for oc in 0..cout_g {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy = (iy * g.stride[0] + ky * g.dilation[0]) as isize
                                    - g.padding[0] as isize;
                                let ox = (ix * g.stride[1] + kx * g.dilation[1]) as isize
                                    - g.padding[1] as isize;
                                if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                    continue;
                                }
                                let wv = wt[((ic * cout_g + oc) * kh + ky) * kw + kx];
                                y[((oy as usize) * ow + ox as usize) * cout + gi * cout_g + oc] +=
                                    x[(iy * w + ix) * cin + ic] * wv;
                            }
                        }
                    }
                }
            }
        }
        (y, oh, ow)
    }

    #[test]
    fn sizes_follow_pytorch() {
        // nn.ConvTranspose2d(1, 1, 16, stride=8, padding=4)(torch.zeros(1, 1, 7, 7)).shape[-1] == 56
        assert_eq!(out_len(7, 16, 8, 4, 1, 0), Some(56));
        // kernel 3, stride 2, padding 1, output_padding 1: 5 -> 10
        assert_eq!(out_len(5, 3, 2, 1, 1, 1), Some(10));
        assert_eq!(out_len(1, 1, 1, 1, 1, 0), None);
    }

    #[test]
    fn gather_equals_scatter_definition() {
        for (k, s, pad, d, op, groups, cin, cout) in [
            (4, 2, 1, 1, 0, 1, 3, 5),
            (3, 2, 1, 1, 1, 1, 2, 2),
            (5, 3, 2, 2, 1, 2, 4, 6),
            (16, 8, 4, 1, 0, 1, 2, 3),
            (3, 1, 0, 1, 0, 3, 3, 3),
        ] {
            let (h, w) = (3, 4);
            let g = ConvGeometry::square(k, s, pad, d);
            let x: Vec<f32> = (0..2 * h * w * cin)
                .map(|i| ((i * 5) % 9) as f32 - 4.0)
                .collect();
            let wt: Vec<f32> = (0..cin * (cout / groups) * k * k)
                .map(|i| ((i * 3) % 7) as f32 * 0.25 - 0.5)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1).collect();
            let (oh, ow) = output_hw(&g, [op, op], h, w).unwrap();
            let packed = pack_conv_transpose(&wt, cin, cout, k, k, groups);
            let p = ConvTranspose {
                hwc: [h, w, cin],
                out_hw: [oh, ow],
                cout,
                groups,
                geom: g,
                weight: &packed,
                bias: &bias,
                act: Activation::None,
            };
            let mut got = vec![0.0; 2 * oh * ow * cout];
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            conv_transpose(Par::new(Some(&pool), 2), &p, 2, &x, &mut got);
            for b in 0..2 {
                let img = &x[b * h * w * cin..(b + 1) * h * w * cin];
                let (want, ..) = scatter(img, &wt, &bias, [h, w, cin], cout, groups, &g, [op, op]);
                let part = &got[b * oh * ow * cout..(b + 1) * oh * ow * cout];
                for (a, e) in part.iter().zip(&want) {
                    assert!(
                        (a - e).abs() < 1e-4,
                        "k{k} s{s} p{pad} d{d} op{op} g{groups}: {a} vs {e}"
                    );
                }
            }
        }
    }
}
