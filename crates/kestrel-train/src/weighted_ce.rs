//! Class-weighted cross-entropy with PyTorch's reduction: `Σ_i w_{y_i} · ℓ_i / Σ_i w_{y_i}`, where
//! `ℓ_i = −log softmax(x_i)[y_i]` (`torch.nn.functional.cross_entropy(x, y, weight=w)`).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Cross-entropy over logits with one weight per class.
#[derive(Clone, Debug)]
pub struct WeightedCrossEntropy {
    weights: Tensor<1>,
}

impl WeightedCrossEntropy {
    /// A loss with class weights `weights` (one per class, positive) on `device`.
    pub fn new(weights: &[f32], device: &Device) -> Self {
        Self {
            weights: Tensor::<1>::from_data(
                TensorData::new(weights.to_vec(), [weights.len()]),
                device,
            ),
        }
    }

    /// The weighted mean loss of `logits` (n × classes) against `targets` (n class indices).
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        let [n] = targets.dims();
        let nll = log_softmax(logits, 1)
            .gather(1, targets.clone().reshape([n, 1]))
            .reshape([n])
            .neg();
        let w = self.weights.clone().gather(0, targets);
        (nll * w.clone()).sum() / w.sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Cases written by `tools/weighted_ce_fixture.py` with PyTorch.
    #[derive(Deserialize)]
    struct Case {
        logits: Vec<Vec<f32>>,
        targets: Vec<i64>,
        weights: Vec<f32>,
        loss: f32,
        grad: Vec<Vec<f32>>,
    }

    #[test]
    fn matches_pytorch_value_and_gradient() {
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("../tests/fixtures/weighted_ce.json")).unwrap();
        assert!(cases.len() >= 3);
        let device = Device::flex().autodiff();
        for (k, c) in cases.iter().enumerate() {
            let (n, classes) = (c.logits.len(), c.logits[0].len());
            let flat: Vec<f32> = c.logits.concat();
            let x =
                Tensor::<2>::from_data(TensorData::new(flat, [n, classes]), &device).require_grad();
            let y = Tensor::<1, Int>::from_data(TensorData::new(c.targets.clone(), [n]), &device);
            let loss = WeightedCrossEntropy::new(&c.weights, &device).forward(x.clone(), y);
            let value: f32 = loss.clone().into_scalar();
            assert!(
                (value - c.loss).abs() < 1e-5 * c.loss.abs().max(1.0),
                "case {k}: {value} vs PyTorch {}",
                c.loss
            );
            let grads = loss.backward();
            let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
            for (a, b) in g.iter().zip(c.grad.concat()) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "case {k}: gradient {a} vs PyTorch {b}"
                );
            }
        }
    }
}
