//! Counting and naming a module's parameters.
//!
//! Burn's `Module::num_params` also counts BatchNorm running statistics, which are buffers, not
//! parameters; PyTorch's `sum(p.numel() for p in model.parameters())` — the figure papers and
//! torchvision quote — does not. [`trainable_params`] counts what PyTorch counts.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Field names of buffers: tensors a module keeps that no optimiser updates.
pub const BUFFER_NAMES: [&str; 2] = ["running_mean", "running_var"];

/// Visits every float tensor with its dotted module path (e.g. `blocks.3.depthwise.conv.weight`).
#[derive(Default)]
struct PathVisitor<F> {
    path: Vec<String>,
    f: F,
}

impl<F: FnMut(&str, &[usize])> ModuleVisitor for PathVisitor<F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.lazy_shape();
        (self.f)(&self.path.join("."), &shape.dims::<D>());
    }
}

/// The module path during a visit or a mapping, with enum variant segments told apart: Burn's
/// path of a `Classifier`'s weight is `MobileNetV2.classifier.weight`, its *name* (what users
/// type: optimiser groups, `--freeze`, weights reports) is `classifier.weight`.
#[derive(Clone, Debug, Default)]
pub struct PathStack {
    /// (segment, whether it is an enum variant)
    stack: Vec<(String, bool)>,
}

impl PathStack {
    /// Enters a module (a [`ModuleVisitor::enter_module`] / `ModuleMapper::enter_module` call).
    pub fn enter(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.starts_with("Enum:")));
    }

    /// Leaves the innermost module.
    pub fn exit(&mut self) {
        self.stack.pop();
    }

    /// Every segment, enum variants included: the path Burn's optimiser and records use.
    pub fn path(&self) -> String {
        self.join(false)
    }

    /// The segments without enum variants: the name users see and type.
    pub fn name(&self) -> String {
        self.join(true)
    }

    fn join(&self, skip_variants: bool) -> String {
        self.stack
            .iter()
            .filter(|(_, variant)| !(skip_variants && *variant))
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Whether the dotted `name` lies under `prefix`: equal to it, or inside it segment-wise
/// (`blocks.1` covers `blocks.1.conv.weight`, not `blocks.10.conv.weight`). A trailing dot on
/// the prefix is ignored.
pub fn under_prefix(name: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('.').unwrap_or(prefix);
    name == prefix || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Calls `f(path, shape)` for every float tensor of `module`, buffers included.
pub fn for_each_tensor<M: Module>(module: &M, f: impl FnMut(&str, &[usize])) {
    let mut v = PathVisitor {
        path: Vec::new(),
        f,
    };
    module.visit(&mut v);
}

/// Whether a tensor path names a buffer rather than a parameter.
pub fn is_buffer(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    BUFFER_NAMES.contains(&last)
}

/// Number of trainable parameters (BatchNorm γ and β included, running statistics not).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    let mut n = 0;
    for_each_tensor(module, |path, shape| {
        if !is_buffer(path) {
            n += shape.iter().product::<usize>();
        }
    });
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchNorm2dConfig;
    use burn::tensor::Device;

    #[test]
    fn batch_norm_counts_gamma_and_beta_only() {
        let bn = BatchNorm2dConfig::new(5).init(&Device::flex());
        let mut paths = Vec::new();
        for_each_tensor(&bn, |p, _| paths.push(p.to_string()));
        assert_eq!(paths, ["gamma", "beta", "running_mean", "running_var"]);
        assert_eq!(trainable_params(&bn), 10);
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under_prefix("blocks.1.conv.weight", "blocks.1"));
        assert!(under_prefix("blocks.1.conv.weight", "blocks.1."));
        assert!(under_prefix("blocks.1", "blocks.1"));
        assert!(!under_prefix("blocks.10.conv.weight", "blocks.1"));
        assert!(!under_prefix("blocks", "blocks.1"));
    }
}
