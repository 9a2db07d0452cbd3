//! Test support: the PyTorch reference cases written by `tools/loss_fixtures.py`.

use super::reduction::Reduction;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;

/// The fixture file, generated in float64 by torch from float32-representable inputs.
const FIXTURE: &str = include_str!("../../tests/fixtures/losses.json");

/// Tolerance: |got − want| ≤ ATOL + RTOL·|want|. Kestrel computes in f32 (unit roundoff
/// u = 6e-8) and torch in f64; a loss is ≈10 rounded operations deep plus a sum of ≤ 96 terms
/// (pairwise, ≈7 levels), so its relative error is bounded by ≈17u ≈ 1e-6. The absolute part
/// covers values near 0 (gradients, losses of confident correct predictions).
pub const ATOL: f64 = 1e-6;
/// See [`ATOL`].
pub const RTOL: f64 = 1e-6;

/// One reference case.
pub struct Case(pub Value);

/// The cases of one section of the fixture file.
pub fn section(name: &str) -> Vec<Case> {
    let doc: Value = serde_json::from_str(FIXTURE).expect("fixture parses");
    doc[name]
        .as_array()
        .unwrap_or_else(|| panic!("fixture section {name}"))
        .iter()
        .map(|v| Case(v.clone()))
        .collect()
}

impl Case {
    /// `"<prefix> <case name>"`.
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix} {}", self.0["name"].as_str().unwrap_or("?"))
    }
    /// A number field.
    pub fn f64(&self, key: &str) -> f64 {
        self.0[key]
            .as_f64()
            .unwrap_or_else(|| panic!("number {key}"))
    }
    /// An integer field.
    pub fn i64(&self, key: &str) -> i64 {
        self.0[key]
            .as_i64()
            .unwrap_or_else(|| panic!("integer {key}"))
    }
    /// A boolean field.
    pub fn bool(&self, key: &str) -> bool {
        self.0[key]
            .as_bool()
            .unwrap_or_else(|| panic!("bool {key}"))
    }
    /// A list of numbers.
    pub fn f64_vec(&self, key: &str) -> Vec<f64> {
        self.0[key]
            .as_array()
            .unwrap_or_else(|| panic!("array {key}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }
    /// A list of numbers or null.
    pub fn f32_vec_opt(&self, key: &str) -> Option<Vec<f32>> {
        if self.0[key].is_null() {
            None
        } else {
            Some(self.f64_vec(key).into_iter().map(|v| v as f32).collect())
        }
    }
    /// A list of integers.
    pub fn i64_vec(&self, key: &str) -> Vec<i64> {
        self.0[key]
            .as_array()
            .unwrap_or_else(|| panic!("array {key}"))
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }
    /// The `shape` field.
    pub fn shape(&self) -> Vec<usize> {
        self.i64_vec("shape")
            .into_iter()
            .map(|v| v as usize)
            .collect()
    }
    /// The `reduction` field (`mean`, `sum`, `none`).
    pub fn reduction(&self) -> Reduction {
        serde_json::from_value(self.0["reduction"].clone()).expect("reduction")
    }
    /// A flat f32 tensor of a list field.
    pub fn tensor(&self, key: &str, device: &Device) -> Tensor<1> {
        floats(&self.f64_vec(key), device)
    }
    /// A flat f32 tensor of a list field that requires a gradient.
    pub fn tensor_var(&self, key: &str, device: &Device) -> Tensor<1> {
        self.tensor(key, device).require_grad()
    }
}

/// The autodiff CPU device.
pub fn autodiff() -> Device {
    Device::flex().autodiff()
}

/// A flat f32 tensor.
pub fn floats(v: &[f64], device: &Device) -> Tensor<1> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// A flat integer tensor.
pub fn ints(v: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// The values of a tensor, as f64.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The gradient of Σ loss·cot with respect to the leaf `x`.
pub fn grad_of(loss: Tensor<1>, cot: &[f64], x: &Tensor<1>, device: &Device) -> Vec<f64> {
    let total = loss.mul(floats(cot, device)).sum();
    let grads = total.backward();
    values(x.grad(&grads).expect("x has a gradient"))
}

/// Asserts `got` ≈ `want` element-wise within [`ATOL`] + [`RTOL`]·|want| and prints the largest
/// absolute and scaled errors (visible with `--nocapture`).
pub fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (mut max_err, mut max_rel) = (0.0f64, 0.0f64);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        max_err = max_err.max(err);
        max_rel = max_rel.max(err / w.abs().max(1.0));
        assert!(
            err <= ATOL + RTOL * w.abs(),
            "{what}[{i}]: got {g}, torch {w}, error {err:.3e}"
        );
    }
    eprintln!("{what}: max abs error {max_err:.3e}, max error / max(1, |torch|) {max_rel:.3e}");
}
