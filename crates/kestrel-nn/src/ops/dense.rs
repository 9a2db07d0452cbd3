//! Dense (one group) convolution over few input channels — a network's stem, on the image itself —
//! as a Burn backend extension with its own backward.
//!
//! The input's k×k patches are laid out as the columns of a `C_in·k² × H_o·W_o` matrix per image
//! (im2col); the convolution is then the 1×1 convolution of those columns with the weight seen as
//! `C_out × C_in·k²`, and both gradients are [`super::pointwise`]'s products: `dW = Σₙ dy[n] ·
//! cols[n]ᵀ`, and `dx` the columns' gradient `Wᵀ · dy[n]` added back onto the input positions they
//! were read from (col2im). The columns are kept from the forward pass for the weight gradient:
//! `C_in·k² / C_out` times the output's memory (0.84 for MobileNetV2's stem, 27 rows against 32
//! channels; 2.3 for ResNet's 7×7 stem). Burn's generic path computes this layer's weight
//! gradient as a convolution of swapped tensors, much of it on one thread.

use super::depthwise::DepthwiseOptions;
use super::flex_io;
use super::pointwise::{self, Dims};
use crate::geometry::conv_out_len;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

/// Input channels up to which a dense convolution goes through this op (image stems: RGB or
/// grey); wider inputs would make the column matrix k² times their size.
pub const MAX_IN_CHANNELS: usize = 4;

/// The backend extension: a square, one-group convolution without bias.
#[backend_extension(Flex, Autodiff)]
pub trait DenseConvOps: Backend {
    /// `x` (N, C_in, H, W) convolved with `weight` (C_out, C_in, k, k).
    fn kestrel_dense_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        dilation: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
}

/// Shapes of one dense convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseGeometry {
    batch: usize,
    cin: usize,
    cout: usize,
    height: usize,
    width: usize,
    kernel: usize,
    options: DepthwiseOptions,
    /// Output rows and columns.
    ho: usize,
    wo: usize,
}

impl DenseGeometry {
    /// Rows of an image's column matrix, `C_in·k²`.
    fn patch(&self) -> usize {
        self.cin * self.kernel * self.kernel
    }

    /// The convolution of the columns: a 1×1 convolution of `C_in·k²` channels.
    fn columns(&self) -> Dims {
        Dims {
            batch: self.batch,
            cin: self.patch(),
            cout: self.cout,
            hw: self.ho * self.wo,
        }
    }

    /// The input position that tap `(ky, kx)` of output `(oy, ox)` reads along one axis, if
    /// inside `0..len`.
    #[inline(always)]
    fn source(&self, o: usize, t: usize, len: usize) -> Option<usize> {
        let DepthwiseOptions {
            stride,
            dilation,
            padding,
        } = self.options;
        (o * stride + t * dilation)
            .checked_sub(padding)
            .filter(|&i| i < len)
    }
}

/// The geometry of `x` and `weight`, or why they do not make a dense square convolution.
pub fn geometry(
    x_dims: [usize; 4],
    w_dims: [usize; 4],
    options: DepthwiseOptions,
) -> Result<DenseGeometry, String> {
    let [n, c, h, w] = x_dims;
    let [co, wc, kh, kw] = w_dims;
    if wc != c || kh != kw {
        return Err(format!(
            "dense convolution: weight of shape {w_dims:?} does not fit input {x_dims:?}; \
             expected [out, {c}, k, k]"
        ));
    }
    let (s, p, d) = (options.stride, options.padding, options.dilation);
    match (conv_out_len(h, kh, s, p, d), conv_out_len(w, kh, s, p, d)) {
        (Some(ho), Some(wo)) if h > 0 && w > 0 => Ok(DenseGeometry {
            batch: n,
            cin: c,
            cout: co,
            height: h,
            width: w,
            kernel: kh,
            options,
            ho,
            wo,
        }),
        _ => Err(format!(
            "dense convolution: a {kh}×{kw} kernel (stride {s}, dilation {d}, padding {p}) does \
             not fit an input of shape {x_dims:?}"
        )),
    }
}

/// Each image's column matrix (`C_in·k² × H_o·W_o`, row `(c·k + ky)·k + kx`), images one after
/// another; taps in the padding read zero.
fn im2col(g: &DenseGeometry, x: &[f32]) -> Vec<f32> {
    let (k, howo, plane) = (g.kernel, g.ho * g.wo, g.height * g.width);
    let mut cols = vec![0.0f32; g.batch * g.patch() * howo];
    if cols.is_empty() {
        return cols;
    }
    cols.par_chunks_mut(g.patch() * howo)
        .zip(x.par_chunks(g.cin * plane))
        .for_each(|(cn, xn)| {
            for (r, row) in cn.chunks_exact_mut(howo).enumerate() {
                let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
                for oy in 0..g.ho {
                    let Some(iy) = g.source(oy, ky, g.height) else {
                        continue;
                    };
                    let src = &xn[c * plane + iy * g.width..][..g.width];
                    for (ox, v) in row[oy * g.wo..(oy + 1) * g.wo].iter_mut().enumerate() {
                        if let Some(ix) = g.source(ox, kx, g.width) {
                            *v = src[ix];
                        }
                    }
                }
            }
        });
    cols
}

/// The input gradient from the columns' gradient: each column entry added back onto the input
/// position it was read from (the adjoint of [`im2col`]).
fn col2im(g: &DenseGeometry, dcols: &[f32]) -> Vec<f32> {
    let (k, howo, plane) = (g.kernel, g.ho * g.wo, g.height * g.width);
    let mut dx = vec![0.0f32; g.batch * g.cin * plane];
    if dx.is_empty() || howo == 0 {
        return dx;
    }
    dx.par_chunks_mut(g.cin * plane)
        .zip(dcols.par_chunks(g.patch() * howo))
        .for_each(|(dxn, cn)| {
            for (r, row) in cn.chunks_exact(howo).enumerate() {
                let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
                for oy in 0..g.ho {
                    let Some(iy) = g.source(oy, ky, g.height) else {
                        continue;
                    };
                    let dst = &mut dxn[c * plane + iy * g.width..][..g.width];
                    for (ox, &v) in row[oy * g.wo..(oy + 1) * g.wo].iter().enumerate() {
                        if let Some(ix) = g.source(ox, kx, g.width) {
                            dst[ix] += v;
                        }
                    }
                }
            }
        });
    dx
}

/// `y` of the convolution and the columns it was computed from.
fn forward_with_columns(g: &DenseGeometry, x: &[f32], w: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let cols = im2col(g, x);
    let y = pointwise::forward_values(g.columns(), &cols, w);
    (y, cols)
}

fn forward(
    x: &FlexTensor,
    w: &FlexTensor,
    options: DepthwiseOptions,
) -> (FlexTensor, Vec<f32>, DenseGeometry) {
    let g =
        geometry(flex_io::dims4(x), flex_io::dims4(w), options).expect("validated dense geometry");
    let (y, cols) = forward_with_columns(&g, &flex_io::values(x), &flex_io::values(w));
    let y = flex_io::tensor(y, &[g.batch, g.cout, g.ho, g.wo]);
    (y, cols, g)
}

impl DenseConvOps for Flex {
    fn kestrel_dense_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride: usize,
        dilation: usize,
        padding: usize,
    ) -> FlexTensor {
        forward(
            &x,
            &weight,
            DepthwiseOptions::new(stride, dilation, padding),
        )
        .0
    }
}

/// The backward step: the forward's columns and the weight are kept for the two gradients.
#[derive(Debug)]
struct DenseBackward;

impl Backward<Flex, 2> for DenseBackward {
    type State = (Vec<f32>, FlexTensor, DenseGeometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (cols, w, g) = ops.state;
        let dy = flex_io::values(&dy);
        if let Some(node) = node_x {
            let dcols = pointwise::input_grad(g.columns(), &dy, &flex_io::values(&w));
            let dx = col2im(&g, &dcols);
            let shape = [g.batch, g.cin, g.height, g.width];
            grads.register::<Flex>(node.id, flex_io::tensor(dx, &shape));
        }
        if let Some(node) = node_w {
            let dw = pointwise::weight_grad(g.columns(), &cols, &dy);
            grads.register::<Flex>(node.id, flex_io::tensor(dw, &flex_io::dims(&w)));
        }
    }
}

impl<C: CheckpointStrategy> DenseConvOps for Autodiff<Flex, C> {
    fn kestrel_dense_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        dilation: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let o = DepthwiseOptions::new(stride, dilation, padding);
        let (x, x_node) = x.into_parts();
        let (w, w_node) = weight.into_parts();
        match DenseBackward
            .prepare::<C>([x_node, w_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, cols, g) = forward(&x, &w, o);
                prep.finish((cols, w, g), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &w, o).0),
        }
    }
}

/// Dense convolution of `x` (N, C_in, H, W) with `weight` (C_out, C_in, k, k), no bias, through
/// the custom kernels: the caller checks [`super::custom_ops_enabled`] for the device first.
///
/// # Panics
/// On shapes that [`geometry`] rejects, or a device other than Flex.
pub fn dense_conv2d(x: Tensor<4>, weight: Tensor<4>, options: DepthwiseOptions) -> Tensor<4> {
    if let Err(e) = geometry(x.dims(), weight.dims(), options) {
        panic!("{e}");
    }
    Tensor::from_dispatch(Dispatch::kestrel_dense_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options.stride,
        options.dilation,
        options.padding,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::assert_grads_match;
    use crate::ops::test_util::random;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::Device;
    use kestrel_data::rng::Rng;

    /// Output, input gradient and weight gradient against Burn's `conv2d` on odd sizes, strides,
    /// dilations and paddings (MobileNet's stem: 3 → 32, 3×3, stride 2, padding 1).
    #[test]
    fn matches_burn_conv() {
        let device = Device::flex().autodiff();
        let cases = [
            // (n, cin, cout, h, w, k, stride, dilation, padding)
            (2, 3, 32, 17, 15, 3, 2, 1, 1),
            (3, 3, 16, 9, 9, 3, 1, 1, 1),
            (1, 1, 5, 11, 7, 5, 2, 1, 2),
            (2, 2, 7, 10, 13, 3, 3, 2, 0),
            (4, 3, 8, 7, 7, 7, 2, 1, 3),
        ];
        for (seed, (n, cin, cout, h, w, k, s, d, p)) in cases.into_iter().enumerate() {
            let mut rng = Rng::new(seed as u64 + 1);
            let x = random(&mut rng, [n, cin, h, w], &device);
            let wt = random(&mut rng, [cout, cin, k, k], &device);
            let o = DepthwiseOptions::new(s, d, p);
            assert_grads_match(
                &x,
                &wt,
                seed as u64 + 50,
                |x, w| dense_conv2d(x, w, o),
                |x, w| conv2d(x, w, None, ConvOptions::new([s; 2], [p; 2], [d; 2], 1)),
                &format!("n{n} {cin}->{cout} {h}x{w} k{k} s{s} d{d} p{p}"),
            );
        }
    }

    #[test]
    fn shapes_are_checked() {
        let o = DepthwiseOptions::new(1, 1, 0);
        assert!(geometry([1, 3, 8, 8], [4, 2, 3, 3], o).is_err());
        assert!(geometry([1, 3, 2, 2], [4, 3, 3, 3], o).is_err());
        let g = geometry([1, 3, 8, 8], [4, 3, 3, 3], DepthwiseOptions::new(2, 1, 1)).unwrap();
        assert_eq!((g.ho, g.wo, g.patch()), (4, 4, 27));
    }
}
