//! Kullback–Leibler divergence as `torch.nn.functional.kl_div(input, target)` computes it:
//! `input` holds log-probabilities log q, `target` holds p (or log p with `log_target`), and the
//! pointwise term is `p · (log p − log q)`, taken as 0 where p = 0 (0 · log 0 = 0). Summed over
//! the class dimension and averaged over the batch (`batchmean`) it is KL(p ‖ q).

use crate::error::{Result, TrainError};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How the pointwise KL terms are combined (PyTorch's `reduction` of `kl_div`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlReduction {
    /// Σ / batch size (first dimension): the mathematical KL(p ‖ q) averaged over the batch.
    #[default]
    BatchMean,
    /// Σ over every element.
    Sum,
    /// Σ / element count (PyTorch's `mean`, which is *not* KL per sample: it also divides by C).
    Mean,
    /// The pointwise terms, flattened in row-major order.
    None,
}

/// KL divergence: configuration and forward function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KlDiv {
    /// How the pointwise terms are combined.
    pub reduction: KlReduction,
    /// Whether the target holds log p rather than p.
    pub log_target: bool,
}

impl KlDiv {
    /// KL with the given reduction and a probability (not log) target.
    pub fn new(reduction: KlReduction) -> Self {
        Self {
            reduction,
            log_target: false,
        }
    }

    super::setters! {
        /// Sets whether the target is given as log-probabilities.
        with_log_target => log_target: bool;
    }

    /// The divergence of the target distribution p from q, given `log_q` and `target` of the same
    /// shape (any rank ≥ 1; the first dimension is the batch).
    pub fn forward<const D: usize>(
        &self,
        log_q: Tensor<D>,
        target: Tensor<D>,
    ) -> Result<Tensor<1>> {
        let dims = log_q.dims();
        let tdims = target.dims();
        if dims != tdims {
            return Err(TrainError::BadInput(format!(
                "KL divergence: target of shape {tdims:?} does not match input of shape {dims:?}"
            )));
        }
        if dims.contains(&0) {
            return Err(TrainError::BadInput(format!(
                "KL divergence: input of shape {dims:?} is empty"
            )));
        }
        let pointwise = if self.log_target {
            // e^{log p} · (log p − log q)
            target.clone().exp().mul(target.sub(log_q))
        } else {
            // p · log p with 0 · log 0 = 0, minus p · log q
            let zero = target.clone().lower_equal_elem(0.0);
            let log_p = target.clone().mask_fill(zero, 1.0).log();
            target.clone().mul(log_p).sub(target.mul(log_q))
        };
        let n = pointwise.shape().num_elements();
        let flat = pointwise.reshape([n]);
        Ok(match self.reduction {
            KlReduction::BatchMean => flat.sum().div_scalar(dims[0] as f64),
            KlReduction::Sum => flat.sum(),
            KlReduction::Mean => flat.mean(),
            KlReduction::None => flat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::fixtures::{self, assert_close, autodiff, grad_of, values};
    use burn::tensor::Device;

    #[test]
    fn matches_torch_kl_div_and_its_input_gradient() {
        let device = autodiff();
        let cases = fixtures::section("kl");
        assert_eq!(cases.len(), 5);
        for case in &cases {
            let s = case.shape();
            let x = case.tensor_var("input", &device);
            let t = case.tensor("target", &device);
            let red: KlReduction = serde_json::from_value(case.0["reduction"].clone()).unwrap();
            let kl = KlDiv::new(red).with_log_target(case.bool("log_target"));
            let loss = match s.len() {
                2 => kl.forward(x.clone().reshape([s[0], s[1]]), t.reshape([s[0], s[1]])),
                3 => kl.forward(
                    x.clone().reshape([s[0], s[1], s[2]]),
                    t.reshape([s[0], s[1], s[2]]),
                ),
                r => panic!("rank {r}"),
            }
            .unwrap();
            assert_close(
                &case.name("kl"),
                &values(loss.clone()),
                &case.f64_vec("value"),
            );
            let grad = grad_of(loss, &case.f64_vec("cot"), &x, &device);
            assert_close(&case.name("kl grad"), &grad, &case.f64_vec("grad"));
        }
    }

    /// Hand computation: p = (1/2, 1/2, 0), q = (1/4, 1/4, 1/2): KL = 2 · ½ · log 2 = log 2.
    #[test]
    fn zero_target_probability_contributes_nothing() {
        let d = Device::flex();
        let log_q = Tensor::<2>::from_floats([[0.25f32.ln(), 0.25f32.ln(), 0.5f32.ln()]], &d);
        let p = Tensor::<2>::from_floats([[0.5, 0.5, 0.0]], &d);
        let kl = values(
            KlDiv::new(KlReduction::BatchMean)
                .forward(log_q, p)
                .unwrap(),
        )[0];
        assert!((kl - std::f64::consts::LN_2).abs() < 1e-6, "{kl}");
    }

    #[test]
    fn shape_mismatch_is_reported() {
        let d = Device::flex();
        let e = KlDiv::default()
            .forward(Tensor::<2>::zeros([2, 3], &d), Tensor::zeros([2, 4], &d))
            .unwrap_err();
        assert!(e.to_string().contains("[2, 4]"), "{e}");
    }
}
