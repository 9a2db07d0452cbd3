//! Helpers shared by the kernels' tests: random tensors, their values, and a comparison relative
//! to the largest reference value.

use burn::tensor::{Device, Tensor, TensorData};
use kestrel_data::rng::Rng;

/// A tensor of `shape` with values uniform in [−1, 1).
pub(crate) fn random<const D: usize>(
    rng: &mut Rng,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// The values of `t` in row-major order.
pub(crate) use crate::tensor_values::to_f32_vec as values;

/// Asserts `|a − b| ≤ tol · max(1, max |b|)` element by element.
pub(crate) fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        assert!((p - q).abs() <= tol * scale, "{what}[{i}]: {p} vs {q}");
    }
}

/// Runs `op` and `reference` on fresh leaf copies of `x` and `w`, back-propagates `sum(y · r)` for
/// the same random `r` through both, and asserts that the outputs and the gradients of `x` and
/// `w` agree within 1e-4 of the largest reference value. `x` and `w` live on an autodiff device.
pub(crate) fn assert_grads_match(
    x: &Tensor<4>,
    w: &Tensor<4>,
    seed: u64,
    op: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
    reference: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
    what: &str,
) {
    let run = |f: &dyn Fn(Tensor<4>, Tensor<4>) -> Tensor<4>| {
        let x = x.clone().detach().require_grad();
        let w = w.clone().detach().require_grad();
        let y = f(x.clone(), w.clone());
        let r = random(&mut Rng::new(seed), y.dims(), &y.device());
        let grads = (y.clone() * r).sum().backward();
        [
            values(y),
            values(x.grad(&grads).unwrap()),
            values(w.grad(&grads).unwrap()),
        ]
    };
    let (got, want) = (run(&op), run(&reference));
    for (i, name) in ["y", "dx", "dw"].iter().enumerate() {
        assert_close(&got[i], &want[i], 1e-4, &format!("{name} {what}"));
    }
}
