//! General (dense or grouped) convolution as im2col + GEMM, in blocks of output pixels so the
//! patch matrix stays in cache, with the fused bias + residual + activation epilogue.
//!
//! Weight layout: `[groups][kh][kw][cin/groups][cout/groups]` (see [`crate::layout::pack_im2col`]).

use super::blocks;
use super::epilogue::bias_act;
use super::geometry::ConvGeometry;
use super::packed_gemm::{
    gemm_packed, gemm_packed_panels, gemm_packed_segments, Epilogue, PackedB, Segment, NR,
};
use super::sgemm::sgemm;
use crate::parallel::{row_pieces, split_ranges, Par, SendPtr};
use crate::Activation;

/// Output pixels per patch block.
pub const BLOCK_ROWS: usize = 72;

/// The operands of an im2col convolution.
#[derive(Clone, Copy)]
pub struct Im2colConv<'a> {
    /// Input `(height, width, channels)`.
    pub hwc: [usize; 3],
    /// Output channels.
    pub cout: usize,
    /// Channel groups (1 for a dense convolution).
    pub groups: usize,
    /// Kernel, stride, padding and dilation.
    pub geom: ConvGeometry,
    /// Packed weights.
    pub weight: &'a [f32],
    /// `cout` biases.
    pub bias: &'a [f32],
    /// Activation after bias and residual.
    pub act: Activation,
}

impl Im2colConv<'_> {
    /// Patch columns per group, `kh·kw·cin/groups`.
    pub fn patch_len(&self) -> usize {
        self.geom.kernel[0] * self.geom.kernel[1] * (self.hwc[2] / self.groups)
    }

    /// Output `(height, width)`; the plan checked that the window fits.
    fn out_hw(&self) -> (usize, usize) {
        self.geom
            .output_hw(self.hwc[0], self.hwc[1])
            .expect("conv geometry checked by the plan")
    }
}

/// `dst.copy_from_slice(src)`, with the segment lengths of RGB stems (3×3 and 7×7 kernels on three
/// channels: 9 and 21 floats) as fixed-size moves the compiler keeps inline — a `memcpy` call per
/// segment costs more than the copy, three times per output pixel.
#[inline(always)]
fn copy_segment(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let d: &mut [f32; N] = dst.try_into().expect("segment length");
        let s: &[f32; N] = src.try_into().expect("segment length");
        *d = *s;
    }
    match dst.len() {
        9 => fixed::<9>(dst, src),
        21 => fixed::<21>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Fills `row` (`patch_len` floats) with group `grp`'s patch of output pixel `(oy, ox)` of one
/// image `img`; taps in the padding are zero.
#[inline]
fn patch_row(p: &Im2colConv, img: &[f32], oy: usize, ox: usize, grp: usize, row: &mut [f32]) {
    let [h, w, cin] = p.hwc;
    let g = &p.geom;
    let [kh, kw] = g.kernel;
    let cin_g = cin / p.groups;
    let ix0 = (ox * g.stride[1]) as isize - g.padding[1] as isize;
    let span = ((kw - 1) * g.dilation[1]) as isize;
    // One image row segment holds all kx taps contiguously when the channels are not split in
    // groups, the kernel is not dilated and no tap is in the padding.
    let contiguous = p.groups == 1 && g.dilation[1] == 1 && ix0 >= 0 && ix0 + span < w as isize;
    for ky in 0..kh {
        let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.padding[0] as isize;
        let seg = &mut row[ky * kw * cin_g..(ky + 1) * kw * cin_g];
        if iy < 0 || iy >= h as isize {
            seg.fill(0.0);
            continue;
        }
        let line = iy as usize * w;
        if contiguous {
            let src = (line + ix0 as usize) * cin;
            copy_segment(seg, &img[src..src + kw * cin]);
            continue;
        }
        for kx in 0..kw {
            let ix = ix0 + (kx * g.dilation[1]) as isize;
            let cell = &mut seg[kx * cin_g..(kx + 1) * cin_g];
            if ix < 0 || ix >= w as isize {
                cell.fill(0.0);
            } else {
                let src = (line + ix as usize) * cin + grp * cin_g;
                cell.copy_from_slice(&img[src..src + cin_g]);
            }
        }
    }
}

/// Output rows `oy0..oy1` of one image `img` of a one-group convolution into `out` (which starts
/// at row `oy0`), with the fused epilogue of `weight` packed by [`pack_groups`]; `patches` holds
/// [`BLOCK_ROWS`]` · patch_len` floats. Each row is an implicit GEMM (`conv_row`) unless the
/// kernel is dilated horizontally (then patches, [`BLOCK_ROWS`] pixels at a time). The fused
/// inverted-residual block computes a network's stem this way, band by band, so the stem's
/// output never leaves the cache.
#[allow(clippy::too_many_arguments)]
pub fn im2col_rows(
    p: &Im2colConv,
    weight: &PackedB,
    img: &[f32],
    oy0: usize,
    oy1: usize,
    out: &mut [f32],
    patches: &mut [f32],
    simd: bool,
) {
    assert_eq!(p.groups, 1, "im2col_rows computes one-group convolutions");
    let (_, ow) = p.out_hw();
    let (k, cout) = (p.patch_len(), p.cout);
    if p.geom.dilation[1] == 1 {
        for (oy, dst) in (oy0..oy1).zip(out.chunks_exact_mut((ow * cout).max(1))) {
            conv_row(p, weight, img, oy, dst, None, patches, simd);
        }
        return;
    }
    let ep = Epilogue {
        bias: p.bias,
        residual: None,
        act: p.act,
    };
    let (first, total) = (oy0 * ow, (oy1 - oy0) * ow);
    for (b0, nb) in blocks(0..total, BLOCK_ROWS) {
        fill_patches(p, img, first + b0, nb, 0, patches);
        let dst = &mut out[b0 * cout..(b0 + nb) * cout];
        gemm_packed(nb, &patches[..nb * k], k, weight, dst, cout, &ep, simd);
    }
}

/// Whether [`conv_row`] suits this convolution: one group, no horizontal dilation (a kernel row's
/// taps are then one contiguous run of the input row), and weights small enough to stay in L2
/// while they are streamed once per output row (the stems, and ResNet's first stage).
fn row_by_row(p: &Im2colConv) -> bool {
    p.groups == 1 && p.geom.dilation[1] == 1 && p.patch_len() * p.cout <= 128 * 1024
}

/// Output row `oy` of one image `img` of a one-group, horizontally undilated convolution into
/// `out` (`ow × cout` floats), as an implicit GEMM: the interior pixels read each kernel row's
/// run of `kw · cin` input floats in place (consecutive pixels `stride · cin` apart), kernel rows
/// in the padding left out; only the few border pixels, whose windows cross the left or right
/// edge, go through patches.
#[allow(clippy::too_many_arguments)]
fn conv_row(
    p: &Im2colConv,
    weight: &PackedB,
    img: &[f32],
    oy: usize,
    out: &mut [f32],
    residual: Option<&[f32]>,
    patches: &mut [f32],
    simd: bool,
) {
    let [h, w, cin] = p.hwc;
    let g = &p.geom;
    let (_, ow) = p.out_hw();
    let (k, cout, kw) = (p.patch_len(), p.cout, g.kernel[1]);
    assert!(img.len() >= h * w * cin && out.len() >= ow * cout);
    let ep = |ox: usize| Epilogue {
        bias: p.bias,
        residual: residual.map(|r| &r[ox * cout..]),
        act: p.act,
    };
    // The output columns whose kernel window lies inside the image horizontally.
    let inner = g.axis(1, w).interior(ow);
    // Where some windows cross the left or right edge and the kernel rows fit in `patches`
    // padded with zeros, the whole row is one implicit GEMM over those padded copies (a few
    // thousand floats: ResNet's stem copies 7 rows of 230 × 3): no border pixel is left for a
    // one- or two-row tile, whose FMA chains run at a fraction of the full tile's rate.
    // Padded columns the row's windows span (horizontal dilation is 1 on this path).
    let wp = (ow - 1) * g.stride[1] + kw;
    // The kernel rows inside the image, with the input row each reads.
    let rows = g.axis(0, h);
    let (ky0, ky1) = rows.valid_taps(oy);
    let taps: Vec<(usize, usize)> = (ky0..ky1)
        .map(|ky| (ky, rows.input_at(oy, ky) as usize))
        .collect();
    if inner != (0..ow) && taps.len() * wp * cin <= patches.len() {
        let pl = g.padding[1];
        let mut segs = Vec::with_capacity(taps.len());
        for (j, &(ky, iy)) in taps.iter().enumerate() {
            let row = &mut patches[j * wp * cin..(j + 1) * wp * cin];
            // Input columns `pl..pl + w` of the padded row hold the image's row `iy`.
            let (x0, x1) = (pl.min(wp), (pl + w).min(wp));
            row[..x0 * cin].fill(0.0);
            row[x0 * cin..x1 * cin].copy_from_slice(&img[iy * w * cin..(iy * w + x1 - x0) * cin]);
            row[x1 * cin..].fill(0.0);
            segs.push(Segment {
                a: row.as_ptr(),
                k: kw * cin,
                b_row: ky * kw * cin,
            });
        }
        // SAFETY: pixel `ox` reads padded columns `ox·stride .. ox·stride + kw` of each copied
        // row, inside its `wp` columns; `out` holds the row's `ow · cout` floats and is
        // exclusively borrowed.
        unsafe {
            gemm_packed_segments(
                ow,
                &segs,
                g.stride[1] * cin,
                weight,
                out.as_mut_ptr(),
                cout,
                &ep(0),
                simd,
            )
        };
        return;
    }
    for edge in [0..inner.start, inner.end..ow] {
        for (ox, nb) in blocks(edge, BLOCK_ROWS) {
            for (i, row) in patches[..nb * k].chunks_exact_mut(k.max(1)).enumerate() {
                patch_row(p, img, oy, ox + i, 0, row);
            }
            let dst = &mut out[ox * cout..(ox + nb) * cout];
            gemm_packed(nb, &patches[..nb * k], k, weight, dst, cout, &ep(ox), simd);
        }
    }
    if inner.is_empty() {
        return;
    }
    let x0 = inner.start * g.stride[1] - g.padding[1];
    let segs: Vec<Segment> = taps
        .iter()
        .map(|&(ky, iy)| Segment {
            a: img[(iy * w + x0) * cin..].as_ptr(),
            k: kw * cin,
            b_row: ky * kw * cin,
        })
        .collect();
    // SAFETY: interior pixel `inner.start + r` reads input columns `x0 + r·stride ..` up to its
    // window's last column, inside row `iy` of `img` (asserted long enough); `out` holds the
    // row's `ow · cout` floats and is exclusively borrowed.
    unsafe {
        gemm_packed_segments(
            inner.len(),
            &segs,
            g.stride[1] * cin,
            weight,
            out[inner.start * cout..].as_mut_ptr(),
            cout,
            &ep(inner.start),
            simd,
        )
    };
}

/// Fills the first `nb` rows of `patches` with group `grp`'s patches of the output pixels
/// `r0..r0 + nb` of a batch (pixels numbered image by image, row by row).
fn fill_patches(
    p: &Im2colConv,
    input: &[f32],
    r0: usize,
    nb: usize,
    grp: usize,
    patches: &mut [f32],
) {
    let [h, w, cin] = p.hwc;
    let (oh, ow) = p.out_hw();
    let k = p.patch_len();
    for (i, row) in patches[..nb * k].chunks_exact_mut(k.max(1)).enumerate() {
        let r = r0 + i;
        let (b, rem) = (r / (oh * ow), r % (oh * ow));
        let img = &input[b * h * w * cin..(b + 1) * h * w * cin];
        patch_row(p, img, rem / ow, rem % ow, grp, row);
    }
}

/// A one-group convolution with few output pixels (the deep layers of a ResNet at batch 1)
/// split by output channels instead of pixels: split by pixels, each thread would stream all
/// the weights (2.4–9.4 MB a layer, from memory) for a couple of dozen rows. The threads first
/// build the patches of all pixels together (each its share of the rows, into one shared
/// matrix), then each multiplies the whole matrix by its share of the weight panels — one pass
/// over its weights for the whole layer.
#[allow(clippy::too_many_arguments)]
fn split_panels(
    par: Par,
    p: &Im2colConv,
    n: usize,
    input: &[f32],
    residual: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    weight: &PackedB,
    simd: bool,
) {
    let (oh, ow) = p.out_hw();
    let (rows, k, cout) = (n * oh * ow, p.patch_len(), p.cout);
    let ranges = split_ranges(cout.div_ceil(NR), par.threads(), 1);
    let out = &mut out[..rows * cout];
    let out_p = SendPtr(out.as_mut_ptr());
    // Rows per round: all of them when the scratch holds their patches (`scratch_len` makes
    // it), else as many as it holds, in rounds of nearly equal height.
    let fit = (scratch.len() / k.max(1)).clamp(1, rows.max(1));
    let rounds = rows.div_ceil(fit);
    let mut r0 = 0;
    for round in 0..rounds {
        let nb = rows / rounds + usize::from(round < rows % rounds);
        let patches = &mut scratch[..nb * k];
        par.run(
            row_pieces(patches, nb, k, par.threads()),
            |_, (piece, i0)| fill_patches(p, input, r0 + i0, piece.len() / k.max(1), 0, piece),
        );
        let patches: &[f32] = patches;
        let ep = Epilogue {
            bias: p.bias,
            residual: residual.map(|r| &r[r0 * cout..]),
            act: p.act,
        };
        par.run(ranges.clone(), |_, panels| {
            // SAFETY: this thread alone writes the columns of `panels`; `out` holds `rows` rows
            // of `cout` floats, and rows `r0..r0 + nb` are in it.
            unsafe {
                gemm_packed_panels(
                    nb,
                    patches,
                    k,
                    weight,
                    panels,
                    out_p.get().add(r0 * cout),
                    cout,
                    &ep,
                    simd,
                )
            };
        });
        r0 += nb;
    }
}

/// Scratch floats needed by [`im2col_conv`] with `threads` threads.
pub fn scratch_len(patch_len: usize, threads: usize) -> usize {
    // Twice a block a thread: the patches of every row a channel split takes (see
    // `im2col_conv`) fit at once.
    2 * threads.max(1) * BLOCK_ROWS * patch_len
}

/// Packs each group's `K×cout_g` weight matrix for [`gemm_packed`].
pub fn pack_groups(p: &Im2colConv) -> Vec<PackedB> {
    let (k, cout_g) = (p.patch_len(), p.cout / p.groups);
    (0..p.groups)
        .map(|g| {
            PackedB::pack(
                &p.weight[g * k * cout_g..(g + 1) * k * cout_g],
                k,
                cout_g,
                cout_g,
            )
        })
        .collect()
}

/// Computes a batch of `n` images. `scratch` must hold [`scratch_len`] floats. With
/// `packed = Some((groups, simd))` (from [`pack_groups`]) the fused packed GEMM runs, otherwise
/// the `gemm` crate and a separate epilogue.
#[allow(clippy::too_many_arguments)]
pub fn im2col_conv(
    par: Par,
    p: &Im2colConv,
    n: usize,
    input: &[f32],
    residual: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    packed: Option<(&[PackedB], bool)>,
) {
    let [h, w, cin] = p.hwc;
    let (oh, ow) = p.out_hw();
    let (cout, groups) = (p.cout, p.groups);
    let cout_g = cout / groups;
    let k = p.patch_len();
    assert!(input.len() >= n * h * w * cin && out.len() >= n * oh * ow * cout);
    assert!(p.weight.len() == groups * k * cout_g && p.bias.len() == cout);
    let rows = n * oh * ow;
    assert!(
        scratch.len() >= par.threads().min(rows.max(1)) * BLOCK_ROWS * k,
        "im2col scratch too small"
    );
    if let Some((bs, simd)) = packed {
        if groups == 1 && par.threads() > 1 && rows <= 2 * BLOCK_ROWS * par.threads() {
            split_panels(par, p, n, input, residual, out, scratch, &bs[0], simd);
            return;
        }
        if row_by_row(p) {
            // Whole output rows to each thread, each row an implicit GEMM.
            let row = ow * cout;
            let items: Vec<_> = row_pieces(out, n * oh, row, par.threads())
                .into_iter()
                .zip(scratch.chunks_mut(BLOCK_ROWS * k.max(1)))
                .collect();
            par.run(items, |_, ((chunk, r0), patches)| {
                for (i, dst) in chunk.chunks_exact_mut(row.max(1)).enumerate() {
                    let (b, oy) = ((r0 + i) / oh, (r0 + i) % oh);
                    let img = &input[b * h * w * cin..(b + 1) * h * w * cin];
                    let res = residual.map(|r| &r[(r0 + i) * row..(r0 + i + 1) * row]);
                    conv_row(p, &bs[0], img, oy, dst, res, patches, simd);
                }
            });
            return;
        }
    }
    let items: Vec<_> = row_pieces(out, rows, cout, par.threads())
        .into_iter()
        .zip(scratch.chunks_mut(BLOCK_ROWS * k.max(1)))
        .collect();
    par.run(items, |_, ((chunk, r0), patches)| {
        let nrows = chunk.len() / cout;
        for (b0, nb) in blocks(0..nrows, BLOCK_ROWS) {
            let dst = &mut chunk[b0 * cout..(b0 + nb) * cout];
            for grp in 0..groups {
                fill_patches(p, input, r0 + b0, nb, grp, patches);
                let res = residual
                    .map(|res| &res[(r0 + b0) * cout + grp * cout_g..(r0 + b0 + nb) * cout]);
                match packed {
                    Some((bs, simd)) => {
                        let bias = &p.bias[grp * cout_g..(grp + 1) * cout_g];
                        let ep = Epilogue {
                            bias,
                            residual: res,
                            act: p.act,
                        };
                        gemm_packed(
                            nb,
                            &patches[..nb * k],
                            k,
                            &bs[grp],
                            &mut dst[grp * cout_g..],
                            cout,
                            &ep,
                            simd,
                        );
                    }
                    None => {
                        let wg = &p.weight[grp * k * cout_g..(grp + 1) * k * cout_g];
                        sgemm(
                            nb,
                            cout_g,
                            k,
                            &patches[..nb * k],
                            k,
                            wg,
                            cout_g,
                            &mut dst[grp * cout_g..],
                            cout,
                        );
                    }
                }
            }
            if packed.is_none() {
                let res = residual.map(|res| &res[(r0 + b0) * cout..(r0 + b0 + nb) * cout]);
                bias_act(dst, nb, cout, cout, p.bias, res, p.act);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::{close, pack_im2col, with_threads, RefConv};
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn check(
        hwc: [usize; 3],
        cout: usize,
        groups: usize,
        batch: usize,
        geom: ConvGeometry,
        act: Activation,
        with_res: bool,
        threads: usize,
        seed: u64,
        scratch: Option<usize>,
    ) {
        let rc = RefConv::new(hwc, cout, geom, groups);
        let Some(case) = rc.case(batch, act, with_res, seed) else {
            return;
        };
        let [kh, kw] = geom.kernel;
        let weight = pack_im2col(&case.w_oihw, cout, hwc[2] / groups, kh, kw, groups);
        let p = Im2colConv {
            hwc,
            cout,
            groups,
            geom,
            weight: &weight,
            bias: &case.bias,
            act,
        };
        let floats = scratch.unwrap_or_else(|| scratch_len(p.patch_len(), threads));
        let mut scratch = vec![0.0; floats];
        let pb = pack_groups(&p);
        with_threads(threads, |par| {
            for packed in [None, Some((&pb[..], false)), Some((&pb[..], true))] {
                let mut out = case.nan_output();
                let res = case.residual();
                im2col_conv(par, &p, batch, &case.x, res, &mut out, &mut scratch, packed);
                close(&out, &case.want, 1e-4);
            }
        });
    }

    #[test]
    fn stems_row_by_row_at_several_threads() {
        // Maps large enough that the threads split output rows (not weight panels), each row an
        // implicit GEMM, over zero-padded copies of its kernel rows where windows cross the
        // sides: MobileNet's 3×3 stride-2 stem and ResNet's 7×7 stride-2 one (three border
        // columns a side), odd sizes, with a residual.
        let relu = Activation::Relu;
        for threads in [1, 2, 3] {
            let g3 = ConvGeometry::square(3, 2, 1, 1);
            check(
                [40, 37, 3],
                32,
                1,
                1,
                g3,
                Activation::Relu6,
                false,
                threads,
                1,
                None,
            );
            let g7 = ConvGeometry::square(7, 2, 3, 1);
            check([45, 50, 3], 64, 1, 2, g7, relu, true, threads, 2, None);
            let g1 = ConvGeometry::square(3, 1, 1, 1);
            check([33, 30, 20], 24, 1, 1, g1, relu, true, threads, 3, None);
            // Rows too wide for their padded copies to fit the patch scratch (364 padded
            // columns > 72 · 5): two border pixels a side through patches, the interior read in
            // place.
            let g5 = ConvGeometry::square(5, 1, 2, 1);
            check([5, 360, 2], 5, 1, 1, g5, relu, true, threads, 4, None);
        }
    }

    #[test]
    fn channel_split_builds_shared_patches_in_rounds() {
        // 14 × 14 output pixels at two threads: few enough that the threads split the output
        // channels and build the patches together. With `scratch_len` all 196 rows' patches at
        // once; with the least scratch `im2col_conv` accepts (a block of rows a thread), in two
        // rounds of 98, each thread filling half a round's rows. Odd channel counts, a residual.
        let g = ConvGeometry::square(3, 1, 1, 1);
        let k = 9 * 5;
        for scratch in [scratch_len(k, 2), 2 * BLOCK_ROWS * k] {
            check(
                [14, 14, 5],
                37,
                1,
                1,
                g,
                Activation::Relu,
                true,
                2,
                11,
                Some(scratch),
            );
        }
        // Two images of 7 × 7 (98 rows), three threads, stride 2.
        let g2 = ConvGeometry::square(3, 2, 1, 1);
        check(
            [13, 13, 6],
            50,
            1,
            2,
            g2,
            Activation::Relu6,
            false,
            3,
            12,
            None,
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_naive_reference(h in 1usize..11, w in 1usize..11, cin_g in 1usize..7, cout_g in 1usize..9, groups in 1usize..4,
                                   k in prop::sample::select(vec![1usize, 2, 3, 5]), s in 1usize..3, d in 1usize..3, p in 0usize..3,
                                   batch in prop::sample::select(vec![1usize, 3]), act in 0usize..3, res in any::<bool>(),
                                   threads in 1usize..4, seed in 0u64..1000) {
            let act = [Activation::None, Activation::Relu, Activation::Relu6][act];
            check([h, w, cin_g * groups], cout_g * groups, groups, batch, ConvGeometry::square(k, s, p, d), act, res, threads, seed, None);
        }
    }

    #[test]
    fn mobilenet_stem_and_resnet_shapes() {
        let sq = ConvGeometry::square;
        // (input, out channels, batch, window, activation, residual, threads, seed)
        let cases = [
            // MobileNetV2 stem: 3x3 s2 p1, 3 -> 32 channels, odd input size
            (
                [33, 29, 3],
                32,
                1,
                sq(3, 2, 1, 1),
                Activation::Relu6,
                false,
                2,
                5,
            ),
            // ResNet 3x3 with residual and ReLU, batch 3
            (
                [9, 9, 16],
                16,
                3,
                sq(3, 1, 1, 1),
                Activation::Relu,
                true,
                2,
                6,
            ),
            // ResNet stem 7x7 s2 p3
            (
                [23, 23, 3],
                8,
                1,
                sq(7, 2, 3, 1),
                Activation::Relu,
                false,
                3,
                7,
            ),
        ];
        for (hwc, cout, batch, g, act, res, threads, seed) in cases {
            check(hwc, cout, 1, batch, g, act, res, threads, seed, None);
        }
    }
}
