//! 1×1 convolution (stride 1, no bias, one group) as a Burn backend extension, with its own
//! backward.
//!
//! On NCHW data a 1×1 convolution is one matrix product per image: `y[n] = W · x[n]` with `W`
//! (C_out × C_in) and `x[n]` (C_in × H·W). Its gradients are products too — `dx[n] = Wᵀ · dy[n]`
//! and `dW = Σₙ dy[n] · x[n]ᵀ` — which run on kestrel-runtime's packed GEMM, `x[n]ᵀ` packed
//! straight from `x[n]` ([`PackedB::pack_transposed`]). Burn's generic path instead computes the
//! weight gradient as a convolution of swapped tensors (with the copies that takes), the largest
//! single cost of a MobileNet training step on Flex. Images are split across rayon's threads; each thread
//! sums its images' weight gradients into its own buffer.

use super::flex_io;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::Tensor;
use kestrel_runtime::kernels::packed_gemm::{matmul_packed_uninit, matmul_uninit, PackedB};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The backend extension: a 1×1, stride-1, bias-free convolution.
#[backend_extension(Flex, Autodiff)]
pub trait PointwiseConvOps: Backend {
    /// `x` (N, C_in, H, W) convolved with `weight` (C_out, C_in, 1, 1).
    fn kestrel_pointwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The sizes of one pointwise convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dims {
    pub(super) batch: usize,
    pub(super) cin: usize,
    pub(super) cout: usize,
    /// Pixels per image, H·W.
    pub(super) hw: usize,
}

/// Checks that `w_dims` is a 1×1 filter bank for `x_dims`.
pub fn check_shapes(x_dims: [usize; 4], w_dims: [usize; 4]) -> Result<(), String> {
    let [_, cin, _, _] = x_dims;
    match w_dims {
        [_, wc, 1, 1] if wc == cin => Ok(()),
        _ => Err(format!(
            "pointwise convolution: weight of shape {w_dims:?} does not fit input {x_dims:?}; \
             expected [out, {cin}, 1, 1]"
        )),
    }
}

/// 1×1 convolution of `x` (N, C_in, H, W) with `weight` (C_out, C_in, 1, 1), stride 1, no bias,
/// through the custom kernels: the caller checks [`super::custom_ops_enabled`] for the device
/// first.
///
/// # Panics
/// On shapes that [`check_shapes`] rejects, or a device other than Flex.
pub fn pointwise_conv2d(x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    if let Err(e) = check_shapes(x.dims(), weight.dims()) {
        panic!("{e}");
    }
    Tensor::from_dispatch(Dispatch::kestrel_pointwise_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
    ))
}

fn dims(x: &FlexTensor, w: &FlexTensor) -> Dims {
    let (xd, wd) = (flex_io::dims(x), flex_io::dims(w));
    Dims {
        batch: xd[0],
        cin: xd[1],
        cout: wd[0],
        hw: xd[2] * xd[3],
    }
}

/// Contiguous ranges of images, one per rayon thread.
fn image_ranges(batch: usize) -> Vec<std::ops::Range<usize>> {
    let parts = rayon::current_num_threads().clamp(1, batch.max(1));
    let per = batch.div_ceil(parts).max(1);
    (0..batch)
        .step_by(per)
        .map(|s| s..(s + per).min(batch))
        .collect()
}

/// Maps of fewer pixels than this multiply their images side by side: a product per image would
/// have fewer columns than the GEMM's tile is wide (MobileNets' 3 × 3 and 2 × 2 maps at small
/// inputs), and pack its operand for each.
const SIDE_BY_SIDE_BELOW: usize = 64;

/// `out[n] = a · x[n]` for every image `n`, `a` (`m × k`, row-major) and `x[n]` (`k × hw`): one
/// product per image, or on small maps ([`SIDE_BY_SIDE_BELOW`]) one per thread's range of
/// images, their matrices copied side by side into a `k × (images·hw)` one and the result copied
/// back.
fn products(batch: usize, m: usize, k: usize, hw: usize, a: &[f32], x: &[f32]) -> Vec<f32> {
    if k == 0 || hw == 0 {
        return vec![0.0; batch * m * hw];
    }
    let fill = |y: &mut [MaybeUninit<f32>]| {
        if hw >= SIDE_BY_SIDE_BELOW {
            return y
                .par_chunks_mut(m * hw.max(1))
                .zip(x.par_chunks(k * hw.max(1)))
                .for_each(|(yn, xn)| matmul_uninit(m, k, hw, a, k, xn, yn, true));
        }
        let per = image_ranges(batch).first().map_or(1, |r| r.len());
        y.par_chunks_mut(per * m * hw)
            .zip(x.par_chunks(per * k * hw))
            .for_each(|(ys, xs)| {
                let images = xs.len() / (k * hw);
                let wide = side_by_side(xs, images, k, hw);
                let product = |c: &mut [MaybeUninit<f32>]| {
                    matmul_uninit(m, k, images * hw, a, k, &wide, c, true)
                };
                // SAFETY: the product writes every element.
                let out = unsafe { flex_io::filled(m * images * hw, product) };
                for (n, yn) in ys.chunks_exact_mut(m * hw).enumerate() {
                    for (r, row) in yn.chunks_exact_mut(hw).enumerate() {
                        for (d, &v) in row.iter_mut().zip(&out[(r * images + n) * hw..][..hw]) {
                            d.write(v);
                        }
                    }
                }
            })
    };
    // SAFETY: every image's `m × hw` outputs are written, by its product or from the copy back.
    unsafe { flex_io::filled(batch * m * hw, fill) }
}

/// `images` matrices of `rows × hw` (one after another in `x`) side by side: `rows ×
/// (images·hw)`, image `n`'s columns at `n·hw`.
fn side_by_side(x: &[f32], images: usize, rows: usize, hw: usize) -> Vec<f32> {
    let mut wide = vec![0.0f32; rows * images * hw];
    for (n, xn) in x.chunks_exact(rows * hw).enumerate() {
        for (r, row) in xn.chunks_exact(hw).enumerate() {
            wide[(r * images + n) * hw..][..hw].copy_from_slice(row);
        }
    }
    wide
}

/// `y[n] = W · x[n]`.
pub(super) fn forward_values(d: Dims, x: &[f32], w: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        d.batch * d.cin * d.hw,
        "pointwise convolution: input length"
    );
    products(d.batch, d.cout, d.cin, d.hw, w, x)
}

/// `dx[n] = Wᵀ · dy[n]`.
pub(super) fn input_grad(d: Dims, dy: &[f32], w: &[f32]) -> Vec<f32> {
    assert_eq!(
        dy.len(),
        d.batch * d.cout * d.hw,
        "pointwise convolution: gradient length"
    );
    // Wᵀ (C_in × C_out), row-major: the left operand of every image's product.
    let wt = transposed(w, d.cout, d.cin);
    products(d.batch, d.cin, d.cout, d.hw, &wt, dy)
}

/// `src` (`rows × cols`, row-major) transposed, in square tiles so that reads and writes each
/// stay within a few cache lines.
fn transposed(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let mut out = vec![0.0f32; rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                let row = &src[r * cols..(r + 1) * cols];
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = row[c];
                }
            }
        }
    }
    out
}

/// `dW = Σₙ dy[n] · x[n]ᵀ`: each thread sums a range of images, then the partial sums are added.
/// Each product runs on the packed GEMM with `x[n]ᵀ` packed straight from `x[n]`; on small maps
/// ([`SIDE_BY_SIDE_BELOW`]) the range's images are one product, side by side.
pub(super) fn weight_grad(d: Dims, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (xs, ys) = (d.cin * d.hw, d.cout * d.hw);
    if xs * ys * d.batch == 0 {
        return vec![0.0; d.cout * d.cin];
    }
    // `acc += a · bᵀ` for `a` (`cout × k`) and `b` (`cin × k`).
    let add_product = |acc: &mut Vec<f32>, a: &[f32], b: &[f32], k: usize| {
        let packed = PackedB::pack_transposed(b, k, d.cin, k);
        let product =
            |c: &mut [MaybeUninit<f32>]| matmul_packed_uninit(d.cout, a, k, &packed, c, true);
        // SAFETY: the product writes every element.
        let p = unsafe { flex_io::filled(d.cout * d.cin, product) };
        if acc.is_empty() {
            *acc = p;
        } else {
            acc.iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
    };
    let partials: Vec<Vec<f32>> = image_ranges(d.batch)
        .into_par_iter()
        .map(|images| {
            let mut acc = Vec::new();
            if d.hw < SIDE_BY_SIDE_BELOW {
                let (n0, cnt) = (images.start, images.len());
                let dys = side_by_side(&dy[n0 * ys..][..cnt * ys], cnt, d.cout, d.hw);
                let xs_ = side_by_side(&x[n0 * xs..][..cnt * xs], cnt, d.cin, d.hw);
                add_product(&mut acc, &dys, &xs_, cnt * d.hw);
            } else {
                for n in images {
                    let (a, b) = (&dy[n * ys..(n + 1) * ys], &x[n * xs..(n + 1) * xs]);
                    add_product(&mut acc, a, b, d.hw);
                }
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter().filter(|p| !p.is_empty());
    let mut dw = parts.next().unwrap_or_else(|| vec![0.0; d.cout * d.cin]);
    for p in parts {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
    dw
}

fn forward(x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    let d = dims(x, w);
    let xd = flex_io::dims(x);
    let y = forward_values(d, &flex_io::values(x), &flex_io::values(w));
    flex_io::tensor(y, &[d.batch, d.cout, xd[2], xd[3]])
}

impl PointwiseConvOps for Flex {
    fn kestrel_pointwise_conv2d(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        forward(&x, &weight)
    }
}

/// The backward step: the input and the weight are kept for the two gradients.
#[derive(Debug)]
struct PointwiseBackward;

impl Backward<Flex, 2> for PointwiseBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        let d = dims(&x, &w);
        let dy = flex_io::values(&dy);
        if let Some(node) = node_x {
            let dx = input_grad(d, &dy, &flex_io::values(&w));
            grads.register::<Flex>(node.id, flex_io::tensor(dx, &flex_io::dims(&x)));
        }
        if let Some(node) = node_w {
            let dw = weight_grad(d, &flex_io::values(&x), &dy);
            grads.register::<Flex>(node.id, flex_io::tensor(dw, &flex_io::dims(&w)));
        }
    }
}

impl<C: CheckpointStrategy> PointwiseConvOps for Autodiff<Flex, C> {
    fn kestrel_pointwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (w, w_node) = weight.into_parts();
        match PointwiseBackward
            .prepare::<C>([x_node, w_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = forward(&x, &w);
                prep.finish((x, w), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &w)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_grads_match, random, values};
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::Device;
    use kestrel_data::rng::Rng;

    /// Element-wise comparison at the kernels' tolerance, 1e-4 of the largest reference value.
    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        super::super::test_util::assert_close(a, b, 1e-4, what)
    }

    /// The custom op against Burn's `conv2d`: output, input gradient and weight gradient of
    /// `sum(y · r)` for a random `r`.
    fn compare(n: usize, cin: usize, cout: usize, h: usize, w: usize, seed: u64) {
        let device = Device::flex().autodiff();
        let mut rng = Rng::new(seed);
        let x = random(&mut rng, [n, cin, h, w], &device);
        let wt = random(&mut rng, [cout, cin, 1, 1], &device);
        assert_grads_match(
            &x,
            &wt,
            seed + 100,
            pointwise_conv2d,
            |x, w| conv2d(x, w, None, ConvOptions::new([1; 2], [0; 2], [1; 2], 1)),
            &format!("n{n} {cin}->{cout} {h}x{w}"),
        );
    }

    #[test]
    fn transposed_swaps_rows_and_columns() {
        for (rows, cols) in [(1, 1), (3, 40), (17, 35), (33, 16)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transposed(&src, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        t[c * rows + r],
                        src[r * cols + c],
                        "{rows}x{cols} ({r}, {c})"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_burn_conv_on_odd_sizes() {
        let mut seed = 0;
        for n in [1, 16, 3] {
            for (cin, cout, h, w) in [(5, 7, 7, 5), (24, 144, 13, 11), (33, 17, 1, 1)] {
                seed += 1;
                compare(n, cin, cout, h, w, seed);
            }
        }
    }

    #[test]
    fn forward_without_autodiff_reads_strided_input() {
        let device = Device::flex();
        let mut rng = Rng::new(10);
        // (N, H, C, W) swapped to (N, C, H, W): a strided view.
        let x = random(&mut rng, [2, 6, 3, 7], &device).swap_dims(1, 2);
        let wt = random(&mut rng, [5, 3, 1, 1], &device);
        let y = pointwise_conv2d(x.clone(), wt.clone());
        let y0 = conv2d(x, wt, None, ConvOptions::new([1; 2], [0; 2], [1; 2], 1));
        assert_close(&values(y), &values(y0), "strided input");
    }

    #[test]
    fn shapes_are_checked_with_both_named() {
        let e = check_shapes([1, 4, 8, 8], [6, 3, 1, 1]).unwrap_err();
        assert!(
            e.contains("[6, 3, 1, 1]") && e.contains("[out, 4, 1, 1]"),
            "{e}"
        );
        assert!(check_shapes([1, 4, 8, 8], [6, 4, 3, 3]).is_err());
        assert!(check_shapes([1, 4, 8, 8], [6, 4, 1, 1]).is_ok());
    }
}
