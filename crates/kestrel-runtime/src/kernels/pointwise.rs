//! 1×1 convolution (and fully connected layers) as one GEMM over NHWC rows, with the fused
//! bias + residual + activation epilogue.
//!
//! Weight layout: `[in_channels][out_channels]` row-major (the transpose of PyTorch's `[O][I]`).

use super::blocks;
use super::epilogue::bias_act;
use super::packed_gemm::{gemm_packed, gemm_packed_panels, Epilogue, PackedB, NR};
use super::sgemm::{sgemm, sgemm_raw};
use crate::parallel::{pieces, split_ranges, split_rows, Par, SendPtr};
use crate::Activation;

/// Output bytes per GEMM call that keep the epilogue's second pass in L2.
const BLOCK_BYTES: usize = 96 * 1024;
/// Below this many rows per thread, threads split the output channels instead of the rows (as
/// they also do where the weights outweigh the input: more output channels than rows).
const MIN_ROWS_PER_THREAD: usize = 48;

/// The operands of a pointwise convolution.
#[derive(Clone, Copy)]
pub struct Pointwise<'a> {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// `[cin][cout]` weights.
    pub weight: &'a [f32],
    /// `cout` biases (folded batch norm).
    pub bias: &'a [f32],
    /// Activation after bias and residual.
    pub act: Activation,
}

/// `out[rows×cout] = act(input[rows×cin] · weight + bias + residual)`.
///
/// With `packed = Some((b, simd))` (`b` = `weight` packed by [`PackedB::pack`]) the fused packed
/// GEMM runs; with `None`, the `gemm` crate followed by a separate epilogue pass.
pub fn pointwise(
    par: Par,
    p: &Pointwise,
    rows: usize,
    input: &[f32],
    residual: Option<&[f32]>,
    out: &mut [f32],
    packed: Option<(&PackedB, bool)>,
) {
    let (cin, cout) = (p.cin, p.cout);
    assert!(input.len() >= rows * cin && out.len() >= rows * cout);
    assert!(p.weight.len() == cin * cout && p.bias.len() == cout);
    let out = &mut out[..rows * cout];
    let threads = par.threads();
    // Few rows (late layers at batch 1, the classifier), or weights (cin·cout) at least as large
    // as the input (rows·cin): split the output channels, so that each thread reads its share of
    // the weights and all of the input rather than all of the weights (ResNet-50's 14 × 14
    // stage at batch 1: 196 rows, 256–1024 output channels).
    let by_columns = rows < MIN_ROWS_PER_THREAD * threads || cout >= rows;
    if threads > 1 && by_columns && cout >= 16 * threads {
        let dst = SendPtr(out.as_mut_ptr());
        if let Some((b, simd)) = packed {
            let ranges = split_ranges(cout.div_ceil(NR), threads, 1);
            let ep = Epilogue {
                bias: p.bias,
                residual,
                act: p.act,
            };
            par.run(ranges, |_, range| {
                // SAFETY: panels (column blocks) are disjoint between threads; `out` holds rows×cout.
                unsafe {
                    gemm_packed_panels(rows, input, cin, b, range, dst.get(), cout, &ep, simd)
                };
            });
            return;
        }
        par.run(split_ranges(cout, threads, 16), |_, cols| {
            let (c0, nc) = (cols.start, cols.len());
            // SAFETY: column blocks [c0, c0+nc) are disjoint between threads; shapes were checked.
            unsafe {
                sgemm_raw(
                    rows,
                    nc,
                    cin,
                    input.as_ptr(),
                    cin,
                    p.weight.as_ptr().add(c0),
                    cout,
                    dst.get().add(c0),
                    cout,
                );
            }
            for r in 0..rows {
                // SAFETY: columns `c0..c0 + nc` of row `r` of `out` (rows × cout): this thread's
                // alone, and one row slice lives at a time.
                let row =
                    unsafe { std::slice::from_raw_parts_mut(dst.get().add(r * cout + c0), nc) };
                let res = residual.map(|res| &res[r * cout + c0..r * cout + c0 + nc]);
                bias_act(row, 1, nc, nc, &p.bias[c0..c0 + nc], res, p.act);
            }
        });
        return;
    }
    let items = pieces(out, &split_rows(rows, threads, 8), cout);
    // The packed GEMM blocks internally and fuses the epilogue: one call per thread.
    let block = if packed.is_some() {
        usize::MAX
    } else {
        (BLOCK_BYTES / 4 / cout.max(1)).clamp(16, 512)
    };
    par.run(items, |_, (chunk, r0)| {
        let n = chunk.len() / cout;
        for (b0, nb) in blocks(0..n, block) {
            let rows_in = &input[(r0 + b0) * cin..(r0 + b0 + nb) * cin];
            let dst = &mut chunk[b0 * cout..(b0 + nb) * cout];
            let res = residual.map(|res| &res[(r0 + b0) * cout..(r0 + b0 + nb) * cout]);
            match packed {
                Some((b, simd)) => {
                    let ep = Epilogue {
                        bias: p.bias,
                        residual: res,
                        act: p.act,
                    };
                    gemm_packed(nb, rows_in, cin, b, dst, cout, &ep, simd);
                }
                None => {
                    sgemm(nb, cout, cin, rows_in, cin, p.weight, cout, dst, cout);
                    bias_act(dst, nb, cout, cout, p.bias, res, p.act);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::{close, pack_pointwise, with_threads, RefConv};
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn check(
        rows_h: usize,
        rows_w: usize,
        batch: usize,
        cin: usize,
        cout: usize,
        act: Activation,
        with_res: bool,
        threads: usize,
        seed: u64,
    ) {
        let square = crate::kernels::ConvGeometry::square(1, 1, 0, 1);
        let rc = RefConv::new([rows_h, rows_w, cin], cout, square, 1);
        let case = rc
            .case(batch, act, with_res, seed)
            .expect("a 1x1 window fits");
        let weight = pack_pointwise(&case.w_oihw, cout, cin);
        let p = Pointwise {
            cin,
            cout,
            weight: &weight,
            bias: &case.bias,
            act,
        };
        let rows = batch * rows_h * rows_w;
        let pb = PackedB::pack(&weight, cin, cout, cout);
        with_threads(threads, |par| {
            for packed in [None, Some((&pb, false)), Some((&pb, true))] {
                let mut out = case.nan_output();
                pointwise(par, &p, rows, &case.x, case.residual(), &mut out, packed);
                close(&out, &case.want, 1e-4);
            }
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn matches_naive_reference(h in 1usize..9, w in 1usize..9, batch in prop::sample::select(vec![1usize, 3]),
                                   cin in 1usize..40, cout in 1usize..70, act in 0usize..3, res in any::<bool>(),
                                   threads in 1usize..4, seed in 0u64..1000) {
            let act = [Activation::None, Activation::Relu, Activation::Relu6][act];
            check(h, w, batch, cin, cout, act, res, threads, seed);
        }
    }

    #[test]
    fn column_split_path_for_few_rows() {
        // 2 rows, 64 output channels, 2 threads -> channels are split between threads.
        check(1, 2, 1, 33, 64, Activation::Relu6, true, 2, 7);
        check(1, 1, 3, 17, 100, Activation::None, false, 3, 8);
        // 120 rows (past the few-rows threshold) but 130 output channels: channels again.
        check(10, 12, 1, 19, 130, Activation::Relu, true, 2, 9);
    }
}
