//! Freezing parts of a model for fine-tuning, as PyTorch users do with
//! `requires_grad_(False)` and `module.eval()`: a frozen parameter gets no gradient (so no
//! optimiser update, weight decay included), and a frozen BatchNorm layer normalises with its
//! running statistics and leaves them as they are.

use super::params::{is_buffer, under_prefix, PathStack};
use burn::module::{Flag, Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// What to freeze.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreezeSpec {
    /// Module names (variant-free dotted paths, as [`PathStack::name`]) whose parameters and
    /// BatchNorm layers are frozen: `backbone`, `blocks.0`, `layer1`.
    pub prefixes: Vec<String>,
    /// Freeze every BatchNorm layer (its γ, β and running statistics).
    pub batch_norm: bool,
}

/// The trainable and frozen parameter counts of a model under a [`FreezeSpec`]
/// ([`count_frozen`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreezeCounts {
    /// Parameters (elements, BatchNorm statistics not counted) that train.
    pub trainable: usize,
    /// Parameters frozen.
    pub frozen: usize,
    /// Prefixes of the spec that name no parameter of the model.
    pub unmatched: Vec<String>,
}

/// Where a visit or a mapping stands, and which of the spec's prefixes matched so far.
struct Walk<'a> {
    spec: &'a FreezeSpec,
    at: PathStack,
    /// Depth of the BatchNorm modules entered (0: outside any).
    in_batch_norm: usize,
    matched: Vec<bool>,
    counts: FreezeCounts,
}

impl<'a> Walk<'a> {
    fn new(spec: &'a FreezeSpec) -> Self {
        Walk {
            spec,
            at: PathStack::default(),
            in_batch_norm: 0,
            matched: vec![false; spec.prefixes.len()],
            counts: FreezeCounts::default(),
        }
    }

    fn enter(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
        if container_type.ends_with("BatchNorm2d") {
            self.in_batch_norm += 1;
        }
    }

    fn exit(&mut self, container_type: &str) {
        self.at.exit();
        if container_type.ends_with("BatchNorm2d") {
            self.in_batch_norm -= 1;
        }
    }

    /// Whether the module value at the current path is frozen.
    fn frozen(&mut self) -> bool {
        let name = self.at.name();
        let mut frozen = self.spec.batch_norm && self.in_batch_norm > 0;
        for (p, hit) in self.spec.prefixes.iter().zip(&mut self.matched) {
            if under_prefix(&name, p) {
                *hit = true;
                frozen = true;
            }
        }
        frozen
    }

    /// Counts a float tensor of `numel` elements; `None` for a buffer, else whether it is frozen.
    fn tensor(&mut self, numel: usize) -> Option<bool> {
        if is_buffer(&self.at.name()) {
            return None;
        }
        let frozen = self.frozen();
        if frozen {
            self.counts.frozen += numel;
        } else {
            self.counts.trainable += numel;
        }
        Some(frozen)
    }

    fn finish(self) -> FreezeCounts {
        let mut counts = self.counts;
        counts.unmatched = self
            .spec
            .prefixes
            .iter()
            .zip(&self.matched)
            .filter(|(_, hit)| !**hit)
            .map(|(p, _)| p.clone())
            .collect();
        counts
    }
}

impl ModuleVisitor for Walk<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.exit(container_type);
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.tensor(param.lazy_shape().num_elements());
    }
}

impl ModuleMapper for Walk<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.exit(container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.tensor(param.lazy_shape().num_elements()) {
            Some(frozen) => param.set_require_grad(!frozen),
            None => param,
        }
    }
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        let frozen = self.frozen();
        flag.with_value(!frozen)
    }
}

/// How many parameters of `model` `spec` freezes, and which of its prefixes match nothing.
pub fn count_frozen<M: Module>(model: &M, spec: &FreezeSpec) -> FreezeCounts {
    let mut walk = Walk::new(spec);
    model.visit(&mut walk);
    walk.finish()
}

/// `model` with the parts `spec` names frozen (no gradient; training flags — BatchNorm's batch
/// statistics, dropout — off) and every other part trainable, so that a smaller spec unfreezes.
pub fn set_frozen<M: Module>(model: M, spec: &FreezeSpec) -> M {
    model.map(&mut Walk::new(spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::zoo::{Arch, ClassifierSpec};
    use burn::tensor::Device;

    /// The training flags of `model`, in order.
    fn flags<M: Module>(model: &M) -> Vec<bool> {
        struct Flags(Vec<bool>);
        impl ModuleVisitor for Flags {
            fn visit_flag(&mut self, flag: &Param<Flag>) {
                self.0.push(flag.val().is_enabled());
            }
        }
        let mut f = Flags(Vec::new());
        model.visit(&mut f);
        f.0
    }

    #[test]
    fn prefixes_and_batch_norm_freeze_what_they_name() {
        let device = Device::flex().autodiff();
        let model = ClassifierSpec {
            arch: Arch::MobileNetV2,
            width: 0.25,
            num_classes: 3,
            activation: Default::default(),
        }
        .init(&device);
        let all = super::super::params::trainable_params(&model);
        let spec = FreezeSpec {
            prefixes: vec!["stem".into(), "nothing".into()],
            batch_norm: false,
        };
        let c = count_frozen(&model, &spec);
        let model = set_frozen(model, &spec);
        // The stem: a 3×3 convolution to 8 channels (no bias) and its BatchNorm γ, β.
        assert_eq!(c.frozen, 8 * 3 * 9 + 2 * 8);
        assert_eq!(c.trainable + c.frozen, all);
        assert_eq!(c.unmatched, ["nothing"]);
        // The stem's BatchNorm trains no more; the next one does.
        assert_eq!(flags(&model)[..2], [false, true]);
        let bn = FreezeSpec {
            prefixes: vec![],
            batch_norm: true,
        };
        let c = count_frozen(&model, &bn);
        let model = set_frozen(model, &bn);
        assert_eq!(c.frozen % 2, 0, "γ and β of every BatchNorm");
        assert!(c.frozen > 2 * 8);
        let c = count_frozen(&model, &FreezeSpec::default());
        assert_eq!((c.trainable, c.frozen), (all, 0));
        let model = set_frozen(model, &FreezeSpec::default());
        let flags = flags(&model);
        assert!(
            !flags.is_empty() && flags.iter().all(|&f| f),
            "unfrozen again"
        );
    }
}
