//! Cross-entropy on logits with PyTorch's conventions (`torch.nn.functional.cross_entropy`):
//! class weights, label smoothing, an ignore index, mean/sum/none, for classification `(N, C)`,
//! segmentation `(N, C, H, W)` and probability ("soft") targets.
//!
//! With class-index targets y, log-probabilities ℓ = log_softmax(x), class weights w (all 1 when
//! unset) and smoothing ε over C classes, the loss of element i is
//!
//! `(1 − ε) · w_{y_i} · (−ℓ_{i,y_i}) + (ε / C) · Σ_c w_c · (−ℓ_{i,c})`,
//!
//! 0 for an ignored element, and the mean divides the sum by Σ_i w_{y_i} over the non-ignored
//! elements (the count of them when unweighted) — for the smoothing term too, as PyTorch does.
//! With probability targets p the loss is `−Σ_c w_c · p'_{i,c} · ℓ_{i,c}`, p' = (1 − ε)·p + ε/C,
//! and the mean divides by the number of elements, not by the weights.

use super::reduction::Reduction;
use super::targets::class_targets;
use crate::error::{Result, TrainError};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

/// Cross-entropy on logits: configuration and forward functions.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropy {
    /// Per-class weights (PyTorch's `weight`), one per class, finite and ≥ 0.
    pub weights: Option<Vec<f32>>,
    /// Label smoothing ε in [0, 1].
    pub label_smoothing: f32,
    /// Targets equal to this value are ignored (PyTorch's `ignore_index`; its default −100 is
    /// never a class, so `None` behaves the same for valid targets).
    pub ignore_index: Option<i64>,
    /// How the per-element losses are combined.
    pub reduction: Reduction,
}

impl Default for CrossEntropy {
    fn default() -> Self {
        Self::new()
    }
}

/// The ignore index of segmentation masks (unlabelled / boundary pixels): the mask format's
/// [`kestrel_data::IGNORE_LABEL`], as the class-index type of the targets.
pub const SEGMENTATION_IGNORE_INDEX: i64 = kestrel_data::IGNORE_LABEL as i64;

impl CrossEntropy {
    /// Unweighted, unsmoothed, nothing ignored, mean reduction.
    pub fn new() -> Self {
        Self {
            weights: None,
            label_smoothing: 0.0,
            ignore_index: None,
            reduction: Reduction::Mean,
        }
    }

    /// As [`CrossEntropy::new`] but ignoring [`SEGMENTATION_IGNORE_INDEX`] (255).
    pub fn segmentation() -> Self {
        Self::new().with_ignore_index(Some(SEGMENTATION_IGNORE_INDEX))
    }

    super::setters! {
        /// Sets the class weights.
        with_weights => weights: Option<Vec<f32>>;
        /// Sets the label smoothing ε.
        with_label_smoothing => label_smoothing: f32;
        /// Sets the ignore index.
        with_ignore_index => ignore_index: Option<i64>;
        /// Sets the reduction.
        with_reduction => reduction: Reduction;
    }

    /// Checks the configuration against the number of classes.
    fn check(&self, classes: usize, shape: &[usize]) -> Result<()> {
        if shape.contains(&0) {
            return Err(TrainError::BadInput(format!(
                "cross-entropy: logits of shape {shape:?} are empty; expected at least one sample and one class"
            )));
        }
        let eps = self.label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return Err(TrainError::BadInput(format!(
                "cross-entropy: label_smoothing must be in [0, 1], got {eps}"
            )));
        }
        if let Some(w) = &self.weights {
            if w.len() != classes {
                return Err(TrainError::BadInput(format!(
                    "cross-entropy: {} class weights given but the logits of shape {shape:?} have {classes} classes",
                    w.len()
                )));
            }
            if let Some((c, v)) = w
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite() || **v < 0.0)
            {
                return Err(TrainError::BadInput(format!(
                    "cross-entropy: the weight of class {c} is {v}; expected a finite value ≥ 0"
                )));
            }
        }
        Ok(())
    }

    /// The loss of logits `(N, C)` against class indices `(N)`. See [`Reduction`] for the shape of
    /// the result.
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Result<Tensor<1>> {
        let [n, c] = logits.dims();
        self.check(c, &[n, c])?;
        let [tn] = targets.dims();
        if tn != n {
            return Err(TrainError::BadInput(format!(
                "cross-entropy: targets of shape [{tn}] do not match logits of shape [{n}, {c}]; expected [{n}]"
            )));
        }
        self.rows(logits, targets)
    }

    /// The loss of logits `(N, C, H, W)` against class-index masks `(N, H, W)`. With
    /// [`Reduction::None`] the result holds the N·H·W pixel losses in (N, H, W) order.
    pub fn forward_nchw(&self, logits: Tensor<4>, targets: Tensor<3, Int>) -> Result<Tensor<1>> {
        let [n, c, h, w] = logits.dims();
        self.check(c, &[n, c, h, w])?;
        let tdims = targets.dims();
        if tdims != [n, h, w] {
            return Err(TrainError::BadInput(format!(
                "cross-entropy: target masks of shape {tdims:?} do not match logits of shape [{n}, {c}, {h}, {w}]; expected [{n}, {h}, {w}]"
            )));
        }
        let rows = logits.permute([0, 2, 3, 1]).reshape([n * h * w, c]);
        self.rows(rows, targets)
    }

    /// Class-index cross-entropy over rows `(M, C)`; targets of any shape with M elements.
    fn rows<const D: usize>(
        &self,
        logits: Tensor<2>,
        targets: Tensor<D, Int>,
    ) -> Result<Tensor<1>> {
        let [m, c] = logits.dims();
        let device = logits.device();
        let t = class_targets(targets, c, self.ignore_index, "cross-entropy", &device)?;
        let logp = log_softmax(logits, 1);
        let picked = logp.clone().gather(1, t.safe).reshape([m]);
        // w_{y_i} on non-ignored elements, 0 on ignored ones; its sum is the mean's divisor.
        let target_weight: Vec<f32> = t
            .safe_host
            .iter()
            .zip(&t.valid_host)
            .map(|(&y, &ok)| match (&self.weights, ok) {
                (_, false) => 0.0,
                (Some(w), true) => w[y],
                (None, true) => 1.0,
            })
            .collect();
        let divisor: f64 = target_weight.iter().map(|&v| v as f64).sum();
        let target_weight = Tensor::<1>::from_data(TensorData::new(target_weight, [m]), &device);
        let eps = self.label_smoothing as f64;
        let mut per = picked.neg().mul(target_weight).mul_scalar(1.0 - eps);
        if eps > 0.0 {
            let summed = match &self.weights {
                Some(w) => {
                    let w = Tensor::<2>::from_data(TensorData::new(w.clone(), [1, c]), &device);
                    logp.mul(w).sum_dim(1)
                }
                None => logp.sum_dim(1),
            };
            let smooth = summed.reshape([m]).neg().mul(t.valid);
            per = per.add(smooth.mul_scalar(eps / c as f64));
        }
        Ok(self.reduction.apply_with_divisor(per, divisor))
    }

    /// The loss of logits `(N, C)` against probability targets `(N, C)` (each row a distribution;
    /// not checked). The ignore index does not apply; the mean divides by N.
    pub fn forward_soft(&self, logits: Tensor<2>, probs: Tensor<2>) -> Result<Tensor<1>> {
        let [n, c] = logits.dims();
        self.check(c, &[n, c])?;
        let pd = probs.dims();
        if pd != [n, c] {
            return Err(TrainError::BadInput(format!(
                "cross-entropy: probability targets of shape {pd:?} do not match logits of shape [{n}, {c}]"
            )));
        }
        let device = logits.device();
        let eps = self.label_smoothing as f64;
        let p = if eps > 0.0 {
            probs.mul_scalar(1.0 - eps).add_scalar(eps / c as f64)
        } else {
            probs
        };
        let mut prod = log_softmax(logits, 1).mul(p);
        if let Some(w) = &self.weights {
            prod = prod.mul(Tensor::<2>::from_data(
                TensorData::new(w.clone(), [1, c]),
                &device,
            ));
        }
        let per = prod.sum_dim(1).reshape([n]).neg();
        Ok(self.reduction.apply_with_divisor(per, n as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::fixtures::{self, assert_close, autodiff, grad_of, ints, values, Case};
    use crate::loss::kl_div::{KlDiv, KlReduction};
    use burn::tensor::activation::softmax;
    use burn::tensor::Device;

    fn config(case: &Case) -> CrossEntropy {
        CrossEntropy::new()
            .with_weights(case.f32_vec_opt("weights"))
            .with_label_smoothing(case.f64("label_smoothing") as f32)
            .with_ignore_index(Some(case.i64("ignore_index")))
            .with_reduction(case.reduction())
    }

    #[test]
    fn matches_torch_cross_entropy_and_its_input_gradient() {
        let device = autodiff();
        let cases = fixtures::section("ce");
        assert_eq!(cases.len(), 15);
        for case in &cases {
            let shape = case.shape();
            let logits = case.tensor_var("logits", &device);
            let targets = case.i64_vec("targets");
            let ce = config(case);
            let loss = if shape.len() == 2 {
                ce.forward(
                    logits.clone().reshape([shape[0], shape[1]]),
                    ints(&targets, &device),
                )
            } else {
                let [n, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
                let t = ints(&targets, &device).reshape([n, h, w]);
                ce.forward_nchw(logits.clone().reshape([n, c, h, w]), t)
            }
            .unwrap();
            assert_close(
                &case.name("ce"),
                &values(loss.clone()),
                &case.f64_vec("value"),
            );
            let grad = grad_of(loss, &case.f64_vec("cot"), &logits, &device);
            assert_close(&case.name("ce grad"), &grad, &case.f64_vec("grad"));
        }
    }

    #[test]
    fn matches_torch_cross_entropy_with_probability_targets() {
        let device = autodiff();
        let cases = fixtures::section("ce_soft");
        assert_eq!(cases.len(), 4);
        for case in &cases {
            let shape = case.shape();
            let logits = case.tensor_var("logits", &device);
            let probs = case.tensor("probs", &device).reshape([shape[0], shape[1]]);
            let ce = CrossEntropy::new()
                .with_weights(case.f32_vec_opt("weights"))
                .with_label_smoothing(case.f64("label_smoothing") as f32)
                .with_reduction(case.reduction());
            let loss = ce
                .forward_soft(logits.clone().reshape([shape[0], shape[1]]), probs)
                .unwrap();
            assert_close(
                &case.name("ce_soft"),
                &values(loss.clone()),
                &case.f64_vec("value"),
            );
            let grad = grad_of(loss, &case.f64_vec("cot"), &logits, &device);
            assert_close(&case.name("ce_soft grad"), &grad, &case.f64_vec("grad"));
        }
    }

    /// Cross-entropy decomposes as H(p, q) = H(p) + KL(p ‖ q) (Cover & Thomas, eq. 2.90 ff.).
    #[test]
    fn soft_cross_entropy_is_entropy_plus_kl() {
        let d = Device::flex();
        for seed in 0..5u64 {
            let mut rng = kestrel_data::rng::Rng::new(seed);
            let mut draw = |scale: f64| -> Tensor<2> {
                let v: Vec<f64> = (0..35).map(|_| rng.normal() * scale).collect();
                Tensor::<1>::from_data(TensorData::new(v, [35]), &d).reshape([7, 5])
            };
            let logits = draw(2.0);
            let p = softmax(draw(1.5), 1);
            let h_pq = values(
                CrossEntropy::new()
                    .forward_soft(logits.clone(), p.clone())
                    .unwrap(),
            )[0];
            let pv = values(p.clone().reshape([35]));
            let entropy: f64 = -pv.iter().map(|&x| x * x.ln()).sum::<f64>() / 7.0;
            let kl = KlDiv::new(KlReduction::BatchMean)
                .forward(log_softmax(logits, 1), p)
                .unwrap();
            let kl = values(kl)[0];
            assert!(
                (h_pq - (entropy + kl)).abs() < 1e-5,
                "seed {seed}: {h_pq} vs {entropy} + {kl}"
            );
            assert!(kl > 0.0);
        }
    }

    /// Central differences in f64 of the f32 loss: slope within 2e-3 of the autodiff gradient.
    #[test]
    fn gradient_matches_finite_differences() {
        let device = autodiff();
        let x: Vec<f64> = (0..12).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.4).collect();
        let targets = [2i64, 255, 0, 1];
        let ce = CrossEntropy::segmentation()
            .with_weights(Some(vec![0.5, 2.0, 1.0]))
            .with_label_smoothing(0.1);
        let eval = |xs: &[f64]| -> f64 {
            let d = Device::flex();
            let l = Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [12]), &d).reshape([4, 3]);
            values(ce.forward(l, ints(&targets, &d)).unwrap())[0]
        };
        let xt = Tensor::<1>::from_data(TensorData::new(x.clone(), [12]), &device).require_grad();
        let loss = ce
            .forward(xt.clone().reshape([4, 3]), ints(&targets, &device))
            .unwrap();
        let grad = grad_of(loss, &[1.0], &xt, &device);
        for i in 0..12 {
            let h = 1e-2;
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (eval(&a) - eval(&b)) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 2e-3,
                "x[{i}]: fd {fd} vs autodiff {}",
                grad[i]
            );
        }
        // The ignored row (index 1) gets no gradient.
        assert!(grad[3..6].iter().all(|g| *g == 0.0));
    }

    #[test]
    fn bad_input_is_reported() {
        let d = Device::flex();
        let l = Tensor::<2>::zeros([2, 3], &d);
        let e = CrossEntropy::new()
            .forward(l.clone(), ints(&[0, 1, 2], &d))
            .unwrap_err();
        assert!(e.to_string().contains("expected [2]"), "{e}");
        let e = CrossEntropy::new()
            .with_weights(Some(vec![1.0; 4]))
            .forward(l.clone(), ints(&[0, 1], &d))
            .unwrap_err();
        assert!(e.to_string().contains("4 class weights"), "{e}");
        let e = CrossEntropy::new()
            .with_label_smoothing(1.5)
            .forward(l.clone(), ints(&[0, 1], &d))
            .unwrap_err();
        assert!(e.to_string().contains("label_smoothing"), "{e}");
        let e = CrossEntropy::new()
            .forward(l, ints(&[0, 3], &d))
            .unwrap_err();
        assert!(e.to_string().contains("target 3"), "{e}");
        let e = CrossEntropy::segmentation()
            .forward_nchw(
                Tensor::zeros([1, 3, 2, 2], &d),
                ints(&[0, 1], &d).reshape([1, 1, 2]),
            )
            .unwrap_err();
        assert!(e.to_string().contains("expected [1, 2, 2]"), "{e}");
    }

    #[test]
    fn all_ignored_mean_is_nan_as_in_torch() {
        let d = Device::flex();
        let loss = CrossEntropy::segmentation()
            .forward(Tensor::zeros([2, 3], &d), ints(&[255, 255], &d))
            .unwrap();
        assert!(values(loss)[0].is_nan());
    }
}
