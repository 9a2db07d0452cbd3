//! Binary cross-entropy on logits with float targets and a positive-class weight
//! (`torch.nn.functional.binary_cross_entropy_with_logits`), in a numerically stable form.
//!
//! For logit x, target y ∈ [0, 1] and positive weight p (1 when unset):
//! `ℓ = (1 − y)·x + (1 + (p − 1)·y)·softplus(−x)`, which is `−p·y·log σ(x) − (1 − y)·log(1 − σ(x))`.
//! softplus(−x) = log(1 + e^{−x}) is evaluated as `m + log(e^{−m} + e^{−x−m})` with
//! m = max(−x, 0): no exponential overflows, and unlike `max(−x, 0) + log1p(e^{−|x|})` its
//! autodiff gradient is right at x = 0 whatever subgradient max and |·| take there.

use super::reduction::Reduction;
use crate::error::{Result, TrainError};
use burn::tensor::{Tensor, TensorData};

/// Binary cross-entropy on logits: configuration and forward function.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BceWithLogits {
    /// Weight of the positive term per class, broadcast along the last dimension as PyTorch's
    /// `pos_weight`: its length is the size of that dimension (or 1). Finite and ≥ 0.
    pub pos_weight: Option<Vec<f32>>,
    /// How the per-element losses are combined; the mean divides by the element count.
    pub reduction: Reduction,
}

/// softplus(−x) = −log σ(x), stably (see the module documentation).
pub(crate) fn softplus_neg<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let m = x.clone().neg().clamp_min(0.0);
    let a = m.clone().neg().exp();
    let b = x.neg().sub(m.clone()).exp();
    a.add(b).log().add(m)
}

impl BceWithLogits {
    /// Unweighted, mean reduction.
    pub fn new() -> Self {
        Self::default()
    }

    super::setters! {
        /// Sets the positive-class weights.
        with_pos_weight => pos_weight: Option<Vec<f32>>;
        /// Sets the reduction.
        with_reduction => reduction: Reduction;
    }

    /// The loss of `logits` against float `targets` of the same shape (any rank).
    pub fn forward<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
    ) -> Result<Tensor<1>> {
        let per = self.per_element(logits, targets)?;
        let n = per.shape().num_elements();
        Ok(self.reduction.apply(per.reshape([n])))
    }

    /// The unreduced loss, shaped like the logits.
    pub fn per_element<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
    ) -> Result<Tensor<D>> {
        let dims = logits.dims();
        let tdims = targets.dims();
        if dims != tdims {
            return Err(TrainError::BadInput(format!(
                "binary cross-entropy: targets of shape {tdims:?} do not match logits of shape {dims:?}"
            )));
        }
        if dims.contains(&0) {
            return Err(TrainError::BadInput(format!(
                "binary cross-entropy: logits of shape {dims:?} are empty"
            )));
        }
        let device = logits.device();
        let sp = softplus_neg(logits.clone());
        let linear = targets.clone().neg().add_scalar(1.0).mul(logits);
        let Some(pw) = &self.pos_weight else {
            return Ok(linear.add(sp));
        };
        let last = dims[D - 1];
        if pw.len() != last && pw.len() != 1 {
            return Err(TrainError::BadInput(format!(
                "binary cross-entropy: pos_weight has {} values; expected 1 or {last} (the last dimension of the logits {dims:?})",
                pw.len()
            )));
        }
        if let Some((i, v)) = pw
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite() || **v < 0.0)
        {
            return Err(TrainError::BadInput(format!(
                "binary cross-entropy: pos_weight[{i}] is {v}; expected a finite value ≥ 0"
            )));
        }
        let mut shape = [1usize; D];
        shape[D - 1] = pw.len();
        let pw =
            Tensor::<1>::from_data(TensorData::new(pw.clone(), [pw.len()]), &device).reshape(shape);
        // 1 + (p − 1)·y
        let log_weight = pw.sub_scalar(1.0).mul(targets).add_scalar(1.0);
        Ok(linear.add(log_weight.mul(sp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::fixtures::{self, assert_close, autodiff, grad_of, values};
    use burn::tensor::Device;

    #[test]
    fn matches_torch_bce_with_logits_and_its_input_gradient() {
        let device = autodiff();
        let cases = fixtures::section("bce");
        assert_eq!(cases.len(), 5);
        for case in &cases {
            let shape = case.shape();
            let x = case.tensor_var("logits", &device);
            let y = case.tensor("targets", &device);
            let bce = BceWithLogits::new()
                .with_pos_weight(case.f32_vec_opt("pos_weight"))
                .with_reduction(case.reduction());
            let loss = match shape.len() {
                2 => bce.forward(
                    x.clone().reshape([shape[0], shape[1]]),
                    y.reshape([shape[0], shape[1]]),
                ),
                4 => {
                    let s = [shape[0], shape[1], shape[2], shape[3]];
                    bce.forward(x.clone().reshape(s), y.reshape(s))
                }
                r => panic!("rank {r}"),
            }
            .unwrap();
            assert_close(
                &case.name("bce"),
                &values(loss.clone()),
                &case.f64_vec("value"),
            );
            let grad = grad_of(loss, &case.f64_vec("cot"), &x, &device);
            assert_close(&case.name("bce grad"), &grad, &case.f64_vec("grad"));
        }
    }

    #[test]
    fn extreme_logits_stay_finite_and_exact() {
        let d = Device::flex();
        let x = Tensor::<1>::from_floats([100.0, -100.0, 100.0, -100.0], &d);
        let y = Tensor::<1>::from_floats([1.0, 0.0, 0.0, 1.0], &d);
        let l = values(
            BceWithLogits::new()
                .with_reduction(Reduction::None)
                .forward(x, y)
                .unwrap(),
        );
        // −log σ(100) = log(1 + e^−100) ≈ 3.7e-44, below f32's smallest normal: 0 or subnormal.
        assert!(l[0].abs() < 1e-30 && l[1].abs() < 1e-30, "{l:?}");
        assert!(
            (l[2] - 100.0).abs() < 1e-4 && (l[3] - 100.0).abs() < 1e-4,
            "{l:?}"
        );
    }

    #[test]
    fn bad_shapes_and_weights_are_reported() {
        let d = Device::flex();
        let x = Tensor::<2>::zeros([2, 3], &d);
        let e = BceWithLogits::new()
            .forward(x.clone(), Tensor::zeros([3, 2], &d))
            .unwrap_err();
        assert!(e.to_string().contains("[3, 2]"), "{e}");
        let e = BceWithLogits::new()
            .with_pos_weight(Some(vec![1.0, 2.0]))
            .forward(x, Tensor::zeros([2, 3], &d))
            .unwrap_err();
        assert!(e.to_string().contains("expected 1 or 3"), "{e}");
    }
}
