//! ReLU6, `min(max(x, 0), 6)`, as a Burn backend extension whose backward is one fused pass.
//!
//! Burn's clamp backward builds boolean masks and selects through them (several full-size
//! temporaries); here the backward step keeps the forward *output* `y` and computes
//! `dx = dy` where `0 < y < 6`, else 0, in a single loop — PyTorch's `hardtanh_backward`, whose
//! gradient is zero at the clamp bounds themselves. (`0 < y < 6` holds exactly when
//! `0 < x < 6`, so the input need not be kept.)

use super::flex_io;
use super::simd::simd_kernel;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// The backend extension: ReLU6.
#[backend_extension(Flex, Autodiff)]
pub trait Relu6Ops: Backend {
    /// `min(max(x, 0), 6)` elementwise.
    fn kestrel_relu6(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// ReLU6 through the custom kernels (the caller checks [`super::custom_ops_enabled`]).
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(Dispatch::kestrel_relu6(x.into_dispatch()))
}

simd_kernel! {
    /// `x = min(max(x, 0), 6)` in place; `clamp` passes NaN through.
    fn clamp6_in_place(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = v.clamp(0.0, 6.0);
        }
    }
}

simd_kernel! {
    /// `dy = 0` where `y` is not inside (0, 6), in place.
    fn grad6_in_place(dy: &mut [f32], y: &[f32]) {
        for (g, &v) in dy.iter_mut().zip(y) {
            *g = if v > 0.0 && v < 6.0 { *g } else { 0.0 };
        }
    }
}

/// `min(max(x, 0), 6)` of a slice. NaN stays NaN, as in PyTorch.
pub fn relu6_slice(x: &[f32]) -> Vec<f32> {
    let mut y = x.to_vec();
    relu6_in_place(&mut y);
    y
}

/// The input gradient from the output `y` and the output gradient `dy`: `dy` where
/// `0 < y < 6`, else 0.
pub fn relu6_backward_slice(y: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = dy.to_vec();
    mask_in_place(&mut dx, y);
    dx
}

fn relu6_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(clamp6_in_place);
}

fn mask_in_place(dy: &mut [f32], y: &[f32]) {
    dy.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(g, y)| grad6_in_place(g, y));
}

/// ReLU6 of a Flex tensor, in place when `x` owns its buffer alone (the usual case: a BatchNorm
/// output nothing else holds).
fn forward(x: FlexTensor) -> FlexTensor {
    flex_io::modify(x, relu6_in_place).0
}

impl Relu6Ops for Flex {
    fn kestrel_relu6(x: FlexTensor) -> FlexTensor {
        forward(x)
    }
}

/// The backward step; its state is the forward output.
#[derive(Debug)]
struct Relu6Backward;

impl Backward<Flex, 1> for Relu6Backward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            let y = ops.state;
            // The gradient is masked in place (copied first only if shared).
            let (dx, ()) = flex_io::modify(dy, |g| mask_in_place(g, &flex_io::values(&y)));
            grads.register::<Flex>(node.id, dx);
        }
    }
}

impl<C: CheckpointStrategy> Relu6Ops for Autodiff<Flex, C> {
    fn kestrel_relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match Relu6Backward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = forward(x);
                // The output shares its buffer with the state: an O(1) clone.
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use kestrel_data::rng::Rng;

    #[test]
    fn forward_and_gradient_match_burn_relu6() {
        let device = Device::flex().autodiff();
        for (seed, shape) in [(1u64, [1, 3, 5, 7]), (2, [16, 4, 9, 11])] {
            let mut rng = Rng::new(seed);
            let n: usize = shape.iter().product();
            // Spread over [−3, 9] so that both bounds are crossed.
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-3.0, 9.0) as f32).collect();
            let r: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let x = Tensor::<4>::from_data(TensorData::new(v, shape), &device);
            let weights = Tensor::<4>::from_data(TensorData::new(r, shape), &device);
            let run = |custom: bool| {
                let x = x.clone().detach().require_grad();
                let y = if custom {
                    relu6(x.clone())
                } else {
                    burn::tensor::activation::relu6(x.clone())
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                let y: Vec<f32> = y.into_data().try_to_vec().unwrap();
                let dx: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
                (y, dx)
            };
            let (y, dx) = run(true);
            let (y0, dx0) = run(false);
            assert_eq!(y, y0);
            assert_eq!(dx, dx0);
        }
    }

    #[test]
    fn gradient_is_zero_at_and_beyond_the_bounds_as_in_pytorch() {
        // torch.nn.functional.relu6(x).backward(ones) for x = [-1, 0, 3, 6, 7, nan].
        let y = relu6_slice(&[-1.0, 0.0, 3.0, 6.0, 7.0, f32::NAN]);
        assert_eq!(&y[..5], &[0.0, 0.0, 3.0, 6.0, 6.0]);
        assert!(y[5].is_nan());
        let dx = relu6_backward_slice(&y, &[1.0; 6]);
        assert_eq!(dx, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    }
}
