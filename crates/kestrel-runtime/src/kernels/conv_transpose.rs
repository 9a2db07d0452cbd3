//! Transposed convolution (PyTorch's `ConvTranspose2d`) on NHWC data, computed output-stationary:
//! each output pixel gathers the input pixels whose scattered window covers it,
//! `out[oy, ox] = bias + Σ x[iy, ix] · W[ky, kx]` over `oy = iy·s − p + ky·d` (and likewise along
//! x). General in kernel, stride, padding, output padding, dilation and groups.

use super::epilogue::clamp;
use super::geometry::ConvGeometry;
use crate::parallel::{for_rows, Par};
use crate::Activation;

/// Repacks PyTorch `ConvTranspose2d` weights `[cin][cout/groups][kh][kw]` into the kernel's
/// `[groups][kh][kw][cin/groups][cout/groups]`.
pub fn pack_conv_transpose<T: Copy + Default>(
    weight: &[T],
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    groups: usize,
) -> Vec<T> {
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let mut out = vec![T::default(); weight.len()];
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
    let (rows_axis, cols_axis) = (g.axis(0, h), g.axis(1, w));
    for ox in 0..ow {
        cols_axis.transposed_sources(ox, &mut tmp);
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
            rows_axis.transposed_sources(oy, &mut ys);
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
    use crate::kernels::reference::{taps_inside, with_threads};

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
        let (oh, ow) = g.transposed_output_hw(op, h, w).unwrap();
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
                        // The input pixel's window, scattered: the output pixels it reaches.
                        for (ky, kx, oy, ox) in taps_inside(g, [iy, ix], [oh, ow]) {
                            let wv = wt[((ic * cout_g + oc) * kh + ky) * kw + kx];
                            y[(oy * ow + ox) * cout + gi * cout_g + oc] +=
                                x[(iy * w + ix) * cin + ic] * wv;
                        }
                    }
                }
            }
        }
        (y, oh, ow)
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
            let (oh, ow) = g.transposed_output_hw([op, op], h, w).unwrap();
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
            with_threads(2, |par| conv_transpose(par, &p, 2, &x, &mut got));
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
