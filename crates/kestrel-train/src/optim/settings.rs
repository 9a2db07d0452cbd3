//! The optimiser keys of a training configuration: the `[optim]` table (algorithm, its
//! hyper-parameters, parameter groups) and the schedule choice.
//!
//! ```toml
//! schedule = "step"          # cosine (default) | step | constant
//! step_size = 30             # step: epochs between decays
//! gamma = 0.1                # step: decay factor
//! weight_decay = 1e-4        # coupled L2 (sgd, nesterov, adam) or decoupled (adamw)
//! decay_norm_and_bias = false
//! l1 = 0.0
//!
//! [optim]
//! kind = "nesterov"          # sgd | nesterov | adam | adamw
//! momentum = 0.9
//!
//! [optim.groups.head]
//! match = "classifier."      # a prefix of the dotted parameter path
//! lr_scale = 10.0            # or `lr = 0.1`, the group's own peak learning rate
//! weight_decay = 0.0
//! ```

use crate::error::{Result, TrainError};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// The optimisation algorithm, with PyTorch's update rules and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// `torch.optim.SGD` with heavy-ball momentum (dampening 0); coupled weight decay.
    Sgd,
    /// `torch.optim.SGD(nesterov=True)`; coupled weight decay.
    Nesterov,
    /// `torch.optim.Adam` (eps 1e-8); coupled weight decay (`grad += wd · w`).
    Adam,
    /// `torch.optim.AdamW` (eps 1e-8); decoupled weight decay (`w -= lr · wd · w`).
    AdamW,
}

/// Every name `--optimizer` accepts.
pub const OPTIM_NAMES: [&str; 4] = ["sgd", "nesterov", "adam", "adamw"];

impl OptimKind {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            OptimKind::Sgd => "sgd",
            OptimKind::Nesterov => "nesterov",
            OptimKind::Adam => "adam",
            OptimKind::AdamW => "adamw",
        }
    }

    /// Whether the update uses the momentum setting (the SGD family).
    pub fn is_sgd(self) -> bool {
        matches!(self, OptimKind::Sgd | OptimKind::Nesterov)
    }
}

impl FromStr for OptimKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "sgd" => OptimKind::Sgd,
            "nesterov" => OptimKind::Nesterov,
            "adam" => OptimKind::Adam,
            "adamw" => OptimKind::AdamW,
            other => {
                return Err(TrainError::BadInput(format!(
                    "bad value for `optimizer`: expected one of {}, got `{other}`",
                    OPTIM_NAMES.join(", ")
                )))
            }
        })
    }
}

/// The shape of the learning rate over a run (each after `warmup_epochs` of linear warm-up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Half-cosine decay from the peak to 0 at the last step (`CosineAnnealingLR`, η_min 0).
    #[default]
    Cosine,
    /// The peak times `gamma` every `step_size` epochs (`StepLR`).
    Step,
    /// The peak throughout.
    Constant,
}

/// Every name `--schedule` accepts.
pub const SCHEDULE_NAMES: [&str; 3] = ["cosine", "step", "constant"];

impl FromStr for ScheduleKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "cosine" => ScheduleKind::Cosine,
            "step" => ScheduleKind::Step,
            "constant" => ScheduleKind::Constant,
            other => {
                return Err(TrainError::BadInput(format!(
                    "bad value for `schedule`: expected one of {}, got `{other}`",
                    SCHEDULE_NAMES.join(", ")
                )))
            }
        })
    }
}

/// One `[optim.groups.NAME]` table: the parameters whose dotted path starts with `match`, with
/// their own peak learning rate and weight decay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// A prefix of the dotted parameter path (`classifier.`, `blocks.3.`, `layer4.`); plain
    /// text, not a pattern.
    #[serde(rename = "match")]
    pub prefix: String,
    /// The group's peak learning rate (the schedule's shape applies to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// The group's peak learning rate as a multiple of `lr` (1 when neither is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_scale: Option<f64>,
    /// The group's weight decay (the run's `weight_decay` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
}

/// The name the parameters of no group report their learning rate under.
pub const DEFAULT_GROUP: &str = "default";

/// The `[optim]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSettings {
    /// The algorithm; when absent, the top-level `optimizer` (sgd or adamw) decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<OptimKind>,
    /// SGD momentum (0: none; PyTorch's dampening 0).
    pub momentum: f64,
    /// Adam's (β₁, β₂).
    pub betas: [f64; 2],
    /// Adam's ε (PyTorch's 1e-8; Burn's default is 1e-5).
    pub eps: f64,
    /// Parameter groups by name (`default` is reserved for the parameters of no group).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "groups_naming_the_group"
    )]
    pub groups: BTreeMap<String, GroupConfig>,
}

impl Default for OptimSettings {
    fn default() -> Self {
        Self {
            kind: None,
            momentum: 0.9,
            betas: [0.9, 0.999],
            eps: 1e-8,
            groups: BTreeMap::new(),
        }
    }
}

/// Reads the groups one by one so that a bad key's message names its group.
fn groups_naming_the_group<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, GroupConfig>, D::Error> {
    let raw = BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(name, value)| {
            value
                .try_into::<GroupConfig>()
                .map(|g| (name.clone(), g))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "in parameter group `{name}` ([optim.groups.{name}]): {}",
                        e.to_string().trim()
                    ))
                })
        })
        .collect()
}

impl OptimSettings {
    /// Checks the values that do not depend on the model; messages name the key (and group).
    pub fn validate(&self, kind: OptimKind) -> Result<()> {
        let bad = |field: &str, want: &str, got: String| {
            Err(TrainError::BadInput(format!(
                "bad value for `{field}`: expected {want}, got {got}"
            )))
        };
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "optim.momentum",
                "a number in [0, 1)",
                self.momentum.to_string(),
            );
        }
        if kind == OptimKind::Nesterov && self.momentum == 0.0 {
            return bad(
                "optim.momentum",
                "a positive momentum with `nesterov`",
                "0".into(),
            );
        }
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return bad(
                    &format!("optim.betas[{i}]"),
                    "a number in [0, 1)",
                    b.to_string(),
                );
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("optim.eps", "a positive number", self.eps.to_string());
        }
        for (name, g) in &self.groups {
            let key = |k: &str| format!("optim.groups.{name}.{k}");
            if name == DEFAULT_GROUP {
                return bad(
                    "optim.groups",
                    "group names other than `default` (it names the parameters of no group)",
                    format!("`{name}`"),
                );
            }
            if g.prefix.is_empty() {
                return bad(&key("match"), "a non-empty path prefix", "\"\"".into());
            }
            match (g.lr, g.lr_scale) {
                (Some(_), Some(_)) => {
                    return bad(
                        &key("lr"),
                        "either `lr` or `lr_scale`, not both",
                        "both".into(),
                    )
                }
                (Some(v), None) | (None, Some(v)) if !(v.is_finite() && v > 0.0) => {
                    let k = if g.lr.is_some() { "lr" } else { "lr_scale" };
                    return bad(&key(k), "a positive number", v.to_string());
                }
                _ => {}
            }
            if let Some(wd) = g.weight_decay {
                if !(wd.is_finite() && wd >= 0.0) {
                    return bad(
                        &key("weight_decay"),
                        "a non-negative number",
                        wd.to_string(),
                    );
                }
            }
        }
        Ok(())
    }
}

impl GroupConfig {
    /// The group's peak learning rate for a run whose peak is `lr`.
    pub fn peak_lr(&self, lr: f64) -> f64 {
        self.lr.unwrap_or(lr * self.lr_scale.unwrap_or(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<OptimSettings, String> {
        toml::from_str::<OptimSettings>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn groups_read_and_round_trip() {
        let s = parse(
            "kind = \"nesterov\"\n[groups.head]\nmatch = \"classifier.\"\nlr_scale = 10\nweight_decay = 0.0\n",
        )
        .unwrap();
        assert_eq!(s.kind, Some(OptimKind::Nesterov));
        let g = &s.groups["head"];
        assert_eq!(g.prefix, "classifier.");
        assert_eq!(g.peak_lr(0.01), 0.1);
        assert_eq!(g.weight_decay, Some(0.0));
        let back: OptimSettings = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        // Through JSON too (checkpoint metadata).
        let back: OptimSettings =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        // Defaults are PyTorch's.
        let d = OptimSettings::default();
        assert_eq!((d.momentum, d.betas, d.eps), (0.9, [0.9, 0.999], 1e-8));
    }

    #[test]
    fn an_unknown_group_key_names_the_group_and_the_key() {
        let e = parse("[groups.head]\nmatch = \"fc.\"\nlr_scal = 2.0\n").unwrap_err();
        assert!(e.contains("`head`") && e.contains("lr_scal"), "{e}");
        let e = parse("[groups.head]\nlr = 2.0\n").unwrap_err();
        assert!(e.contains("`head`") && e.contains("match"), "{e}");
        let e = parse("momentun = 0.9\n").unwrap_err();
        assert!(e.contains("momentun"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let check = |text: &str, kind: OptimKind| {
            parse(text).unwrap().validate(kind).unwrap_err().to_string()
        };
        let e = check(
            "[groups.fc]\nmatch = \"fc.\"\nlr = 1.0\nlr_scale = 2.0\n",
            OptimKind::Sgd,
        );
        assert!(
            e.contains("optim.groups.fc.lr") && e.contains("not both"),
            "{e}"
        );
        let e = check(
            "[groups.fc]\nmatch = \"fc.\"\nlr_scale = -1.0\n",
            OptimKind::Sgd,
        );
        assert!(e.contains("optim.groups.fc.lr_scale"), "{e}");
        let e = check("[groups.default]\nmatch = \"fc.\"\n", OptimKind::Sgd);
        assert!(e.contains("default"), "{e}");
        let e = check("momentum = 0.0\n", OptimKind::Nesterov);
        assert!(e.contains("optim.momentum"), "{e}");
        let e = check("betas = [0.9, 1.0]\n", OptimKind::Adam);
        assert!(e.contains("optim.betas[1]"), "{e}");
        assert!(parse("momentum = 0.0\n")
            .unwrap()
            .validate(OptimKind::Sgd)
            .is_ok());
        let e = "rmsprop".parse::<OptimKind>().unwrap_err().to_string();
        assert!(e.contains("rmsprop") && e.contains("nesterov"), "{e}");
        let e = "linear".parse::<ScheduleKind>().unwrap_err().to_string();
        assert!(e.contains("linear") && e.contains("step"), "{e}");
    }
}
