//! Parameter groups resolved against a model: which parameter paths each `[optim.groups.NAME]`
//! covers, with its peak learning rate and weight decay.

use super::settings::DEFAULT_GROUP;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::optim::regularize::is_norm_or_bias;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use kestrel_nn::layers::params::{is_buffer, PathStack};

/// One group with the parameter paths it covers.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedGroup {
    /// The group's name (`default` for the parameters of no group).
    pub name: String,
    /// Peak learning rate.
    pub peak_lr: f64,
    /// Weight decay of its weights (its BatchNorm γ/β and biases get 0 unless
    /// `decay_norm_and_bias`).
    pub weight_decay: f64,
    /// Dotted paths of its parameters as Burn's optimiser sees them, in the model's order.
    pub paths: Vec<String>,
    /// The same paths without enum variant segments (`classifier.weight` for Burn's
    /// `MobileNetV2.classifier.weight` in a `Classifier`): what `match` prefixes are tested on.
    pub names: Vec<String>,
}

impl ResolvedGroup {
    /// The paths that get the group's weight decay (all, or all but norm parameters and biases).
    pub fn decayed(&self, decay_norm_and_bias: bool) -> Vec<String> {
        self.split(decay_norm_and_bias).0
    }

    /// The paths that get no weight decay (none when `decay_norm_and_bias`).
    pub fn not_decayed(&self, decay_norm_and_bias: bool) -> Vec<String> {
        self.split(decay_norm_and_bias).1
    }

    fn split(&self, decay_norm_and_bias: bool) -> (Vec<String>, Vec<String>) {
        self.paths
            .iter()
            .cloned()
            .partition(|p| decay_norm_and_bias || !is_norm_or_bias(p))
    }
}

/// A trainable parameter's path as Burn's optimiser sees it, and its name for `match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamPath {
    /// Every module segment, enum variants included (`MobileNetV2.classifier.weight`).
    pub path: String,
    /// Enum variant segments left out (`classifier.weight`).
    pub name: String,
}

/// Collects [`ParamPath`]s.
#[derive(Default)]
struct Collect {
    at: PathStack,
    out: Vec<ParamPath>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.at.exit();
    }
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        let path = self.at.path();
        if !is_buffer(&path) {
            self.out.push(ParamPath {
                name: self.at.name(),
                path,
            });
        }
    }
}

/// The trainable parameters of `model` (BatchNorm running statistics left out), in order.
pub fn parameter_paths<M: Module>(model: &M) -> Vec<ParamPath> {
    let mut c = Collect::default();
    model.visit(&mut c);
    c.out
}

/// The groups of `cfg` over `model`: the `default` group first (every parameter no group
/// matches; possibly empty), then the configured groups by name. A group that matches no
/// parameter, or a parameter that two groups match, is an error naming the group(s).
pub fn resolve<M: Module>(cfg: &TrainConfig, model: &M) -> Result<Vec<ResolvedGroup>> {
    let paths = parameter_paths(model);
    let mut owner: Vec<Option<&str>> = vec![None; paths.len()];
    let mut groups = Vec::new();
    for (name, g) in &cfg.optim.groups {
        let mut mine = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            if !p.name.starts_with(&g.prefix) {
                continue;
            }
            if let Some(other) = owner[i] {
                return Err(TrainError::BadInput(format!(
                    "parameter `{}` matches both optimiser groups `{other}` and `{name}`; a parameter may belong to one group only",
                    p.name
                )));
            }
            owner[i] = Some(name);
            mine.push(p.clone());
        }
        if mine.is_empty() {
            let sample: Vec<&str> = paths.iter().take(4).map(|p| p.name.as_str()).collect();
            return Err(TrainError::BadInput(format!(
                "optimiser group `{name}` (match = \"{}\") matches no parameter of model `{}`; `match` is a prefix of dotted parameter paths such as {}",
                g.prefix,
                cfg.model,
                sample.join(", ")
            )));
        }
        groups.push(ResolvedGroup {
            name: name.clone(),
            peak_lr: g.peak_lr(cfg.lr),
            weight_decay: g.weight_decay.unwrap_or(cfg.weight_decay),
            paths: mine.iter().map(|p| p.path.clone()).collect(),
            names: mine.into_iter().map(|p| p.name).collect(),
        });
    }
    let rest: Vec<&ParamPath> = paths
        .iter()
        .zip(&owner)
        .filter(|(_, o)| o.is_none())
        .map(|(p, _)| p)
        .collect();
    groups.insert(
        0,
        ResolvedGroup {
            name: DEFAULT_GROUP.into(),
            peak_lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            paths: rest.iter().map(|p| p.path.clone()).collect(),
            names: rest.iter().map(|p| p.name.clone()).collect(),
        },
    );
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use kestrel_nn::{Arch, ClassifierSpec};

    fn mobilenet() -> kestrel_nn::Classifier {
        ClassifierSpec {
            arch: Arch::MobileNetV2,
            width: 0.25,
            num_classes: 3,
            activation: Default::default(),
        }
        .init(&Device::flex())
    }

    fn cfg(groups: &str) -> TrainConfig {
        toml::from_str(&format!("lr = 0.01\nweight_decay = 0.1\n{groups}")).unwrap()
    }

    #[test]
    fn prefixes_split_a_mobilenet() {
        let m = mobilenet();
        let c = cfg("[optim.groups.head]\nmatch = \"classifier.\"\nlr_scale = 10.0\nweight_decay = 0.0\n[optim.groups.stem]\nmatch = \"stem.\"\nlr = 0.5\n");
        let g = resolve(&c, &m).unwrap();
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["default", "head", "stem"]);
        assert_eq!(g[1].names, ["classifier.weight", "classifier.bias"]);
        // Burn's optimiser sees the enum variant of `Classifier` too.
        assert_eq!(
            g[1].paths,
            [
                "MobileNetV2.classifier.weight",
                "MobileNetV2.classifier.bias"
            ]
        );
        assert!((g[1].peak_lr - 0.1).abs() < 1e-15);
        assert_eq!(g[1].weight_decay, 0.0);
        assert_eq!(
            g[2].names,
            ["stem.conv.weight", "stem.bn.gamma", "stem.bn.beta"]
        );
        assert_eq!((g[2].peak_lr, g[2].weight_decay), (0.5, 0.1));
        assert_eq!(g[2].decayed(false), ["MobileNetV2.stem.conv.weight"]);
        assert_eq!(
            g[2].not_decayed(false),
            ["MobileNetV2.stem.bn.gamma", "MobileNetV2.stem.bn.beta"]
        );
        assert!(g[2].not_decayed(true).is_empty());
        // Every trainable parameter is in exactly one group; no running statistics.
        let total: usize = g.iter().map(|g| g.paths.len()).sum();
        assert_eq!(total, parameter_paths(&m).len());
        assert!(g[0].paths.iter().all(|p| !p.contains("running")));
        assert!(g[0]
            .names
            .contains(&"blocks.0.depthwise.conv.weight".to_string()));
    }

    #[test]
    fn an_unmatched_or_overlapping_group_is_named() {
        let m = mobilenet();
        let e = resolve(&cfg("[optim.groups.head]\nmatch = \"fc.\"\n"), &m)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`head`") && e.contains("fc.") && e.contains("stem.conv.weight"),
            "{e}"
        );
        let e = resolve(
            &cfg(
                "[optim.groups.a]\nmatch = \"blocks.\"\n[optim.groups.b]\nmatch = \"blocks.1.\"\n",
            ),
            &m,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`a`") && e.contains("`b`") && e.contains("blocks.1."),
            "{e}"
        );
    }
}
