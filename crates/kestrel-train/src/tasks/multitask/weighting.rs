//! Weighting the losses of a multi-task model: total = Σ_i w_i · L_i, with the w_i fixed or
//! adapted during training.
//!
//! - **Fixed**: the configured weights.
//! - **Uncertainty** (Kendall, Gal & Cipolla, CVPR 2018): one learned s_i = log σ_i² per task and
//!   total = Σ_i exp(−s_i) · L_i + s_i. The paper writes 1/(2σ²)·L + log σ for a regression task
//!   and 1/σ²·L + log σ for a classification one; we use the form without the ½ factors for every
//!   task (as the MTAN and most public implementations do): it is twice the regression form, so
//!   its optimum s_i = log L_i weights each task by the inverse of its loss whatever the task's
//!   kind, and it does not depend on our two tasks both being cross-entropies. s starts at 0
//!   (weight 1) and is trained by Adam at the network's learning rate, without weight decay.
//!   The logged weight is exp(−s_i).
//! - **GradNorm** (Chen et al., ICML 2018): after each step, with G_i = ‖∇_W w_i L_i‖ on the
//!   last shared layer W, Ḡ their mean, r_i = L̃_i / mean_j L̃_j the relative inverse training
//!   rate (L̃_i = L_i(t) / L_i(0)), the weights take one step on L_grad = Σ_i |G_i − Ḡ · r_i^α|
//!   with the target Ḡ · r_i^α held constant (as the paper does), so ∂L_grad/∂w_i =
//!   sign(G_i − target_i) · G_i / w_i; then they are renormalised to sum to the task count.
//!   The step is Adam's (lr [`GRADNORM_LR`], PyTorch's defaults otherwise): the gradient scale
//!   ‖∇_W L_i‖ varies by orders of magnitude between models, and Adam's step does not.
//! - **DWA** (Liu, Johns & Davison, CVPR 2019, "dynamic weight average"): w_i(t) =
//!   K · exp(r_i/T) / Σ_j exp(r_j/T) with r_i = L_i(t−1) / L_i(t−2) the ratio of the last two
//!   epochs' mean losses, T = 2; equal weights for the first two epochs.

use crate::error::{Result, TrainError};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// GradNorm's asymmetry α (the paper's usual value).
pub const GRADNORM_ALPHA: f64 = 1.5;
/// Learning rate of GradNorm's weights.
pub const GRADNORM_LR: f64 = 0.01;
/// DWA's temperature T.
pub const DWA_TEMPERATURE: f64 = 2.0;
/// Smallest weight GradNorm keeps before renormalising (a weight must stay positive).
pub const GRADNORM_MIN_WEIGHT: f64 = 1e-3;

/// `weighting` in the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightingKind {
    /// The configured `task_weights`.
    #[default]
    Fixed,
    /// Homoscedastic uncertainty (Kendall et al. 2018).
    Uncertainty,
    /// GradNorm (Chen et al. 2018).
    GradNorm,
    /// Dynamic weight average (Liu et al. 2019).
    Dwa,
}

impl FromStr for WeightingKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "fixed" => WeightingKind::Fixed,
            "uncertainty" => WeightingKind::Uncertainty,
            "gradnorm" => WeightingKind::GradNorm,
            "dwa" => WeightingKind::Dwa,
            other => {
                return Err(TrainError::BadInput(format!(
                    "bad value for `weighting`: expected one of fixed, uncertainty, gradnorm, dwa, got `{other}`"
                )))
            }
        })
    }
}

/// Adam on a few scalars, exactly as `torch.optim.Adam` with its defaults (β = (0.9, 0.999),
/// ε = 1e-8, no weight decay).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalarAdam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl ScalarAdam {
    /// Fresh state for `n` scalars.
    pub fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One step: `params -= lr · m̂ / (√v̂ + ε)`.
    pub fn step(&mut self, params: &mut [f64], grads: &[f64], lr: f64) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        const EPS: f64 = 1e-8;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for i in 0..params.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * grads[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * grads[i] * grads[i];
            params[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + EPS);
        }
    }
}

/// Kendall et al.'s total loss Σ_i exp(−s_i) · L_i + s_i of the task losses `losses` (each of
/// shape [1]) and log-variances `log_vars` (shape [T]).
pub fn uncertainty_total(losses: &[Tensor<1>], log_vars: Tensor<1>) -> Tensor<1> {
    let l = Tensor::cat(losses.to_vec(), 0);
    (l * log_vars.clone().neg().exp() + log_vars).sum()
}

/// GradNorm's weights and their optimiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradNorm {
    /// The current weights (sum = task count).
    pub weights: Vec<f64>,
    /// The losses of the first step, L_i(0).
    pub initial: Option<Vec<f64>>,
    /// Asymmetry α.
    pub alpha: f64,
    /// Learning rate of the weights.
    pub lr: f64,
    adam: ScalarAdam,
}

impl GradNorm {
    /// Equal weights of 1.
    pub fn new(tasks: usize, alpha: f64, lr: f64) -> Self {
        Self {
            weights: vec![1.0; tasks],
            initial: None,
            alpha,
            lr,
            adam: ScalarAdam::new(tasks),
        }
    }

    /// ∂L_grad/∂w_i for task losses `losses` (this step, unweighted) and gradient norms
    /// `norms` = ‖∇_W w_i L_i‖ at the current weights; the first call records L_i(0).
    pub fn weight_gradient(&mut self, losses: &[f64], norms: &[f64]) -> Vec<f64> {
        let t = losses.len() as f64;
        let initial = self.initial.get_or_insert_with(|| losses.to_vec());
        let ratio: Vec<f64> = losses
            .iter()
            .zip(initial.iter())
            .map(|(l, l0)| l / l0)
            .collect();
        let mean_ratio = ratio.iter().sum::<f64>() / t;
        let mean_norm = norms.iter().sum::<f64>() / t;
        norms
            .iter()
            .zip(&ratio)
            .zip(&self.weights)
            .map(|((&g, &r), &w)| {
                let target = mean_norm * (r / mean_ratio).powf(self.alpha);
                let diff = g - target;
                // d|x|/dx = sign(x), 0 at 0 (PyTorch's convention); dG_i/dw_i = G_i / w_i.
                let sign = if diff > 0.0 {
                    1.0
                } else if diff < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                sign * g / w
            })
            .collect()
    }

    /// One GradNorm update of the weights (see the module documentation).
    pub fn update(&mut self, losses: &[f64], norms: &[f64]) {
        let grad = self.weight_gradient(losses, norms);
        let lr = self.lr;
        self.adam.step(&mut self.weights, &grad, lr);
        for w in &mut self.weights {
            *w = w.max(GRADNORM_MIN_WEIGHT);
        }
        let sum: f64 = self.weights.iter().sum();
        let t = self.weights.len() as f64;
        for w in &mut self.weights {
            *w *= t / sum;
        }
    }
}

/// DWA's weights for the next epoch, from the per-epoch mean losses so far (`history[e][i]`:
/// epoch e, task i): equal weights until two epochs are known.
pub fn dwa_weights(history: &[Vec<f64>], tasks: usize, temperature: f64) -> Vec<f64> {
    let n = history.len();
    if n < 2 {
        return vec![1.0; tasks];
    }
    let (last, before) = (&history[n - 1], &history[n - 2]);
    let e: Vec<f64> = last
        .iter()
        .zip(before)
        .map(|(a, b)| (a / b / temperature).exp())
        .collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| tasks as f64 * v / sum).collect()
}

/// The state of a run's loss weighting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LossWeighting {
    /// Fixed weights.
    Fixed(Vec<f64>),
    /// Learned log-variances s_i and their optimiser.
    Uncertainty {
        /// s_i = log σ_i².
        log_vars: Vec<f64>,
        /// Their Adam state.
        adam: ScalarAdam,
    },
    /// GradNorm.
    GradNorm(GradNorm),
    /// DWA: the mean task losses of every finished epoch and the current weights.
    Dwa {
        /// Per-epoch mean losses.
        history: Vec<Vec<f64>>,
        /// Weights of the current epoch.
        weights: Vec<f64>,
    },
}

/// What [`LossWeighting::combine`] built: the loss to differentiate and, for uncertainty
/// weighting, the log-variance leaf whose gradient [`LossWeighting::after_backward`] reads.
pub struct Combined {
    /// The total loss (shape [1]).
    pub total: Tensor<1>,
    /// The s leaf (uncertainty weighting only).
    pub log_vars: Option<Tensor<1>>,
}

impl LossWeighting {
    /// The weighting of `tasks` tasks: `fixed` uses `task_weights` (one finite weight ≥ 0 per
    /// task), `gradnorm` uses `alpha`.
    pub fn new(
        kind: WeightingKind,
        tasks: usize,
        task_weights: &[f64],
        alpha: f64,
    ) -> Result<Self> {
        Ok(match kind {
            WeightingKind::Fixed => {
                if task_weights.len() != tasks
                    || task_weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
                {
                    return Err(TrainError::BadInput(format!(
                        "bad value for `task_weights`: expected {tasks} finite weights ≥ 0 (classify, segment), got {task_weights:?}"
                    )));
                }
                LossWeighting::Fixed(task_weights.to_vec())
            }
            WeightingKind::Uncertainty => LossWeighting::Uncertainty {
                log_vars: vec![0.0; tasks],
                adam: ScalarAdam::new(tasks),
            },
            WeightingKind::GradNorm => {
                if !(alpha.is_finite() && alpha >= 0.0) {
                    return Err(TrainError::BadInput(format!(
                        "bad value for `gradnorm_alpha`: expected a finite number ≥ 0, got {alpha}"
                    )));
                }
                LossWeighting::GradNorm(GradNorm::new(tasks, alpha, GRADNORM_LR))
            }
            WeightingKind::Dwa => LossWeighting::Dwa {
                history: Vec::new(),
                weights: vec![1.0; tasks],
            },
        })
    }

    /// The current weight of each task (for uncertainty weighting, exp(−s_i)).
    pub fn weights(&self) -> Vec<f64> {
        match self {
            LossWeighting::Fixed(w) => w.clone(),
            LossWeighting::Uncertainty { log_vars, .. } => {
                log_vars.iter().map(|s| (-s).exp()).collect()
            }
            LossWeighting::GradNorm(g) => g.weights.clone(),
            LossWeighting::Dwa { weights, .. } => weights.clone(),
        }
    }

    /// Whether the step needs each task's gradient on the last shared layer (GradNorm).
    pub fn needs_task_gradients(&self) -> bool {
        matches!(self, LossWeighting::GradNorm(_))
    }

    /// The total loss of the task losses `losses` (each of shape [1], on `device`).
    pub fn combine(&self, losses: &[Tensor<1>], device: &Device) -> Combined {
        match self {
            LossWeighting::Uncertainty { log_vars, .. } => {
                let s: Vec<f32> = log_vars.iter().map(|&v| v as f32).collect();
                let n = s.len();
                let s = Tensor::<1>::from_data(TensorData::new(s, [n]), device).require_grad();
                Combined {
                    total: uncertainty_total(losses, s.clone()),
                    log_vars: Some(s),
                }
            }
            _ => {
                let w = self.weights();
                let total = losses
                    .iter()
                    .zip(w)
                    .map(|(l, w)| l.clone().mul_scalar(w as f32))
                    .reduce(|a, b| a + b)
                    .expect("at least one task");
                Combined {
                    total,
                    log_vars: None,
                }
            }
        }
    }

    /// The per-step update after the backward pass: uncertainty weighting steps s with
    /// `s_grad` (∂total/∂s) at learning rate `lr`; GradNorm updates its weights from the task
    /// losses and `task_grad_norms` (‖∇_W w_i L_i‖).
    pub fn after_step(
        &mut self,
        losses: &[f64],
        s_grad: Option<&[f64]>,
        task_grad_norms: Option<&[f64]>,
        lr: f64,
    ) {
        match self {
            LossWeighting::Uncertainty { log_vars, adam } => {
                if let Some(g) = s_grad {
                    adam.step(log_vars, g, lr);
                }
            }
            LossWeighting::GradNorm(gn) => {
                if let Some(norms) = task_grad_norms {
                    gn.update(losses, norms);
                }
            }
            _ => {}
        }
    }

    /// The per-epoch update: DWA records the epoch's mean task losses and sets the next weights.
    pub fn end_epoch(&mut self, mean_losses: &[f64]) {
        if let LossWeighting::Dwa { history, weights } = self {
            history.push(mean_losses.to_vec());
            *weights = dwa_weights(history, weights.len(), DWA_TEMPERATURE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Written by `tools/weighting_fixtures.py` (PyTorch, float64).
    const FIXTURE: &str = include_str!("../../../tests/fixtures/weighting.json");

    fn doc() -> Value {
        serde_json::from_str(FIXTURE).unwrap()
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn uncertainty_total_and_its_gradient_match_torch() {
        let device = Device::flex().autodiff();
        for case in doc()["uncertainty"].as_array().unwrap() {
            let l = floats(&case["losses"]);
            let s = floats(&case["log_vars"]);
            let losses: Vec<Tensor<1>> = l
                .iter()
                .map(|&v| Tensor::<1>::from_data(TensorData::new(vec![v as f32], [1]), &device))
                .collect();
            let s_t = Tensor::<1>::from_data(
                TensorData::new(s.iter().map(|&v| v as f32).collect::<Vec<_>>(), [s.len()]),
                &device,
            )
            .require_grad();
            let total = uncertainty_total(&losses, s_t.clone());
            let got = total.clone().into_scalar::<f32>() as f64;
            close(&[got], &[case["total"].as_f64().unwrap()], 1e-6, "total");
            let grads = total.backward();
            let g: Vec<f64> = s_t
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect();
            close(&g, &floats(&case["grad_log_vars"]), 1e-6, "∂/∂s");
            // And by hand: ∂/∂s_i = 1 − exp(−s_i)·L_i.
            let by_hand: Vec<f64> = l
                .iter()
                .zip(&s)
                .map(|(l, s)| 1.0 - (-s).exp() * l)
                .collect();
            close(&g, &by_hand, 1e-6, "by hand");
        }
    }

    #[test]
    fn scalar_adam_matches_torch() {
        let d = doc();
        let case = &d["adam"];
        let mut p = floats(&case["start"]);
        let mut adam = ScalarAdam::new(p.len());
        for g in case["grads"].as_array().unwrap() {
            adam.step(&mut p, &floats(g), case["lr"].as_f64().unwrap());
        }
        close(&p, &floats(&case["end"]), 1e-12, "adam");
    }

    #[test]
    fn one_gradnorm_update_matches_torch() {
        for case in doc()["gradnorm"].as_array().unwrap() {
            let tasks = floats(&case["weights"]).len();
            let mut gn = GradNorm::new(
                tasks,
                case["alpha"].as_f64().unwrap(),
                case["lr"].as_f64().unwrap(),
            );
            gn.weights = floats(&case["weights"]);
            gn.initial = Some(floats(&case["initial_losses"]));
            let losses = floats(&case["losses"]);
            let norms = floats(&case["weighted_norms"]);
            let grad = gn.weight_gradient(&losses, &norms);
            close(&grad, &floats(&case["grad_weights"]), 1e-12, "∂L_grad/∂w");
            gn.update(&losses, &norms);
            close(
                &gn.weights,
                &floats(&case["new_weights"]),
                1e-12,
                "new weights",
            );
            let sum: f64 = gn.weights.iter().sum();
            assert!((sum - tasks as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn gradnorm_moves_weight_to_the_slower_task() {
        // By hand: task 0 trains slowly (its loss ratio is the larger), so its target norm
        // is the larger one; with equal norms its weight must rise.
        let mut gn = GradNorm::new(2, 1.5, 0.01);
        gn.initial = Some(vec![1.0, 1.0]);
        gn.update(&[0.9, 0.3], &[1.0, 1.0]);
        assert!(
            gn.weights[0] > 1.0 && gn.weights[1] < 1.0,
            "{:?}",
            gn.weights
        );
    }

    #[test]
    fn dwa_weights_match_numpy() {
        for case in doc()["dwa"].as_array().unwrap() {
            let history: Vec<Vec<f64>> = case["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(floats)
                .collect();
            let tasks = case["tasks"].as_u64().unwrap() as usize;
            let got = dwa_weights(&history, tasks, case["temperature"].as_f64().unwrap());
            close(&got, &floats(&case["weights"]), 1e-12, "dwa");
        }
        // Through the state: equal for epochs 1 and 2, then the formula.
        let mut w = LossWeighting::new(WeightingKind::Dwa, 2, &[], 1.5).unwrap();
        assert_eq!(w.weights(), [1.0, 1.0]);
        w.end_epoch(&[2.0, 1.0]);
        assert_eq!(w.weights(), [1.0, 1.0]);
        w.end_epoch(&[1.0, 1.0]);
        // r = (0.5, 1): w = 2·e^{0.25} / (e^{0.25} + e^{0.5}), ...
        let (a, b) = (0.25f64.exp(), 0.5f64.exp());
        close(
            &w.weights(),
            &[2.0 * a / (a + b), 2.0 * b / (a + b)],
            1e-12,
            "state",
        );
    }

    #[test]
    fn fixed_weights_combine_and_bad_weights_are_named() {
        let device = Device::flex();
        let w = LossWeighting::new(WeightingKind::Fixed, 2, &[0.5, 2.0], 1.5).unwrap();
        let l = |v: f32| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &device);
        let c = w.combine(&[l(2.0), l(3.0)], &device);
        assert_eq!(c.total.into_scalar::<f32>(), 7.0);
        for bad in [&[1.0][..], &[1.0, -1.0], &[f64::NAN, 1.0]] {
            let e = LossWeighting::new(WeightingKind::Fixed, 2, bad, 1.5)
                .unwrap_err()
                .to_string();
            assert!(e.contains("task_weights"), "{e}");
        }
        let e = "softmax".parse::<WeightingKind>().unwrap_err().to_string();
        assert!(e.contains("gradnorm") && e.contains("softmax"), "{e}");
    }
}
