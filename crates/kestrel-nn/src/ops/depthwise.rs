//! Depthwise convolution as a Burn backend extension, with its own backward.
//!
//! Burn's grouped convolution computes the weight gradient one group at a time, which for a
//! depthwise layer (one group per channel) is the slowest part of a MobileNet training step.
//! [`depthwise_conv2d`] runs [`super::depthwise_kernel`]'s direct loops instead, forward and
//! backward, on the Flex backend.

use super::depthwise_kernel::{self as kernel, DepthwiseGeometry};
use super::flex_io;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::Tensor;

/// Stride, dilation and padding of a square depthwise convolution (the kernel size comes from
/// the weight); [`super::dense`]'s stem convolutions take the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseOptions {
    /// Stride (both axes).
    pub stride: usize,
    /// Dilation (both axes).
    pub dilation: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl DepthwiseOptions {
    /// The options from the three values a backend extension receives.
    pub fn new(stride: usize, dilation: usize, padding: usize) -> Self {
        DepthwiseOptions {
            stride,
            dilation,
            padding,
        }
    }
}

/// The backend extension: a depthwise convolution without bias.
#[backend_extension(Flex, Autodiff)]
pub trait DepthwiseConvOps: Backend {
    /// `x` (N, C, H, W) convolved with `weight` (C, 1, k, k), one filter per channel.
    fn kestrel_depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        dilation: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
}

/// The geometry of `x` and `weight`, or why they do not make a depthwise convolution.
pub fn geometry(
    x_dims: [usize; 4],
    w_dims: [usize; 4],
    options: DepthwiseOptions,
) -> Result<DepthwiseGeometry, String> {
    let [n, c, h, w] = x_dims;
    let [wc, one, kh, kw] = w_dims;
    if wc != c || one != 1 || kh != kw {
        return Err(format!(
            "depthwise convolution: weight of shape {w_dims:?} does not fit input {x_dims:?}; \
             expected [{c}, 1, k, k]"
        ));
    }
    let g = DepthwiseGeometry {
        batch: n,
        channels: c,
        height: h,
        width: w,
        kernel: kh,
        stride: options.stride,
        dilation: options.dilation,
        padding: options.padding,
    };
    match (g.out_height(), g.out_width()) {
        (Some(_), Some(_)) => Ok(g),
        _ => Err(format!(
            "depthwise convolution: a {kh}×{kw} kernel (stride {}, dilation {}, padding {}) does \
             not fit an input of shape {x_dims:?}",
            options.stride, options.dilation, options.padding
        )),
    }
}

/// Depthwise convolution of `x` (N, C, H, W) with `weight` (C, 1, k, k), no bias, through the
/// custom kernels: the caller checks [`super::custom_ops_enabled`] for the device and
/// [`geometry`] for the shapes first.
///
/// # Panics
/// On shapes that [`geometry`] rejects, or a device other than Flex.
pub fn depthwise_conv2d(x: Tensor<4>, weight: Tensor<4>, options: DepthwiseOptions) -> Tensor<4> {
    if let Err(e) = geometry(x.dims(), weight.dims(), options) {
        panic!("{e}");
    }
    Tensor::from_dispatch(Dispatch::kestrel_depthwise_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options.stride,
        options.dilation,
        options.padding,
    ))
}

/// The geometry of two Flex primitives (already validated by [`depthwise_conv2d`]).
fn flex_geometry(x: &FlexTensor, w: &FlexTensor, options: DepthwiseOptions) -> DepthwiseGeometry {
    geometry(flex_io::dims4(x), flex_io::dims4(w), options).expect("validated depthwise geometry")
}

fn forward(x: &FlexTensor, w: &FlexTensor, options: DepthwiseOptions) -> FlexTensor {
    let g = flex_geometry(x, w, options);
    let y = kernel::forward(&g, &flex_io::values(x), &flex_io::values(w));
    let (ho, wo) = (g.out_height().unwrap_or(0), g.out_width().unwrap_or(0));
    flex_io::tensor(y, &[g.batch, g.channels, ho, wo])
}

impl DepthwiseConvOps for Flex {
    fn kestrel_depthwise_conv2d(
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
    }
}

/// The backward step: the input and the weight are kept for the two gradients.
#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 2> for DepthwiseBackward {
    type State = (FlexTensor, FlexTensor, DepthwiseOptions);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, options) = ops.state;
        let g = flex_geometry(&x, &w, options);
        let dy = flex_io::values(&dy);
        if let Some(node) = node_x {
            let dx = kernel::input_grad(&g, &dy, &flex_io::values(&w));
            grads.register::<Flex>(node.id, flex_io::tensor(dx, &flex_io::dims(&x)));
        }
        if let Some(node) = node_w {
            let dw = kernel::weight_grad(&g, &flex_io::values(&x), &dy);
            grads.register::<Flex>(node.id, flex_io::tensor(dw, &flex_io::dims(&w)));
        }
    }
}

impl<C: CheckpointStrategy> DepthwiseConvOps for Autodiff<Flex, C> {
    fn kestrel_depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        dilation: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let options = DepthwiseOptions::new(stride, dilation, padding);
        let (x, x_node) = x.into_parts();
        let (w, w_node) = weight.into_parts();
        match DepthwiseBackward
            .prepare::<C>([x_node, w_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = forward(&x, &w, options);
                prep.finish((x, w, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &w, options)),
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

    /// The custom op against Burn's grouped `conv2d` (groups = channels): output, input gradient
    /// and weight gradient of `sum(y · r)` for a random `r`.
    fn compare(n: usize, c: usize, h: usize, w: usize, stride: usize, dilation: usize, seed: u64) {
        let device = Device::flex().autodiff();
        let mut rng = Rng::new(seed);
        let x = random(&mut rng, [n, c, h, w], &device);
        let wt = random(&mut rng, [c, 1, 3, 3], &device);
        let options = DepthwiseOptions {
            stride,
            dilation,
            padding: dilation,
        };
        let conv_options = ConvOptions::new([stride; 2], [dilation; 2], [dilation; 2], c);
        assert_grads_match(
            &x,
            &wt,
            seed + 100,
            |x, w| depthwise_conv2d(x, w, options),
            |x, w| conv2d(x, w, None, conv_options.clone()),
            &format!("n{n} c{c} {h}x{w} s{stride} d{dilation}"),
        );
    }

    #[test]
    fn matches_burn_grouped_conv_on_odd_sizes() {
        let mut seed = 0;
        for n in [1, 16] {
            for (h, w) in [(7, 5), (13, 11)] {
                for stride in [1, 2] {
                    for dilation in [1, 2] {
                        seed += 1;
                        compare(n, 5, h, w, stride, dilation, seed);
                    }
                }
            }
        }
    }

    /// The op on a plain (non-autodiff) device against Burn's grouped `conv2d`, 3×3 filters with
    /// padding 1.
    fn assert_forward_matches_burn(x: Tensor<4>, wt: Tensor<4>, stride: usize, what: &str) {
        let channels = x.dims()[1];
        let options = DepthwiseOptions {
            stride,
            dilation: 1,
            padding: 1,
        };
        let y = depthwise_conv2d(x.clone(), wt.clone(), options);
        let conv_options = ConvOptions::new([stride; 2], [1; 2], [1; 2], channels);
        let y0 = conv2d(x, wt, None, conv_options);
        assert_close(&values(y), &values(y0), what);
    }

    #[test]
    fn forward_without_autodiff_matches_burn() {
        let device = Device::flex();
        let mut rng = Rng::new(9);
        let x = random(&mut rng, [2, 4, 9, 10], &device);
        let wt = random(&mut rng, [4, 1, 3, 3], &device);
        assert_forward_matches_burn(x, wt, 2, "eval forward");
    }

    #[test]
    fn non_contiguous_input_is_read_in_logical_order() {
        let device = Device::flex();
        let mut rng = Rng::new(10);
        // (N, H, C, W) swapped to (N, C, H, W): a strided view.
        let x = random(&mut rng, [2, 6, 3, 7], &device).swap_dims(1, 2);
        let wt = random(&mut rng, [3, 1, 3, 3], &device);
        assert_forward_matches_burn(x, wt, 1, "strided input");
    }

    #[test]
    fn geometry_rejects_mismatched_weights_with_the_shapes_named() {
        let o = DepthwiseOptions {
            stride: 1,
            dilation: 1,
            padding: 1,
        };
        let e = geometry([1, 4, 8, 8], [3, 1, 3, 3], o).unwrap_err();
        assert!(
            e.contains("[3, 1, 3, 3]") && e.contains("[4, 1, k, k]"),
            "{e}"
        );
        let e = geometry(
            [1, 4, 2, 2],
            [4, 1, 5, 5],
            DepthwiseOptions { padding: 0, ..o },
        )
        .unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
    }
}
