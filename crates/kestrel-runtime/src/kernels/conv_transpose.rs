//! Transposed convolution (PyTorch's `ConvTranspose2d`) on NHWC data, computed output-stationary:
//! each output pixel gathers the input pixels whose scattered window covers it,
//! `out[oy, ox] = bias + Σ x[iy, ix] · W[ky, kx]` over `oy = iy·s − p + ky·d` (and likewise along
//! x). General in kernel, stride, padding, output padding, dilation and groups.
//!
//! [`SubPixel`] runs the dense undilated case (FCN's learnt upsampling) as the convolution it
//! equals on the input's grid: with `o + p = s·q + r`, output `o` is `Σ_t x[q − t] · W[s·t + r]`
//! over `t < T = ⌈k/s⌉`, so one T×T convolution (padding T − 1) with `s²·cout` output channels,
//! one per sub-pixel phase `r`, gives every output pixel; a depth-to-space with the padding's
//! offset then places them. Its GEMM has `T²·cin` rows of weights where the gather loop above
//! had a `cout`-wide multiply per input channel and tap.

use super::epilogue::clamp;
use super::geometry::ConvGeometry;
use super::im2col::{im2col_conv, pack_groups, scratch_len, Im2colConv};
use super::packed_gemm::PackedB;
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

/// A dense, undilated transposed convolution as a T×T convolution on the input's grid and a
/// depth-to-space (see the module documentation).
pub struct SubPixel {
    /// Taps per axis on the input's grid, `T = ⌈k/s⌉`.
    taps: [usize; 2],
    /// Weights of the convolution in the im2col layout `[Th][Tw][cin][s_h·s_w·cout]`, output
    /// channel `(r_y·s_w + r_x)·cout + c` for phase `(r_y, r_x)`.
    weight: Vec<f32>,
    /// Its (zero) biases; the transposed convolution's are added when the phases are placed.
    zeros: Vec<f32>,
    packed: Vec<PackedB>,
}

impl SubPixel {
    /// The convolution of `p`, or `None` (the gather loop runs) when it has groups or dilation,
    /// or when its weights or phases would be more than four times the transposed convolution's
    /// weights or output (and 64 Ki floats more): a stride far above the kernel, or padding that
    /// crops most of the grid away. So what it allocates is bounded by what the plan's validated
    /// weights and values already hold.
    pub fn new(p: &ConvTranspose) -> Option<SubPixel> {
        if p.groups != 1 || p.geom.dilation != [1, 1] {
            return None;
        }
        let ([kh, kw], [sh, sw]) = (p.geom.kernel, p.geom.stride);
        let taps = [kh.div_ceil(sh), kw.div_ceil(sw)];
        let [th, tw] = taps;
        let [h, w, cin] = p.hwc;
        let ([oh, ow], cout) = (p.out_hw, p.cout);
        // Sizes as products that give up (None) rather than overflow: a plan's strides are
        // bounded only through its output's size.
        let product = |f: &[usize]| f.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        let fits = |a: Option<usize>, b: usize| a.is_some_and(|a| a <= 4 * b + (1 << 16));
        let weights = product(&[th, tw, sh, sw, cin, cout]);
        let phases = product(&[h + th - 1, w + tw - 1, sh, sw, cout]);
        if !(fits(weights, kh * kw * cin * cout) && fits(phases, oh * ow * cout)) {
            return None;
        }
        let n_out = sh * sw * cout;
        let mut weight = vec![0.0f32; th * tw * cin * n_out];
        for (a, b, ry, rx) in phase_taps(th, tw, sh, sw) {
            let (ky, kx) = (sh * (th - 1 - a) + ry, sw * (tw - 1 - b) + rx);
            if ky >= kh || kx >= kw {
                continue;
            }
            for i in 0..cin {
                let src = &p.weight[((ky * kw + kx) * cin + i) * cout..][..cout];
                let col = (ry * sw + rx) * cout;
                weight[((a * tw + b) * cin + i) * n_out + col..][..cout].copy_from_slice(src);
            }
        }
        let mut sub = SubPixel {
            taps,
            weight,
            zeros: vec![0.0; n_out],
            packed: Vec::new(),
        };
        sub.packed = pack_groups(&sub.conv(p));
        Some(sub)
    }

    /// The convolution on the input's grid.
    fn conv<'a>(&'a self, p: &ConvTranspose) -> Im2colConv<'a> {
        let [th, tw] = self.taps;
        Im2colConv {
            hwc: p.hwc,
            cout: self.zeros.len(),
            groups: 1,
            geom: ConvGeometry {
                kernel: self.taps,
                stride: [1, 1],
                padding: [th - 1, tw - 1],
                dilation: [1, 1],
            },
            weight: &self.weight,
            bias: &self.zeros,
            act: Activation::None,
        }
    }

    /// Floats of scratch [`SubPixel::run`] needs: one image's phases and the im2col patches.
    pub fn scratch_floats(&self, p: &ConvTranspose, threads: usize) -> usize {
        let [h, w, cin] = p.hwc;
        let [th, tw] = self.taps;
        (h + th - 1) * (w + tw - 1) * self.zeros.len() + scratch_len(th * tw * cin, threads)
    }

    /// Runs `n` images of `p` (the op this was made from), image by image.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        par: Par,
        p: &ConvTranspose,
        n: usize,
        input: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        simd: bool,
    ) {
        let [h, w, cin] = p.hwc;
        let [oh, ow] = p.out_hw;
        let ([th, tw], [sh, sw]) = (self.taps, p.geom.stride);
        let [ph, pw] = p.geom.padding;
        let (uh, uw, n_out, cout) = (h + th - 1, w + tw - 1, self.zeros.len(), p.cout);
        let (lo, hi) = p.act.bounds();
        let (phases, patches) = scratch.split_at_mut(uh * uw * n_out);
        let conv = self.conv(p);
        for b in 0..n {
            let x = &input[b * h * w * cin..][..h * w * cin];
            let packed = Some((&self.packed[..], simd));
            im2col_conv(par, &conv, 1, x, None, phases, patches, packed);
            let phases = &*phases;
            let img = &mut out[b * oh * ow * cout..][..oh * ow * cout];
            for_rows(par, img, oh, ow * cout, |oy, row| {
                let (qy, ry) = ((oy + ph) / sh, (oy + ph) % sh);
                for (ox, dst) in row.chunks_exact_mut(cout).enumerate() {
                    let (qx, rx) = ((ox + pw) / sw, (ox + pw) % sw);
                    // Past the grid only the bias reaches (output padding).
                    if qy < uh && qx < uw {
                        let at = (qy * uw + qx) * n_out + (ry * sw + rx) * cout;
                        for ((d, &u), &bv) in dst.iter_mut().zip(&phases[at..at + cout]).zip(p.bias)
                        {
                            *d = clamp(u + bv, lo, hi);
                        }
                    } else {
                        for (d, &bv) in dst.iter_mut().zip(p.bias) {
                            *d = clamp(bv, lo, hi);
                        }
                    }
                }
            });
        }
    }
}

/// Every grid tap and phase `(a, b, ry, rx)`: `a < th`, `b < tw`, `ry < sh`, `rx < sw`.
fn phase_taps(
    th: usize,
    tw: usize,
    sh: usize,
    sw: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..th).flat_map(move |a| {
        (0..tw).flat_map(move |b| (0..sh).flat_map(move |ry| (0..sw).map(move |rx| (a, b, ry, rx))))
    })
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

    /// A stride far above the kernel, or padding that crops nearly all of the output, would make
    /// the sub-pixel convolution's weights or phases many times the plan's: the gather loop runs.
    #[test]
    fn sub_pixel_is_refused_where_it_would_inflate_memory() {
        let op = |k: usize, s: usize, pad: usize, h: usize| {
            let g = ConvGeometry::square(k, s, pad, 1);
            let (oh, ow) = g.transposed_output_hw([0, 0], h, h).unwrap();
            (g, [oh, ow])
        };
        for (k, s, pad, h, fits) in [
            (16, 8, 4, 8, true),
            (3, 2, 1, 8, true),
            (1, 1000, 0, 4, false),
            (1, 1 << 40, 0, 1, false),
            (2, 2, 0, 1000, true),
            (2, 2, 999, 1000, false),
        ] {
            let (geom, out_hw) = op(k, s, pad, h);
            let weight = vec![0.0; k * k];
            let p = ConvTranspose {
                hwc: [h, h, 1],
                out_hw,
                cout: 1,
                groups: 1,
                geom,
                weight: &weight,
                bias: &[0.0],
                act: Activation::None,
            };
            assert_eq!(SubPixel::new(&p).is_some(), fits, "k{k} s{s} p{pad} h{h}");
        }
    }

    /// The sub-pixel convolution equals the scatter definition: kernels that are and are not
    /// multiples of the stride, output padding (bias-only rows and columns past the grid),
    /// padding up to the kernel, stride 1, a clamp, 1 and 3 threads, both GEMM paths.
    #[test]
    fn sub_pixel_equals_scatter_definition() {
        for (k, s, pad, op, cin, cout) in [
            (4, 2, 1, 0, 3, 5),
            (3, 2, 1, 1, 2, 2),
            (16, 8, 4, 0, 3, 4),
            (5, 3, 2, 2, 4, 3),
            (7, 3, 6, 1, 2, 3),
            (2, 2, 0, 0, 1, 1),
            (3, 1, 1, 0, 3, 2),
            (1, 1, 0, 0, 2, 3),
        ] {
            let (h, w) = (3, 5);
            let g = ConvGeometry::square(k, s, pad, 1);
            let x: Vec<f32> = (0..2 * h * w * cin)
                .map(|i| ((i * 5) % 9) as f32 - 4.0)
                .collect();
            let wt: Vec<f32> = (0..cin * cout * k * k)
                .map(|i| ((i * 3) % 7) as f32 * 0.25 - 0.5)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1 - 0.2).collect();
            let (oh, ow) = g.transposed_output_hw([op, op], h, w).unwrap();
            let packed = pack_conv_transpose(&wt, cin, cout, k, k, 1);
            let p = ConvTranspose {
                hwc: [h, w, cin],
                out_hw: [oh, ow],
                cout,
                groups: 1,
                geom: g,
                weight: &packed,
                bias: &bias,
                act: Activation::Relu6,
            };
            let sub = SubPixel::new(&p).unwrap();
            for (threads, simd) in [(1, false), (3, true)] {
                let mut scratch = vec![0.0; sub.scratch_floats(&p, threads)];
                let mut got = vec![f32::NAN; 2 * oh * ow * cout];
                with_threads(threads, |par| {
                    sub.run(par, &p, 2, &x, &mut got, &mut scratch, simd)
                });
                for b in 0..2 {
                    let img = &x[b * h * w * cin..(b + 1) * h * w * cin];
                    let (want, ..) = scatter(img, &wt, &bias, [h, w, cin], cout, 1, &g, [op, op]);
                    let part = &got[b * oh * ow * cout..(b + 1) * oh * ow * cout];
                    for (a, e) in part.iter().zip(&want) {
                        let e = e.clamp(0.0, 6.0);
                        assert!(
                            (a - e).abs() < 1e-4,
                            "k{k} s{s} p{pad} op{op} {threads} threads: {a} vs {e}"
                        );
                    }
                }
            }
        }
    }
}
