//! Focal loss (Lin et al., "Focal Loss for Dense Object Detection", 2017):
//! `FL(p_t) = −α_t · (1 − p_t)^γ · log p_t`, which down-weights well-classified examples.
//!
//! [`SigmoidFocal`] is the binary (per-logit) form exactly as `torchvision.ops.sigmoid_focal_loss`
//! defines it: p = σ(x), p_t = p·y + (1 − p)·(1 − y), the log term is the binary cross-entropy on
//! logits (so it is stable), α_t = α·y + (1 − α)·(1 − y), and a negative/absent α disables the
//! weighting. [`SoftmaxFocal`] is the multiclass form: p_t = softmax(x)_y, α_t a per-class weight
//! (1 when unset), ignored targets contribute 0 and the mean divides by the number of
//! non-ignored targets. With γ = 0 and no α it equals the unweighted cross-entropy.

use super::bce::BceWithLogits;
use super::reduction::Reduction;
use super::targets::class_targets;
use crate::error::{Result, TrainError};
use burn::tensor::activation::{log_softmax, sigmoid};
use burn::tensor::{Int, Tensor, TensorData};

fn check_gamma(gamma: f32, what: &str) -> Result<()> {
    if !gamma.is_finite() || gamma < 0.0 {
        return Err(TrainError::BadInput(format!(
            "{what}: gamma is {gamma}; expected a finite value ≥ 0"
        )));
    }
    Ok(())
}

/// (1 − p_t)^γ, skipping the power when γ = 0 (its value is 1 and its gradient 0).
fn modulating<const D: usize>(p_t: Tensor<D>, gamma: f32) -> Option<Tensor<D>> {
    (gamma != 0.0).then(|| p_t.neg().add_scalar(1.0).powf_scalar(gamma))
}

/// Binary focal loss on logits (torchvision's `sigmoid_focal_loss`).
#[derive(Clone, Debug, PartialEq)]
pub struct SigmoidFocal {
    /// Weight of the positive class in [0, 1] (torchvision's default 0.25); `None` disables it.
    pub alpha: Option<f32>,
    /// Focusing parameter γ ≥ 0 (default 2).
    pub gamma: f32,
    /// How the per-element losses are combined (torchvision's default is `none`; kestrel's `mean`).
    pub reduction: Reduction,
}

impl Default for SigmoidFocal {
    fn default() -> Self {
        Self {
            alpha: Some(0.25),
            gamma: 2.0,
            reduction: Reduction::Mean,
        }
    }
}

impl SigmoidFocal {
    /// α = 0.25, γ = 2, mean.
    pub fn new() -> Self {
        Self::default()
    }

    super::setters! {
        /// Sets α (`None` disables the class weighting).
        with_alpha => alpha: Option<f32>;
        /// Sets γ.
        with_gamma => gamma: f32;
        /// Sets the reduction.
        with_reduction => reduction: Reduction;
    }

    /// The loss of `logits` against float `targets` in [0, 1] of the same shape (any rank).
    pub fn forward<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
    ) -> Result<Tensor<1>> {
        const WHAT: &str = "sigmoid focal loss";
        check_gamma(self.gamma, WHAT)?;
        if let Some(a) = self.alpha {
            if !(0.0..=1.0).contains(&a) {
                return Err(TrainError::BadInput(format!(
                    "{WHAT}: alpha is {a}; expected a value in [0, 1]"
                )));
            }
        }
        let ce = BceWithLogits::new().per_element(logits.clone(), targets.clone())?;
        let p = sigmoid(logits);
        // p_t = p·y + (1 − p)·(1 − y)
        let one_minus_y = targets.clone().neg().add_scalar(1.0);
        let p_t = p
            .clone()
            .mul(targets.clone())
            .add(p.neg().add_scalar(1.0).mul(one_minus_y.clone()));
        let mut loss = match modulating(p_t, self.gamma) {
            Some(m) => ce.mul(m),
            None => ce,
        };
        if let Some(a) = self.alpha {
            let a = a as f64;
            let alpha_t = targets.mul_scalar(a).add(one_minus_y.mul_scalar(1.0 - a));
            loss = loss.mul(alpha_t);
        }
        let n = loss.shape().num_elements();
        Ok(self.reduction.apply(loss.reshape([n])))
    }
}

/// Multiclass focal loss on softmax probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxFocal {
    /// Per-class α (one per class, finite, ≥ 0); `None` weighs every class 1.
    pub alpha: Option<Vec<f32>>,
    /// Focusing parameter γ ≥ 0 (default 2).
    pub gamma: f32,
    /// Targets equal to this value are ignored.
    pub ignore_index: Option<i64>,
    /// How the per-element losses are combined; the mean divides by the non-ignored count.
    pub reduction: Reduction,
}

impl Default for SoftmaxFocal {
    fn default() -> Self {
        Self {
            alpha: None,
            gamma: 2.0,
            ignore_index: None,
            reduction: Reduction::Mean,
        }
    }
}

impl SoftmaxFocal {
    /// No α, γ = 2, nothing ignored, mean.
    pub fn new() -> Self {
        Self::default()
    }

    super::setters! {
        /// Sets the per-class α.
        with_alpha => alpha: Option<Vec<f32>>;
        /// Sets γ.
        with_gamma => gamma: f32;
        /// Sets the ignore index.
        with_ignore_index => ignore_index: Option<i64>;
        /// Sets the reduction.
        with_reduction => reduction: Reduction;
    }

    /// The loss of logits `(N, C)` against class indices `(N)`.
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Result<Tensor<1>> {
        let [n, c] = logits.dims();
        let [tn] = targets.dims();
        if tn != n {
            return Err(TrainError::BadInput(format!(
                "softmax focal loss: targets of shape [{tn}] do not match logits of shape [{n}, {c}]; expected [{n}]"
            )));
        }
        self.rows(logits, targets)
    }

    /// The loss of logits `(N, C, H, W)` against class-index masks `(N, H, W)`; with
    /// [`Reduction::None`] the pixel losses come in (N, H, W) order.
    pub fn forward_nchw(&self, logits: Tensor<4>, targets: Tensor<3, Int>) -> Result<Tensor<1>> {
        let [n, c, h, w] = logits.dims();
        let tdims = targets.dims();
        if tdims != [n, h, w] {
            return Err(TrainError::BadInput(format!(
                "softmax focal loss: target masks of shape {tdims:?} do not match logits of shape [{n}, {c}, {h}, {w}]; expected [{n}, {h}, {w}]"
            )));
        }
        self.rows(
            logits.permute([0, 2, 3, 1]).reshape([n * h * w, c]),
            targets,
        )
    }

    fn rows<const D: usize>(
        &self,
        logits: Tensor<2>,
        targets: Tensor<D, Int>,
    ) -> Result<Tensor<1>> {
        const WHAT: &str = "softmax focal loss";
        let [m, c] = logits.dims();
        if m == 0 || c == 0 {
            return Err(TrainError::BadInput(format!(
                "{WHAT}: logits of shape [{m}, {c}] are empty"
            )));
        }
        check_gamma(self.gamma, WHAT)?;
        if let Some(a) = &self.alpha {
            if a.len() != c {
                return Err(TrainError::BadInput(format!(
                    "{WHAT}: {} alpha values given for {c} classes",
                    a.len()
                )));
            }
            if let Some((i, v)) = a
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite() || **v < 0.0)
            {
                return Err(TrainError::BadInput(format!(
                    "{WHAT}: alpha[{i}] is {v}; expected a finite value ≥ 0"
                )));
            }
        }
        let device = logits.device();
        let t = class_targets(targets, c, self.ignore_index, WHAT, &device)?;
        let count = t.valid_host.iter().filter(|v| **v).count();
        // α_y on counted targets, 0 on ignored ones.
        let weight: Vec<f32> = t
            .safe_host
            .iter()
            .zip(&t.valid_host)
            .map(|(&y, &ok)| match (&self.alpha, ok) {
                (_, false) => 0.0,
                (Some(a), true) => a[y],
                (None, true) => 1.0,
            })
            .collect();
        let weight = Tensor::<1>::from_data(TensorData::new(weight, [m]), &device);
        let logp_t = log_softmax(logits, 1).gather(1, t.safe).reshape([m]);
        let mut loss = logp_t.clone().neg().mul(weight);
        if let Some(mf) = modulating(logp_t.exp(), self.gamma) {
            loss = loss.mul(mf);
        }
        Ok(self.reduction.apply_with_divisor(loss, count as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::cross_entropy::CrossEntropy;
    use crate::loss::fixtures::{self, assert_close, autodiff, grad_of, ints, values};
    use burn::tensor::Device;

    #[test]
    fn matches_torchvision_sigmoid_focal_loss_and_its_gradient() {
        let device = autodiff();
        let cases = fixtures::section("focal");
        assert_eq!(cases.len(), 4);
        for case in &cases {
            let s = case.shape();
            let x = case.tensor_var("logits", &device);
            let y = case.tensor("targets", &device).reshape([s[0], s[1]]);
            let alpha = case.0["alpha"].as_f64().map(|a| a as f32);
            let fl = SigmoidFocal::new()
                .with_alpha(alpha)
                .with_gamma(case.f64("gamma") as f32)
                .with_reduction(case.reduction());
            let loss = fl.forward(x.clone().reshape([s[0], s[1]]), y).unwrap();
            assert_close(
                &case.name("focal"),
                &values(loss.clone()),
                &case.f64_vec("value"),
            );
            let grad = grad_of(loss, &case.f64_vec("cot"), &x, &device);
            assert_close(&case.name("focal grad"), &grad, &case.f64_vec("grad"));
        }
    }

    #[test]
    fn matches_torch_softmax_focal_formula_and_its_gradient() {
        let device = autodiff();
        let cases = fixtures::section("focal_mc");
        assert_eq!(cases.len(), 4);
        for case in &cases {
            let s = case.shape();
            let x = case.tensor_var("logits", &device);
            let fl = SoftmaxFocal::new()
                .with_alpha(case.f32_vec_opt("alpha"))
                .with_gamma(case.f64("gamma") as f32)
                .with_ignore_index(Some(case.i64("ignore_index")))
                .with_reduction(case.reduction());
            let loss = fl
                .forward(
                    x.clone().reshape([s[0], s[1]]),
                    ints(&case.i64_vec("targets"), &device),
                )
                .unwrap();
            assert_close(
                &case.name("focal_mc"),
                &values(loss.clone()),
                &case.f64_vec("value"),
            );
            let grad = grad_of(loss, &case.f64_vec("cot"), &x, &device);
            assert_close(&case.name("focal_mc grad"), &grad, &case.f64_vec("grad"));
        }
    }

    #[test]
    fn softmax_focal_with_gamma_zero_is_cross_entropy() {
        let d = Device::flex();
        let v: Vec<f32> = (0..40).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.7).collect();
        let x = Tensor::<1>::from_data(TensorData::new(v, [40]), &d).reshape([2, 4, 1, 5]);
        let t = ints(&[0, 1, 255, 3, 2, 1, 1, 0, 255, 3], &d).reshape([2, 1, 5]);
        let fl = SoftmaxFocal::new()
            .with_gamma(0.0)
            .with_ignore_index(Some(255));
        let a = values(fl.forward_nchw(x.clone(), t.clone()).unwrap())[0];
        let b = values(CrossEntropy::segmentation().forward_nchw(x, t).unwrap())[0];
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    /// Central differences of the f32 loss against autodiff, for both forms.
    #[test]
    fn gradients_match_finite_differences() {
        let ad = autodiff();
        let x: Vec<f64> = (0..12)
            .map(|i| ((i * 5 % 12) as f64 - 6.0) * 0.35)
            .collect();
        let yb: Vec<f32> = (0..12).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let ym = [1i64, 0, 2, 2];
        let sig = SigmoidFocal::new().with_gamma(1.5);
        let soft = SoftmaxFocal::new()
            .with_alpha(Some(vec![0.2, 1.0, 0.6]))
            .with_gamma(2.5);
        let loss = |xs: &[f64], dev: &Device, var: bool| -> (Tensor<1>, Tensor<1>, Tensor<1>) {
            let mut t = Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [12]), dev);
            if var {
                t = t.require_grad();
            }
            let y = Tensor::<1>::from_data(TensorData::new(yb.clone(), [12]), dev).reshape([4, 3]);
            let a = sig.forward(t.clone().reshape([4, 3]), y).unwrap();
            let b = soft
                .forward(t.clone().reshape([4, 3]), ints(&ym, dev))
                .unwrap();
            (t, a, b)
        };
        for which in 0..2 {
            let (leaf, a, b) = loss(&x, &ad, true);
            let l = if which == 0 { a } else { b };
            let grad = grad_of(l, &[1.0], &leaf, &ad);
            for i in 0..12 {
                let h = 1e-2;
                let (mut p, mut q) = (x.clone(), x.clone());
                p[i] += h;
                q[i] -= h;
                let f = |xs: &[f64]| {
                    let (_, a, b) = loss(xs, &Device::flex(), false);
                    values(if which == 0 { a } else { b })[0]
                };
                let fd = (f(&p) - f(&q)) / (2.0 * h);
                assert!(
                    (fd - grad[i]).abs() < 2e-3,
                    "form {which} x[{i}]: fd {fd} vs {}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn bad_configuration_is_reported() {
        let d = Device::flex();
        let x = Tensor::<2>::zeros([2, 3], &d);
        let e = SigmoidFocal::new()
            .with_gamma(-1.0)
            .forward(x.clone(), x.clone())
            .unwrap_err();
        assert!(e.to_string().contains("gamma is -1"), "{e}");
        let e = SigmoidFocal::new()
            .with_alpha(Some(1.5))
            .forward(x.clone(), x.clone())
            .unwrap_err();
        assert!(e.to_string().contains("alpha is 1.5"), "{e}");
        let e = SoftmaxFocal::new()
            .with_alpha(Some(vec![1.0]))
            .forward(x, ints(&[0, 1], &d))
            .unwrap_err();
        assert!(
            e.to_string().contains("1 alpha values given for 3 classes"),
            "{e}"
        );
    }
}
