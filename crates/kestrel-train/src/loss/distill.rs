//! Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
//! Network", 2015): `α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y)`.
//!
//! The KL term is `kl_div(log_softmax(s/T), softmax(t/T), reduction='batchmean')`; the T² factor
//! keeps its gradient magnitude comparable to the hard-label term as T changes. The teacher's
//! logits are detached: no gradient flows into the teacher.

use super::cross_entropy::CrossEntropy;
use super::kl_div::{KlDiv, KlReduction};
use crate::error::{Result, TrainError};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

/// Distillation loss: configuration and forward function.
#[derive(Clone, Debug, PartialEq)]
pub struct Distillation {
    /// Temperature T > 0 (commonly 2–4).
    pub temperature: f32,
    /// Weight α ∈ [0, 1] of the soft (teacher) term.
    pub alpha: f32,
    /// The hard-label cross-entropy (its reduction must stay `Mean`).
    pub hard: CrossEntropy,
}

impl Distillation {
    /// T and α with a plain mean cross-entropy for the hard term.
    pub fn new(temperature: f32, alpha: f32) -> Self {
        Self {
            temperature,
            alpha,
            hard: CrossEntropy::new(),
        }
    }

    super::setters! {
        /// Replaces the hard-label cross-entropy (e.g. to add label smoothing or class weights).
        with_hard => hard: CrossEntropy;
    }

    /// The loss of student logits `(N, C)` given teacher logits `(N, C)` and labels `(N)`; `[1]`.
    pub fn forward(
        &self,
        student: Tensor<2>,
        teacher: Tensor<2>,
        targets: Tensor<1, Int>,
    ) -> Result<Tensor<1>> {
        const WHAT: &str = "distillation loss";
        let t = self.temperature;
        if !t.is_finite() || t <= 0.0 {
            return Err(TrainError::BadInput(format!(
                "{WHAT}: temperature is {t}; expected a finite value > 0"
            )));
        }
        let a = self.alpha;
        if !(0.0..=1.0).contains(&a) {
            return Err(TrainError::BadInput(format!(
                "{WHAT}: alpha is {a}; expected a value in [0, 1]"
            )));
        }
        if self.hard.reduction != super::Reduction::Mean {
            return Err(TrainError::BadInput(format!(
                "{WHAT}: the hard cross-entropy must use the mean reduction"
            )));
        }
        let (sd, td) = (student.dims(), teacher.dims());
        if sd != td {
            return Err(TrainError::BadInput(format!(
                "{WHAT}: teacher logits of shape {td:?} do not match student logits of shape {sd:?}"
            )));
        }
        let (t, a) = (t as f64, a as f64);
        let log_q = log_softmax(student.clone().div_scalar(t), 1);
        let p = softmax(teacher.detach().div_scalar(t), 1);
        let soft = KlDiv::new(KlReduction::BatchMean).forward(log_q, p)?;
        let hard = self.hard.forward(student, targets)?;
        Ok(soft.mul_scalar(a * t * t).add(hard.mul_scalar(1.0 - a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::fixtures::{self, assert_close, autodiff, grad_of, ints, values};
    use burn::tensor::Device;

    #[test]
    fn matches_torch_distillation_and_its_student_gradient() {
        let device = autodiff();
        let cases = fixtures::section("distill");
        assert_eq!(cases.len(), 3);
        for case in &cases {
            let s = case.shape();
            let x = case.tensor_var("student", &device);
            let teacher = case.tensor("teacher", &device).reshape([s[0], s[1]]);
            let kd = Distillation::new(case.f64("temperature") as f32, case.f64("alpha") as f32);
            let loss = kd
                .forward(
                    x.clone().reshape([s[0], s[1]]),
                    teacher,
                    ints(&case.i64_vec("targets"), &device),
                )
                .unwrap();
            assert_close(
                &case.name("distill"),
                &values(loss.clone()),
                &case.f64_vec("value"),
            );
            let grad = grad_of(loss, &case.f64_vec("cot"), &x, &device);
            assert_close(&case.name("distill grad"), &grad, &case.f64_vec("grad"));
        }
    }

    /// A student that equals its teacher has no soft loss: only (1 − α)·CE remains.
    #[test]
    fn identical_student_and_teacher_leave_only_the_hard_term() {
        let d = Device::flex();
        let x = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]], &d);
        let y = ints(&[2, 0], &d);
        let kd = values(
            Distillation::new(3.0, 0.6)
                .forward(x.clone(), x.clone(), y.clone())
                .unwrap(),
        )[0];
        let ce = values(CrossEntropy::new().forward(x, y).unwrap())[0];
        assert!((kd - 0.4 * ce).abs() < 1e-6, "{kd} vs {}", 0.4 * ce);
    }

    #[test]
    fn bad_parameters_are_reported() {
        let d = Device::flex();
        let x = Tensor::<2>::zeros([2, 3], &d);
        let e = Distillation::new(0.0, 0.5)
            .forward(x.clone(), x.clone(), ints(&[0, 1], &d))
            .unwrap_err();
        assert!(e.to_string().contains("temperature is 0"), "{e}");
        let e = Distillation::new(2.0, 0.5)
            .forward(x.clone(), Tensor::zeros([2, 4], &d), ints(&[0, 1], &d))
            .unwrap_err();
        assert!(e.to_string().contains("[2, 4]"), "{e}");
    }
}
