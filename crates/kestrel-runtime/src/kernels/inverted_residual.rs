//! MobileNetV2's inverted-residual block (expand 1×1 → depthwise → project 1×1, + residual) fused
//! and run band by band of output rows, so the expanded activation (6× wider than the block's
//! input) lives only in a few rows of cache-sized scratch instead of a full tensor in memory.
//! Expanded rows shared by consecutive bands are kept, not recomputed.

use super::depthwise::{depthwise_rows, Depthwise};
use super::packed_gemm::{gemm_packed, Epilogue, PackedB};
use crate::parallel::{chunks_by, split_rows, Par};
use crate::Activation;

/// Floats of expanded rows a band aims to hold (about 384 KiB: inside a 512 KiB L2).
const BAND_FLOATS: usize = 96 * 1024;

/// A 1×1 convolution with packed weights.
#[derive(Clone, Copy)]
pub struct Pointwise1x1<'a> {
    /// Packed `[cin][cout]` weights.
    pub weight: &'a PackedB,
    /// `cout` biases.
    pub bias: &'a [f32],
    /// Activation.
    pub act: Activation,
}

/// The operands of a fused block.
#[derive(Clone, Copy)]
pub struct InvertedResidual<'a> {
    /// Block input `(h, w, cin)`.
    pub hwc: [usize; 3],
    /// Expansion (absent when the expansion factor is 1).
    pub expand: Option<Pointwise1x1<'a>>,
    /// Depthwise convolution over the expanded `(h, w, hidden)` tensor.
    pub dw: Depthwise<'a>,
    /// Projection to the output channels.
    pub project: Pointwise1x1<'a>,
}

impl InvertedResidual<'_> {
    fn hidden(&self) -> usize {
        self.dw.hwc[2]
    }

    fn out_hw(&self) -> (usize, usize) {
        self.dw
            .geom
            .output_hw(self.hwc[0], self.hwc[1])
            .expect("checked by the plan")
    }

    /// Output rows per band.
    fn band_rows(&self) -> usize {
        let g = &self.dw.geom;
        let row = self.hwc[1] * self.hidden();
        let budget = (BAND_FLOATS / row.max(1)).max(1);
        let span = (g.kernel[0] - 1) * g.dilation[0] + 1;
        let r = if budget > span {
            (budget - span) / g.stride[0] + 1
        } else {
            1
        };
        r.clamp(1, self.out_hw().0)
    }

    /// Expanded rows a band needs at most.
    fn expanded_rows(&self) -> usize {
        let g = &self.dw.geom;
        ((self.band_rows() - 1) * g.stride[0] + (g.kernel[0] - 1) * g.dilation[0] + 1)
            .min(self.hwc[0])
    }

    /// Scratch floats one thread needs.
    pub fn scratch_per_thread(&self) -> usize {
        let (_, ow) = self.out_hw();
        let hidden = self.hidden();
        let exp = if self.expand.is_some() {
            self.expanded_rows() * self.hwc[1] * hidden
        } else {
            0
        };
        exp + self.band_rows() * ow * hidden
    }
}

/// Runs the block on `n` images: `out = project(dw(expand(input))) + residual`. Each image's
/// output rows are split across the threads; `scratch` holds `threads ×`
/// [`InvertedResidual::scratch_per_thread`] floats.
#[allow(clippy::too_many_arguments)]
pub fn inverted_residual(
    par: Par,
    p: &InvertedResidual,
    n: usize,
    input: &[f32],
    residual: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    simd: bool,
) {
    let [h, w, cin] = p.hwc;
    let (oh, ow) = p.out_hw();
    let cout = p.project.weight.n;
    let per_thread = p.scratch_per_thread();
    let in_len = h * w * cin;
    let out_len = oh * ow * cout;
    for b in 0..n {
        let img = &input[b * in_len..(b + 1) * in_len];
        let res = residual.map(|r| &r[b * out_len..(b + 1) * out_len]);
        let parts = split_rows(oh, par.threads(), 1);
        let chunks = chunks_by(&mut out[b * out_len..(b + 1) * out_len], &parts, ow * cout);
        let mut items = Vec::with_capacity(parts.len());
        let mut oy = 0;
        for ((chunk, sc), &rows) in chunks
            .into_iter()
            .zip(scratch.chunks_mut(per_thread.max(1)))
            .zip(&parts)
        {
            items.push((chunk, sc, oy, oy + rows));
            oy += rows;
        }
        par.run(items, |_, (chunk, sc, oy_a, oy_b)| {
            rows_range(p, img, res, chunk, sc, oy_a, oy_b, simd)
        });
    }
}

/// Output rows `oy_a..oy_b` of one image into `out` (which starts at row `oy_a`).
#[allow(clippy::too_many_arguments)]
fn rows_range(
    p: &InvertedResidual,
    img: &[f32],
    res: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    oy_a: usize,
    oy_b: usize,
    simd: bool,
) {
    let [h, w, cin] = p.hwc;
    let (_, ow) = p.out_hw();
    let hidden = p.hidden();
    let cout = p.project.weight.n;
    let g = &p.dw.geom;
    let (s, pad, kh, d) = (
        g.stride[0],
        g.padding[0] as isize,
        g.kernel[0],
        g.dilation[0],
    );
    let r = p.band_rows();
    let exp_len = if p.expand.is_some() {
        p.expanded_rows() * w * hidden
    } else {
        0
    };
    let (exp, dwbuf) = scratch.split_at_mut(exp_len);
    let row = w * hidden;
    // Expanded rows held in `exp`: [base, base + cnt).
    let (mut base, mut cnt) = (0usize, 0usize);
    let mut oy0 = oy_a;
    while oy0 < oy_b {
        let oy1 = (oy0 + r).min(oy_b);
        let lo = ((oy0 * s) as isize - pad).clamp(0, h as isize) as usize;
        let hi = (((oy1 - 1) * s) as isize - pad + ((kh - 1) * d) as isize + 1).clamp(0, h as isize)
            as usize;
        let (band, row_base): (&[f32], usize) = match &p.expand {
            Some(e) => {
                if cnt > 0 && lo >= base && lo < base + cnt {
                    let keep = base + cnt - lo;
                    exp.copy_within((lo - base) * row..(lo - base + keep) * row, 0);
                    cnt = keep;
                } else {
                    cnt = 0;
                }
                base = lo;
                let first = base + cnt;
                if hi > first {
                    let m = (hi - first) * w;
                    let ep = Epilogue {
                        bias: e.bias,
                        residual: None,
                        act: e.act,
                    };
                    gemm_packed(
                        m,
                        &img[first * w * cin..hi * w * cin],
                        cin,
                        e.weight,
                        &mut exp[cnt * row..],
                        hidden,
                        &ep,
                        simd,
                    );
                    cnt = hi - base;
                }
                (&exp[..], base)
            }
            None => (img, 0),
        };
        let rows_out = oy1 - oy0;
        let dw_out = &mut dwbuf[..rows_out * ow * hidden];
        depthwise_rows(&p.dw, band, row_base, oy0, oy1, dw_out, simd);
        let at = (oy0 - oy_a) * ow * cout;
        let res_rows = res.map(|r| &r[oy0 * ow * cout..oy1 * ow * cout]);
        let ep = Epilogue {
            bias: p.project.bias,
            residual: res_rows,
            act: p.project.act,
        };
        gemm_packed(
            rows_out * ow,
            dw_out,
            hidden,
            p.project.weight,
            &mut out[at..at + rows_out * ow * cout],
            cout,
            &ep,
            simd,
        );
        oy0 = oy1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::{
        close, conv_ref, lcg_vec, pack_depthwise, pack_pointwise, RefConv,
    };
    use crate::kernels::ConvGeometry;
    use proptest::prelude::*;

    /// The block computed layer by layer with the f64 reference convolution.
    #[allow(clippy::too_many_arguments)]
    fn check(
        h: usize,
        w: usize,
        cin: usize,
        t: usize,
        cout: usize,
        stride: usize,
        dil: usize,
        batch: usize,
        with_res: bool,
        threads: usize,
        simd: bool,
        seed: u64,
    ) {
        let hidden = cin * t;
        let geom = ConvGeometry::square(3, stride, dil, dil);
        let Some((oh, ow)) = geom.output_hw(h, w) else {
            return;
        };
        let x = lcg_vec(batch * h * w * cin, seed);
        let we = lcg_vec(hidden * cin, seed + 1);
        let be = lcg_vec(hidden, seed + 2);
        let wd = lcg_vec(hidden * 9, seed + 3);
        let bd = lcg_vec(hidden, seed + 4);
        let wp = lcg_vec(cout * hidden, seed + 5);
        let bp = lcg_vec(cout, seed + 6);
        let res = lcg_vec(batch * oh * ow * cout, seed + 7);
        let res = with_res.then_some(&res[..]);
        // reference, layer by layer (f64 then rounded between layers like the engine's f32 storage)
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let e = if t == 1 {
            x.clone()
        } else {
            to32(conv_ref(
                &RefConv::new([h, w, cin], hidden, ConvGeometry::square(1, 1, 0, 1), 1),
                batch,
                &x,
                &we,
                &be,
                None,
                Activation::Relu6,
            ))
        };
        let dw = to32(conv_ref(
            &RefConv::new([h, w, hidden], hidden, geom, hidden),
            batch,
            &e,
            &wd,
            &bd,
            None,
            Activation::Relu6,
        ));
        let want = conv_ref(
            &RefConv::new([oh, ow, hidden], cout, ConvGeometry::square(1, 1, 0, 1), 1),
            batch,
            &dw,
            &wp,
            &bp,
            res,
            Activation::None,
        );
        let pe = PackedB::pack(&pack_pointwise(&we, hidden, cin), cin, hidden, hidden);
        let pp = PackedB::pack(&pack_pointwise(&wp, cout, hidden), hidden, cout, cout);
        let wdp = pack_depthwise(&wd, hidden, 3, 3);
        let p = InvertedResidual {
            hwc: [h, w, cin],
            expand: (t != 1).then_some(Pointwise1x1 {
                weight: &pe,
                bias: &be,
                act: Activation::Relu6,
            }),
            dw: Depthwise {
                hwc: [h, w, hidden],
                geom,
                weight: &wdp,
                bias: &bd,
                act: Activation::Relu6,
            },
            project: Pointwise1x1 {
                weight: &pp,
                bias: &bp,
                act: Activation::None,
            },
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut scratch = vec![0.0; threads * p.scratch_per_thread()];
        let mut out = vec![f32::NAN; batch * oh * ow * cout];
        inverted_residual(
            Par::new(Some(&pool), threads),
            &p,
            batch,
            &x,
            res,
            &mut out,
            &mut scratch,
            simd,
        );
        close(&out, &want, 1e-4);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn matches_layer_by_layer_reference(h in 1usize..14, w in 1usize..14, cin in 1usize..12, t in prop::sample::select(vec![1usize, 2, 6]),
                                            cout in 1usize..20, s in 1usize..3, d in 1usize..3, batch in prop::sample::select(vec![1usize, 3]),
                                            res in any::<bool>(), threads in 1usize..4, simd in any::<bool>(), seed in 0u64..1000) {
            check(h, w, cin, t, cout, s, d, batch, res, threads, simd, seed);
        }
    }

    #[test]
    fn wide_rows_use_several_bands() {
        // 40 wide x 96 hidden: a band holds only a few rows, so rows are carried between bands.
        check(37, 40, 16, 6, 24, 1, 1, 1, true, 2, true, 1);
        check(37, 40, 16, 6, 24, 2, 1, 1, false, 1, true, 2);
        check(30, 40, 16, 6, 24, 1, 2, 1, false, 3, false, 3);
    }
}
