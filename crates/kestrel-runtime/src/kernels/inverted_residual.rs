//! MobileNetV2's inverted-residual block (expand 1×1 → depthwise → project 1×1, + residual) fused
//! and run band by band of output rows, so the expanded activation (6× wider than the block's
//! input) lives only in a few rows of cache-sized scratch instead of a full tensor in memory.
//! Expanded rows shared by consecutive bands are kept, not recomputed.
//!
//! Small maps (the late stages of a network at batch 1) split poorly by rows: each thread would
//! get a few rows plus the neighbours its window needs, recomputed. On maps of under sixteen rows
//! a thread the threads first expand their shares of the input rows into one shared tensor, then
//! filter and project their shares of the output rows; under four rows a thread they split the
//! channels instead: each expands and filters its own share of the hidden channels over the whole
//! map, then each projects its share of the output channels.

use super::depthwise::{depthwise_rows, Depthwise};
use super::im2col::{im2col_rows, Im2colConv, BLOCK_ROWS};
use super::packed_gemm::{gemm_packed, gemm_packed_panels, Epilogue, PackedB, NR};
use crate::parallel::{row_pieces, split_ranges, Par, SendPtr};
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

impl<'a> Pointwise1x1<'a> {
    /// The GEMM epilogue of this convolution: its bias and activation, with `residual` added.
    fn epilogue<'r>(&self, residual: Option<&'r [f32]>) -> Epilogue<'r>
    where
        'a: 'r,
    {
        Epilogue {
            bias: self.bias,
            residual,
            act: self.act,
        }
    }
}

/// How a fused block makes its expanded tensor from its input.
#[derive(Clone, Copy)]
pub enum Expansion<'a> {
    /// A 1×1 convolution: MobileNetV2's expansion layer.
    Pointwise(Pointwise1x1<'a>),
    /// A one-group convolution through im2col rows, with its weights packed by
    /// [`super::im2col::pack_groups`]: a network's stem, fused into the first block so that its
    /// output (the largest activation of a MobileNet) is only ever held a band at a time.
    Dense {
        /// The convolution (`groups == 1`).
        conv: Im2colConv<'a>,
        /// Its packed weights.
        weight: &'a PackedB,
    },
}

/// The operands of a fused block.
#[derive(Clone, Copy)]
pub struct InvertedResidual<'a> {
    /// Block input `(h, w, cin)`.
    pub hwc: [usize; 3],
    /// Expansion (absent when the expansion factor is 1 and no stem is fused).
    pub expand: Option<Expansion<'a>>,
    /// Depthwise convolution over the expanded `(h, w, hidden)` tensor.
    pub dw: Depthwise<'a>,
    /// Projection to the output channels.
    pub project: Pointwise1x1<'a>,
}

impl InvertedResidual<'_> {
    fn hidden(&self) -> usize {
        self.dw.hwc[2]
    }

    /// The 1×1 expansion, if the block has one.
    fn pointwise_expansion(&self) -> Option<&Pointwise1x1<'_>> {
        match &self.expand {
            Some(Expansion::Pointwise(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether a dense (stem) convolution makes the expanded tensor.
    fn dense_expansion(&self) -> bool {
        matches!(self.expand, Some(Expansion::Dense { .. }))
    }

    fn out_hw(&self) -> (usize, usize) {
        self.dw
            .geom
            .output_hw(self.dw.hwc[0], self.dw.hwc[1])
            .expect("checked by the plan")
    }

    /// Output rows per band.
    fn band_rows(&self) -> usize {
        let g = &self.dw.geom;
        let row = self.dw.hwc[1] * self.hidden();
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
            .min(self.dw.hwc[0])
    }

    /// Whether `threads` threads split this block by channels rather than by rows: when the
    /// output has fewer than four rows a thread (measured on MobileNetV2 at batch 1: 7 × 7
    /// maps gain, 14 × 14 ones do not) and the SIMD kernels are there.
    fn channel_split(&self, threads: usize, simd: bool) -> bool {
        threads > 1
            && !self.dense_expansion()
            && self.out_hw().0 < 4 * threads
            && simd
            && super::simd_available()
    }

    /// Whether `threads` threads expand the whole map first (each its share of the input rows,
    /// into one shared tensor) and then filter and project their shares of the output rows:
    /// on maps of fewer than sixteen rows a thread, where the banded schedule would have each
    /// thread recompute the expanded rows its window shares with its neighbour's (one row in
    /// seven on a 14 × 14 map at two threads).
    fn shared_expansion(&self, threads: usize) -> bool {
        threads > 1 && self.pointwise_expansion().is_some() && self.out_hw().0 < 16 * threads
    }

    /// Panics unless the operands fit together: the depthwise weights and biases, the expansion
    /// from `hwc` to the depthwise input (its channels, its output size for a fused stem), the
    /// projection from the hidden channels, and the biases. The schedules that split channels
    /// across threads reach the scratch through raw pointers sized by these dimensions.
    fn check(&self) {
        let [h, w, cin] = self.hwc;
        let hidden = self.hidden();
        self.dw.check();
        match &self.expand {
            Some(Expansion::Pointwise(e)) => {
                assert_eq!(
                    self.dw.hwc[..2],
                    [h, w],
                    "inverted residual: expansion size"
                );
                assert_eq!(
                    (e.weight.k, e.weight.n),
                    (cin, hidden),
                    "inverted residual: expansion weights"
                );
                assert!(e.bias.len() >= hidden, "inverted residual: expansion bias");
            }
            Some(Expansion::Dense { conv, weight }) => {
                assert_eq!(conv.hwc, self.hwc, "inverted residual: stem input");
                assert_eq!(conv.groups, 1, "inverted residual: a stem has one group");
                let out = conv
                    .geom
                    .output_hw(h, w)
                    .expect("inverted residual: stem window");
                assert_eq!(
                    [out.0, out.1, conv.cout],
                    self.dw.hwc,
                    "inverted residual: stem output"
                );
                assert_eq!(
                    (weight.k, weight.n),
                    (conv.patch_len(), hidden),
                    "inverted residual: stem weights"
                );
                assert!(conv.bias.len() >= hidden, "inverted residual: stem bias");
            }
            None => assert_eq!(self.dw.hwc, self.hwc, "inverted residual: no expansion"),
        }
        let project = self.project.weight;
        assert_eq!(project.k, hidden, "inverted residual: projection weights");
        assert!(
            self.project.bias.len() >= project.n,
            "inverted residual: projection bias"
        );
    }

    /// Scratch floats [`inverted_residual`] needs with `threads` threads.
    pub fn scratch_floats(&self, threads: usize) -> usize {
        let [h, w, _] = self.dw.hwc;
        let (oh, ow) = self.out_hw();
        let rows = threads * self.scratch_per_thread();
        let split = if self.channel_split(threads, true) {
            let exp = if self.expand.is_some() { h * w } else { 0 };
            (exp + oh * ow) * self.hidden()
        } else {
            0
        };
        let shared = if self.shared_expansion(threads) {
            h * w * self.hidden() + threads * self.shared_rows_per_thread(threads)
        } else {
            0
        };
        rows.max(split).max(shared)
    }

    /// Scratch floats one thread needs when the threads split the rows.
    fn scratch_per_thread(&self) -> usize {
        let (_, ow) = self.out_hw();
        let hidden = self.hidden();
        let exp = match &self.expand {
            Some(e) => {
                let patches = match e {
                    Expansion::Dense { conv, .. } => BLOCK_ROWS * conv.patch_len(),
                    Expansion::Pointwise(_) => 0,
                };
                self.expanded_rows() * self.dw.hwc[1] * hidden + patches
            }
            None => 0,
        };
        // Whole cache lines, so every thread's scratch starts on one.
        (exp + self.band_rows() * ow * hidden).next_multiple_of(16)
    }

    /// Scratch floats one thread filters into in the shared-expansion schedule (whole lines).
    fn shared_rows_per_thread(&self, threads: usize) -> usize {
        let (oh, ow) = self.out_hw();
        (oh.div_ceil(threads) * ow * self.hidden()).next_multiple_of(16)
    }
}

/// Runs the block on `n` images: `out = project(dw(expand(input))) + residual`. Each image's
/// output rows (or, on small maps, its channels) are split across the threads; `scratch` holds
/// [`InvertedResidual::scratch_floats`] floats. Operands that do not fit together (weights,
/// biases, buffer lengths) panic before anything is read.
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
    p.check();
    assert!(
        input.len() >= n * in_len,
        "inverted residual: input too short"
    );
    assert!(
        out.len() >= n * out_len,
        "inverted residual: output too short"
    );
    if let Some(r) = residual {
        assert!(
            r.len() >= n * out_len,
            "inverted residual: residual too short"
        );
    }
    let by_channels = p.channel_split(par.threads(), simd);
    assert!(scratch.len() >= p.scratch_floats(par.threads()));
    let shared = !by_channels && p.shared_expansion(par.threads());
    for b in 0..n {
        let im = Image {
            p,
            img: &input[b * in_len..(b + 1) * in_len],
            res: residual.map(|r| &r[b * out_len..(b + 1) * out_len]),
            simd,
        };
        let o = &mut out[b * out_len..(b + 1) * out_len];
        if by_channels {
            #[cfg(target_arch = "x86_64")]
            {
                split_channels(par, im, o, scratch);
                continue;
            }
        }
        if shared {
            shared_expansion(par, im, o, scratch);
            continue;
        }
        let items = row_pieces(o, oh, ow * cout, par.threads())
            .into_iter()
            .zip(scratch.chunks_mut(per_thread.max(1)));
        par.run(items.collect(), |_, ((chunk, oy_a), sc)| {
            let oy_b = oy_a + chunk.len() / (ow * cout).max(1);
            rows_range(im, chunk, sc, oy_a..oy_b)
        });
    }
}

/// One image through a block: the block, the image, the residual to add to its output and
/// whether the SIMD kernels may run.
#[derive(Clone, Copy)]
struct Image<'a, 'b> {
    p: &'a InvertedResidual<'b>,
    img: &'a [f32],
    res: Option<&'a [f32]>,
    simd: bool,
}

/// One image through the block in two phases: the threads expand their shares of the input rows
/// into one full expanded tensor in `scratch`; then each filters and projects its share of the
/// output rows, reading the neighbouring rows its window needs from the shared tensor.
fn shared_expansion(par: Par, im: Image, out: &mut [f32], scratch: &mut [f32]) {
    let Image { p, img, res, simd } = im;
    let [h, w, cin] = p.hwc;
    let (oh, ow) = p.out_hw();
    let hidden = p.hidden();
    let cout = p.project.weight.n;
    let e = p
        .pointwise_expansion()
        .expect("a shared expansion needs a 1x1 expansion");
    let (exp, rest) = scratch.split_at_mut(h * w * hidden);
    par.run(
        row_pieces(exp, h, w * hidden, par.threads()),
        |_, (chunk, r0)| {
            let rows = chunk.len() / (w * hidden).max(1);
            let ep = e.epilogue(None);
            let a = &img[r0 * w * cin..(r0 + rows) * w * cin];
            gemm_packed(rows * w, a, cin, e.weight, chunk, hidden, &ep, simd);
        },
    );
    let exp: &[f32] = exp;
    let per = p.shared_rows_per_thread(par.threads());
    let items = row_pieces(out, oh, ow * cout, par.threads())
        .into_iter()
        .zip(rest.chunks_mut(per.max(1)));
    par.run(items.collect(), |_, ((chunk, oy_a), sc)| {
        let oy_b = oy_a + chunk.len() / (ow * cout).max(1);
        let m = (oy_b - oy_a) * ow;
        let dw = &mut sc[..m * hidden];
        depthwise_rows(&p.dw, exp, 0, oy_a, oy_b, dw, simd);
        let ep = p
            .project
            .epilogue(res.map(|r| &r[oy_a * ow * cout..oy_b * ow * cout]));
        gemm_packed(m, dw, hidden, p.project.weight, chunk, cout, &ep, simd);
    });
}

/// One image through the block with the channels split across the threads (SIMD kernels only):
/// first each thread expands and filters its share of the hidden channels (whole 16-column panels)
/// over the whole map, into full-size tensors in `scratch`; then each projects its share of the
/// output panels.
#[cfg(target_arch = "x86_64")]
fn split_channels(par: Par, im: Image, out: &mut [f32], scratch: &mut [f32]) {
    let Image { p, img, res, .. } = im;
    use super::depthwise::depthwise_rows_channels_raw;
    let [h, w, cin] = p.hwc;
    let (oh, ow) = p.out_hw();
    let hidden = p.hidden();
    let cout = p.project.weight.n;
    let exp_len = if p.expand.is_some() {
        h * w * hidden
    } else {
        0
    };
    let (exp, rest) = scratch.split_at_mut(exp_len);
    let dw = &mut rest[..oh * ow * hidden];
    let (exp_p, dw_p) = (SendPtr(exp.as_mut_ptr()), SendPtr(dw.as_mut_ptr()));
    let panel_ranges = |n: usize| split_ranges(n.div_ceil(NR), par.threads(), 1);
    par.run(panel_ranges(hidden), |_, panels| {
        let chs = panels.start * NR..(panels.end * NR).min(hidden);
        // SAFETY: the SIMD kernels were checked by `channel_split`; this thread alone writes
        // (and then reads) the hidden channels `chs` of `exp` and writes those of `dw`, both
        // full-size tensors in `scratch`; `img` is only read.
        unsafe {
            let band: *const f32 = match p.pointwise_expansion() {
                Some(e) => {
                    let ep = e.epilogue(None);
                    gemm_packed_panels(
                        h * w,
                        img,
                        cin,
                        e.weight,
                        panels,
                        exp_p.get(),
                        hidden,
                        &ep,
                        true,
                    );
                    exp_p.get()
                }
                None => img.as_ptr(),
            };
            depthwise_rows_channels_raw(&p.dw, band, 0, 0, oh, chs, dw_p.get());
        }
    });
    let dw: &[f32] = dw;
    let out_p = SendPtr(out.as_mut_ptr());
    par.run(panel_ranges(cout), |_, panels| {
        let ep = p.project.epilogue(res);
        // SAFETY: this thread alone writes the output panels `panels`; `out` holds `oh·ow` rows
        // of `cout`.
        unsafe {
            gemm_packed_panels(
                oh * ow,
                dw,
                hidden,
                p.project.weight,
                panels,
                out_p.get(),
                cout,
                &ep,
                true,
            )
        };
    });
}

/// Output rows `oys` of one image into `out` (which starts at row `oys.start`).
fn rows_range(im: Image, out: &mut [f32], scratch: &mut [f32], oys: std::ops::Range<usize>) {
    let Image { p, img, res, simd } = im;
    let std::ops::Range {
        start: oy_a,
        end: oy_b,
    } = oys;
    let cin = p.hwc[2];
    // The expanded tensor's size (the input's, but for a fused stem).
    let [h, w, _] = p.dw.hwc;
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
    let (exp, rest) = scratch.split_at_mut(exp_len);
    let (dwbuf, patches) = rest.split_at_mut(p.band_rows() * ow * hidden);
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
                    let dst = &mut exp[cnt * row..(hi - base) * row];
                    match e {
                        Expansion::Pointwise(e) => {
                            let ep = e.epilogue(None);
                            let a = &img[first * w * cin..hi * w * cin];
                            gemm_packed((hi - first) * w, a, cin, e.weight, dst, hidden, &ep, simd);
                        }
                        Expansion::Dense { conv, weight } => {
                            im2col_rows(conv, weight, img, first, hi, dst, patches, simd);
                        }
                    }
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
        let ep = p.project.epilogue(res_rows);
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
    use crate::kernels::im2col::pack_groups;
    use crate::kernels::reference::{
        close, conv_ref, lcg_vec, pack_depthwise, pack_im2col, pack_pointwise, with_threads,
        RefConv,
    };
    use crate::kernels::ConvGeometry;
    use proptest::prelude::*;

    /// The block's expansion in a test: none, 1×1 with factor `t`, or a dense stem convolution
    /// (`k`×`k`, stride `s`, dilation `d`, padding `d·k/2`) to `hidden` channels.
    #[derive(Clone, Copy, Debug)]
    enum Exp {
        None,
        Pointwise(usize),
        Stem {
            k: usize,
            s: usize,
            d: usize,
            hidden: usize,
        },
    }

    impl Exp {
        /// A 1×1 expansion by `t`, or none for `t = 1`.
        fn by(t: usize) -> Exp {
            if t == 1 {
                Exp::None
            } else {
                Exp::Pointwise(t)
            }
        }
    }

    /// The block computed layer by layer with the f64 reference convolution.
    #[allow(clippy::too_many_arguments)]
    fn check(
        h: usize,
        w: usize,
        cin: usize,
        exp: Exp,
        cout: usize,
        stride: usize,
        dil: usize,
        batch: usize,
        with_res: bool,
        threads: usize,
        simd: bool,
        seed: u64,
    ) {
        let (hidden, eg, ek) = match exp {
            Exp::None => (cin, ConvGeometry::square(1, 1, 0, 1), 1),
            Exp::Pointwise(t) => (cin * t, ConvGeometry::square(1, 1, 0, 1), 1),
            Exp::Stem { k, s, d, hidden } => {
                (hidden, ConvGeometry::square(k, s, d * (k / 2), d), k)
            }
        };
        let Some((eh, ew)) = eg.output_hw(h, w) else {
            return;
        };
        let geom = ConvGeometry::square(3, stride, dil, dil);
        let Some((oh, ow)) = geom.output_hw(eh, ew) else {
            return;
        };
        let x = lcg_vec(batch * h * w * cin, seed);
        let we = lcg_vec(hidden * cin * ek * ek, seed + 1);
        let be = lcg_vec(hidden, seed + 2);
        let wd = lcg_vec(hidden * 9, seed + 3);
        let bd = lcg_vec(hidden, seed + 4);
        let wp = lcg_vec(cout * hidden, seed + 5);
        let bp = lcg_vec(cout, seed + 6);
        let res = lcg_vec(batch * oh * ow * cout, seed + 7);
        let res = with_res.then_some(&res[..]);
        // reference, layer by layer (f64 then rounded between layers like the engine's f32 storage)
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let e = match exp {
            Exp::None => x.clone(),
            _ => to32(conv_ref(
                &RefConv::new([h, w, cin], hidden, eg, 1),
                batch,
                &x,
                &we,
                &be,
                None,
                Activation::Relu6,
            )),
        };
        let dw = to32(conv_ref(
            &RefConv::new([eh, ew, hidden], hidden, geom, hidden),
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
        let stem_w = pack_im2col(&we, hidden, cin, ek, ek, 1);
        let stem = Im2colConv {
            hwc: [h, w, cin],
            cout: hidden,
            groups: 1,
            geom: eg,
            weight: &stem_w,
            bias: &be,
            act: Activation::Relu6,
        };
        let stem_packed = pack_groups(&stem);
        let pp = PackedB::pack(&pack_pointwise(&wp, cout, hidden), hidden, cout, cout);
        let wdp = pack_depthwise(&wd, hidden, 3, 3);
        let p = InvertedResidual {
            hwc: [h, w, cin],
            expand: match exp {
                Exp::None => None,
                Exp::Pointwise(_) => Some(Expansion::Pointwise(Pointwise1x1 {
                    weight: &pe,
                    bias: &be,
                    act: Activation::Relu6,
                })),
                Exp::Stem { .. } => Some(Expansion::Dense {
                    conv: stem,
                    weight: &stem_packed[0],
                }),
            },
            dw: Depthwise {
                hwc: [eh, ew, hidden],
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
        let mut scratch = vec![0.0; p.scratch_floats(threads)];
        let mut out = vec![f32::NAN; batch * oh * ow * cout];
        with_threads(threads, |par| {
            inverted_residual(par, &p, batch, &x, res, &mut out, &mut scratch, simd)
        });
        close(&out, &want, 1e-4);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn matches_layer_by_layer_reference(h in 1usize..14, w in 1usize..14, cin in 1usize..12, t in prop::sample::select(vec![1usize, 2, 6]),
                                            cout in 1usize..20, s in 1usize..3, d in 1usize..3, batch in prop::sample::select(vec![1usize, 3]),
                                            res in any::<bool>(), threads in 1usize..4, simd in any::<bool>(), seed in 0u64..1000) {
            check(h, w, cin, Exp::by(t), cout, s, d, batch, res, threads, simd, seed);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn fused_stem_matches_layer_by_layer_reference(h in 1usize..30, w in 1usize..30, cin in 1usize..5, k in prop::sample::select(vec![1usize, 3, 5]),
                                                      s in 1usize..3, sd in 1usize..3, hidden in 1usize..40, cout in 1usize..20, ds in 1usize..3, d in 1usize..3,
                                                      batch in prop::sample::select(vec![1usize, 2]), res in any::<bool>(), threads in 1usize..4,
                                                      simd in any::<bool>(), seed in 0u64..1000) {
            check(h, w, cin, Exp::Stem { k, s, d: sd, hidden }, cout, ds, d, batch, res, threads, simd, seed);
        }
    }

    #[test]
    fn fused_mobilenet_stem() {
        // MobileNetV2's stem (3×3 stride 2, 3 → 32) and first block (depthwise 32, project to 16)
        // on a 96 × 300 image: bands of rows carry stem rows over, at one and two threads.
        for threads in [1, 2] {
            let exp = Exp::Stem {
                k: 3,
                s: 2,
                d: 1,
                hidden: 32,
            };
            check(96, 300, 3, exp, 16, 1, 1, 1, false, threads, true, 7);
        }
    }

    #[test]
    fn small_maps_split_channels() {
        // MobileNetV2's last stage (7 × 7, 960 hidden) and odd channel counts, at 2 and 3 threads,
        // with and without expansion, both strides.
        check(7, 7, 160, Exp::by(6), 160, 1, 1, 1, true, 2, true, 1);
        check(7, 7, 160, Exp::by(6), 320, 1, 1, 1, false, 2, true, 2);
        check(9, 11, 21, Exp::by(6), 37, 2, 1, 2, false, 3, true, 3);
        check(5, 6, 40, Exp::by(1), 24, 1, 2, 1, true, 2, true, 4);
    }

    #[test]
    fn wide_rows_use_several_bands() {
        // 40 wide x 96 hidden: a band holds only a few rows, so rows are carried between bands.
        check(37, 40, 16, Exp::by(6), 24, 1, 1, 1, true, 2, true, 1);
        check(37, 40, 16, Exp::by(6), 24, 2, 1, 1, false, 1, true, 2);
        check(30, 40, 16, Exp::by(6), 24, 1, 2, 1, false, 3, false, 3);
    }
}
