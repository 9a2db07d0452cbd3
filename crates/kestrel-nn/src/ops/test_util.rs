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
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Asserts `|a − b| ≤ tol · max(1, max |b|)` element by element.
pub(crate) fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        assert!((p - q).abs() <= tol * scale, "{what}[{i}]: {p} vs {q}");
    }
}
