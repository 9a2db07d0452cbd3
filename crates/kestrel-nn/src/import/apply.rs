//! Setting a kestrel classifier's parameters and BatchNorm statistics from a torchvision state
//! dict, matched by module path (see [`super::torchvision_names`]).
//!
//! Every tensor of the model must be found with the right shape, and every key of the state
//! dict used (BatchNorm's integer `num_batches_tracked` is ignored); otherwise nothing is set and
//! the error lists all the differences. Linear weights are transposed (PyTorch stores
//! (out, in), Burn (in, out)); convolution weights have the same layout in both.

use super::error::ImportError;
use super::mismatch::Mismatch;
use super::state_dict::{StateDict, TensorEntry};
use super::torchvision_names::{guess_arch, mobilenet_v2_name, resnet_name};
use crate::layers::params::for_each_tensor;
use crate::models::mobilenet_v2::MobileNetV2;
use crate::models::resnet::ResNet;
use crate::models::zoo::Classifier;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use std::collections::{HashMap, HashSet};

/// The model's name for messages: `mobilenet-v2`, `resnet18`, `resnet34`, `resnet50`.
pub(super) fn model_name(model: &Classifier) -> String {
    match model {
        Classifier::MobileNetV1(_) => "mobilenet-v1".into(),
        Classifier::MobileNetV2(_) => "mobilenet-v2".into(),
        Classifier::ResNet(r) => resnet_model_name(r),
    }
}

/// A ResNet's name for messages (`resnet18`, ...), from its stages.
pub(super) fn resnet_model_name(r: &ResNet) -> String {
    let depth = [&r.layer1, &r.layer2, &r.layer3, &r.layer4].map(|l| l.len());
    let bottleneck = r.layer1.first().is_some_and(|b| b.conv3.is_some());
    match (bottleneck, depth) {
        (false, [2, 2, 2, 2]) => "resnet18".into(),
        (false, [3, 4, 6, 3]) => "resnet34".into(),
        (true, [3, 4, 6, 3]) => "resnet50".into(),
        _ => "ResNet".into(),
    }
}

/// Matches the model's tensors to state-dict entries: kestrel path → entry, or every problem.
fn plan<'a, M: Module>(
    model: &M,
    torch_name: impl Fn(&str) -> Option<String>,
    expected: String,
    sd: &'a StateDict,
) -> Result<HashMap<String, &'a TensorEntry>, Box<Mismatch>> {
    let mut m = Mismatch {
        expected,
        ..Default::default()
    };
    let mut plan = HashMap::new();
    let mut used = HashSet::new();
    for_each_tensor(model, |path, shape| {
        let Some(name) = torch_name(path) else {
            m.missing.push(format!(
                "{path} (a kestrel tensor torchvision does not have)"
            ));
            return;
        };
        let Some(t) = sd.get(&name) else {
            m.missing.push(name);
            return;
        };
        used.insert(name.clone());
        let want: Vec<usize> = match shape {
            [i, o] => vec![*o, *i],
            s => s.to_vec(),
        };
        if t.shape != want {
            m.shapes.push((name, want, t.shape.clone()));
        } else if t.as_f32().is_none() {
            m.not_float.push(name);
        } else {
            plan.insert(path.to_string(), t);
        }
    });
    m.unexpected = sd
        .keys()
        .filter(|k| !used.contains(*k) && !k.ends_with("num_batches_tracked"))
        .map(str::to_string)
        .collect();
    if m.is_empty() {
        Ok(plan)
    } else {
        let keys: Vec<&str> = sd.keys().collect();
        m.detected = guess_arch(keys.iter().copied());
        Err(Box::new(m))
    }
}

/// A mapper replacing each planned tensor (keyed by its dotted module path) by the state dict's
/// values, transposing 2-D (Linear) weights from PyTorch's (out, in) when `transpose` is set.
pub(super) struct Setter<'a> {
    pub(super) path: Vec<String>,
    pub(super) plan: HashMap<String, &'a TensorEntry>,
    pub(super) transpose: bool,
}

impl ModuleMapper for Setter<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(entry) = self.plan.get(&self.path.join(".")) else {
            return param;
        };
        let values = entry.as_f32().expect("planned tensors are float");
        param.map(|old| {
            let shape = old.dims();
            let data = if D == 2 && self.transpose {
                // PyTorch (out, in) row-major → Burn (in, out).
                let (i_n, o_n) = (shape[0], shape[1]);
                (0..i_n * o_n)
                    .map(|k| values[(k % o_n) * i_n + k / o_n])
                    .collect()
            } else {
                values.to_vec()
            };
            let grad = old.is_require_grad();
            Tensor::<D>::from_data(TensorData::new(data, shape), &old.device())
                .set_require_grad(grad)
        })
    }
}

fn set<M: Module>(
    model: M,
    torch_name: impl Fn(&str) -> Option<String>,
    expected: String,
    sd: &StateDict,
) -> Result<M, ImportError> {
    let plan =
        plan(&model, torch_name, expected, sd).map_err(|mismatch| ImportError::Mismatch {
            path: None,
            mismatch,
        })?;
    Ok(model.map(&mut Setter {
        path: Vec::new(),
        plan,
        transpose: true,
    }))
}

fn apply_mobilenet_v2(m: MobileNetV2, sd: &StateDict) -> Result<MobileNetV2, ImportError> {
    let expand: Vec<bool> = m.blocks.iter().map(|b| b.expand.is_some()).collect();
    let blocks = m.blocks.len();
    let name = |p: &str| mobilenet_v2_name(p, |b| expand.get(b).copied().unwrap_or(false), blocks);
    set(m, name, "mobilenet-v2".into(), sd)
}

fn apply_resnet(m: ResNet, expected: String, sd: &StateDict) -> Result<ResNet, ImportError> {
    set(m, resnet_name, expected, sd)
}

/// Sets every parameter and BatchNorm running statistic of `model` (a MobileNetV2 or ResNet,
/// any width or class count) from a torchvision state dict. On any missing, unexpected,
/// mis-shaped or integer key, nothing is set and [`ImportError::Mismatch`] lists them all.
pub fn apply_state_dict(model: Classifier, sd: &StateDict) -> Result<Classifier, ImportError> {
    let expected = model_name(&model);
    match model {
        Classifier::MobileNetV2(m) => apply_mobilenet_v2(m, sd).map(Classifier::MobileNetV2),
        Classifier::ResNet(m) => apply_resnet(m, expected, sd).map(Classifier::ResNet),
        Classifier::MobileNetV1(_) => Err(ImportError::UnsupportedArch {
            arch: expected,
            detail: "torchvision has no MobileNet V1, so there are no weights to map".into(),
        }),
    }
}
