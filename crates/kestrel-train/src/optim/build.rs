//! [`Optim`]: the optimiser of a run built from its configuration — algorithm, parameter groups,
//! weight decay scope, schedule and L1 penalty — on top of Burn's `ModuleOptimizer`.
//!
//! Burn's update rules are PyTorch's once its defaults are overridden (SGD dampening 0 — Burn
//! 0.1; Adam/AdamW ε 1e-8 — Burn 1e-5; AdamW decay as configured — Burn 1e-4). Every
//! parameter gets one Burn optimiser instance by its (group, decayed?) pair, matched by exact
//! parameter path, so a checkpoint's optimiser state (saved with paths) finds its group again.

use super::groups::{resolve, ResolvedGroup};
use super::schedule::LrSchedule;
use super::settings::{OptimKind, DEFAULT_GROUP};
use crate::config::TrainConfig;
use crate::error::Result;
use crate::optim::regularize::{l1_penalty, sparsity, PenaltyScope, NEAR_ZERO};
use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, GradientsParams, ModuleOptimizer, Sgd, SgdConfig,
};
use burn::tensor::Tensor;
use std::collections::BTreeMap;

/// One Burn optimiser instance (the algorithm with one weight decay).
enum Rule {
    Sgd(Sgd),
    Adam(Adam),
    AdamW(AdamW),
}

impl Rule {
    fn new(cfg: &TrainConfig, kind: OptimKind, weight_decay: f64) -> Self {
        let s = &cfg.optim;
        let coupled = (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32));
        match kind {
            OptimKind::Sgd | OptimKind::Nesterov => Rule::Sgd(
                SgdConfig::new()
                    .with_momentum((s.momentum > 0.0).then(|| {
                        MomentumConfig::new()
                            .with_momentum(s.momentum)
                            .with_dampening(0.0)
                            .with_nesterov(kind == OptimKind::Nesterov)
                    }))
                    .with_weight_decay(coupled)
                    .build(),
            ),
            OptimKind::Adam => Rule::Adam(
                AdamConfig::new()
                    .with_beta_1(s.betas[0] as f32)
                    .with_beta_2(s.betas[1] as f32)
                    .with_epsilon(s.eps as f32)
                    .with_weight_decay(coupled)
                    .build(),
            ),
            OptimKind::AdamW => Rule::AdamW(
                AdamWConfig::new()
                    .with_beta_1(s.betas[0] as f32)
                    .with_beta_2(s.betas[1] as f32)
                    .with_epsilon(s.eps as f32)
                    .with_weight_decay(weight_decay as f32)
                    .build(),
            ),
        }
    }

    /// A module optimiser applying this rule to every parameter.
    fn everywhere(self) -> ModuleOptimizer {
        match self {
            Rule::Sgd(o) => o.into(),
            Rule::Adam(o) => o.into(),
            Rule::AdamW(o) => o.into(),
        }
    }

    /// `optim` with this rule for the parameters at `paths` (later groups take precedence).
    fn on(self, optim: ModuleOptimizer, paths: Vec<String>) -> ModuleOptimizer {
        if paths.is_empty() {
            return optim;
        }
        let group = ParamGroup::from_paths(paths);
        match self {
            Rule::Sgd(o) => optim.with_group(group, o, None),
            Rule::Adam(o) => optim.with_group(group, o, None),
            Rule::AdamW(o) => optim.with_group(group, o, None),
        }
    }
}

/// The optimiser of a run. Build it once the model exists ([`Optim::new`]); per step, pass the
/// loss through [`Optim::regularize`] (the L1 penalty), then call [`Optim::step`].
pub struct Optim {
    optimizer: ModuleOptimizer,
    groups: Vec<ResolvedGroup>,
    /// The parameters of each non-empty group, for its learning rate.
    lr_groups: Vec<(ParamGroup, f64)>,
    schedule: LrSchedule,
    l1: f64,
    scope: PenaltyScope,
}

impl Optim {
    /// The optimiser `cfg` describes for `model`, over a run of `steps_per_epoch` steps per
    /// epoch. Errors (bad input) name the group that matches no parameter of `model`, or the
    /// two groups that share one.
    pub fn new<M: Module>(cfg: &TrainConfig, model: &M, steps_per_epoch: usize) -> Result<Self> {
        let kind = cfg.optimizer_kind();
        cfg.optim.validate(kind)?;
        let groups = resolve(cfg, model)?;
        let all = cfg.decay_norm_and_bias;
        // Fallback for anything unnamed (none in practice): the default group's rule.
        let mut optimizer = Rule::new(cfg, kind, cfg.weight_decay).everywhere();
        for g in &groups {
            optimizer = Rule::new(cfg, kind, g.weight_decay).on(optimizer, g.decayed(all));
            optimizer = Rule::new(cfg, kind, 0.0).on(optimizer, g.not_decayed(all));
        }
        let lr_groups = groups
            .iter()
            .filter(|g| !g.paths.is_empty())
            .map(|g| (ParamGroup::from_paths(g.paths.clone()), g.peak_lr))
            .collect();
        Ok(Self {
            optimizer,
            lr_groups,
            groups,
            schedule: LrSchedule::from_config(cfg, steps_per_epoch),
            l1: cfg.l1,
            scope: if all {
                PenaltyScope::All
            } else {
                PenaltyScope::WeightsOnly
            },
        })
    }

    /// The learning rate of each group at step `step` (0-based): group name → lr, the
    /// parameters of no group under `default` (left out when every parameter is in a group).
    pub fn lrs(&self, step: usize) -> BTreeMap<String, f64> {
        let f = self.schedule.factor(step);
        self.groups
            .iter()
            .filter(|g| g.name != DEFAULT_GROUP || !g.paths.is_empty())
            .map(|g| (g.name.clone(), g.peak_lr * f))
            .collect()
    }

    /// Updates `model` with `grads` at step `step` (0-based), each group at its own learning
    /// rate.
    pub fn step<M: Module>(&mut self, step: usize, model: M, grads: GradientsParams) -> M {
        let f = self.schedule.factor(step);
        let mut lr = ModuleLrScheduler::new(self.groups[0].peak_lr * f);
        for (group, peak) in &self.lr_groups {
            lr = lr.with_group(group.clone(), peak * f);
        }
        self.optimizer.step(lr.step(), model, grads)
    }

    /// The L1 penalty `l1 · Σ|w|` over the penalised parameters (weights only, or all with
    /// `decay_norm_and_bias`), shape `[1]`, to add to the loss before `backward`; `None` when
    /// `l1 = 0`.
    pub fn penalty<M: Module>(&self, model: &M) -> Option<Tensor<1>> {
        (self.l1 > 0.0).then(|| l1_penalty(model, self.l1, self.scope))
    }

    /// `loss + penalty` (just `loss` when `l1 = 0`).
    pub fn regularize<M: Module>(&self, loss: Tensor<1>, model: &M) -> Tensor<1> {
        match self.penalty(model) {
            Some(p) => loss.add(p),
            None => loss,
        }
    }

    /// The share in [0, 1] of penalised weights with |w| < 1e-3, to report per epoch of an L1
    /// run.
    pub fn sparsity<M: Module>(&self, model: &M) -> f64 {
        sparsity(model, NEAR_ZERO, self.scope).share()
    }

    /// The Burn optimiser, for a checkpoint's optimiser section.
    pub fn module_optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }

    /// Replaces the Burn optimiser's state, e.g. with `|o| checkpoint.optimizer(o)` on resume.
    pub fn restore(
        mut self,
        f: impl FnOnce(ModuleOptimizer) -> Result<ModuleOptimizer>,
    ) -> Result<Self> {
        self.optimizer = f(self.optimizer)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};
    use kestrel_nn::{Arch, Classifier, ClassifierSpec};

    use kestrel_nn::tensor_values::to_f32_vec as flat;

    /// Plain SGD, one step: each parameter moves by −lr·grad with its group's lr, through the
    /// `Classifier` enum's paths.
    #[test]
    fn each_group_steps_at_its_own_rate_inside_a_classifier() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let model = ClassifierSpec {
            arch: Arch::MobileNetV2,
            width: 0.25,
            num_classes: 3,
            activation: Default::default(),
        }
        .init(&device);
        let cfg: TrainConfig = toml::from_str(
            "lr = 0.001\nweight_decay = 0.0\nschedule = \"constant\"\nwarmup_epochs = 0.0\n\
             [optim]\nkind = \"sgd\"\nmomentum = 0.0\n[optim.groups.head]\nmatch = \"classifier.\"\nlr = 1.0\n",
        )
        .unwrap();
        let mut optim = Optim::new(&cfg, &model, 1).unwrap();
        assert_eq!(
            optim.lrs(0),
            [("default".to_string(), 0.001), ("head".to_string(), 1.0)].into()
        );
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
        let Classifier::MobileNetV2(m) = &model else {
            unreachable!()
        };
        let (w_head, w_stem) = (m.classifier.weight.val(), m.stem.conv.weight.val());
        let grads = model.forward(x).square().mean().backward();
        let g_head = flat(w_head.grad(&grads).unwrap());
        let g_stem = w_stem.grad(&grads).unwrap();
        let g_stem = flat(g_stem.clone().reshape([g_stem.shape().num_elements(), 1]));
        let grads = GradientsParams::from_grads(grads, &model);
        let new = optim.step(0, model.clone(), grads);
        let Classifier::MobileNetV2(n) = &new else {
            unreachable!()
        };
        let check = |before: Vec<f32>, after: Vec<f32>, g: &[f32], lr: f32, what: &str| {
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            assert!(moved > 0, "{what} did not move");
            for ((b, a), g) in before.iter().zip(&after).zip(g) {
                assert!(
                    (b - lr * g - a).abs() < 1e-6,
                    "{what}: {b} - {lr}·{g} vs {a}"
                );
            }
        };
        check(
            flat(w_head.inner()),
            flat(n.classifier.weight.val().inner()),
            &g_head,
            1.0,
            "classifier.weight",
        );
        let stem = |t: Tensor<4>| flat(t.clone().reshape([t.shape().num_elements(), 1]));
        check(
            stem(w_stem.inner()),
            stem(n.stem.conv.weight.val().inner()),
            &g_stem,
            0.001,
            "stem.conv.weight",
        );
    }
}
