//! Fine-tuning: the weights of a file loaded into any kestrel model whose backbone they fit.
//!
//! Where [`super::apply_state_dict`] rebuilds one torchvision classifier exactly, [`fit_weights`]
//! serves `kestrel train --weights`: the backbone (every tensor of the MobileNet or ResNet feature
//! extractor, BatchNorm statistics included) must load, while the heads may differ from the
//! file's — another class count, or an FCN's score layers where the file holds an ImageNet
//! classifier. Those keep their fresh initialisation and the [`FitReport`] names them, with the
//! file's keys nothing used.
//!
//! Keys name tensors one of two ways ([`Naming`]): torchvision's state-dict names, or kestrel's
//! own, as [`kestrel_state_dict`] writes them from a trained model (so a kestrel checkpoint of
//! one task seeds another: a classifier's backbone under an FCN).

use super::apply::{resnet_model_name, Setter};
use super::error::ImportError;
use super::mismatch::Mismatch;
use super::state_dict::{StateDict, TensorEntry};
use super::torchvision_names::{guess_arch, mobilenet_v2_name, resnet_name};
use crate::layers::params::PathStack;
use crate::models::fcn::{Fcn, FcnBackbone};
use crate::models::mobilenet_v2::MobileNetV2;
use crate::models::multitask::MultiTask;
use crate::models::resnet::ResNet;
use crate::models::zoo::Classifier;
use crate::tensor_values::to_f32_vec;
use crate::Model;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// How the keys of a state dict name a model's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// torchvision's names (`features.3.conv.1.0.weight`), Linear weights stored (out, in).
    Torchvision,
    /// kestrel's, as [`kestrel_state_dict`] writes them: a backbone tensor by its name inside the
    /// backbone (`blocks.2.project.conv.weight`), any other tensor as `head.` and its name in the
    /// model; Linear weights (in, out), as Burn keeps them.
    Kestrel,
}

/// What [`fit_weights`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FitReport {
    /// Tensors set from the file (parameters and BatchNorm running statistics).
    pub loaded: usize,
    /// Tensors left as initialised, by name (`classifier.weight`, `score32.weight`): heads the
    /// file lacks or holds in another shape.
    pub reinitialised: Vec<String>,
    /// Keys of the file the model has no place for, or holds in another shape
    /// (`num_batches_tracked` left out).
    pub unused: Vec<String>,
}

/// A network on a MobileNet or ResNet feature extractor: what [`fit_weights`] needs to know.
pub trait HasBackbone: Module {
    /// The backbone's name inside the model (a variant-free dotted path) with a trailing dot;
    /// empty when the model is the backbone with its classifier.
    const BACKBONE: &'static str;
    /// The feature extractor.
    fn backbone(&self) -> Backbone<'_>;
}

/// A model's feature extractor.
pub enum Backbone<'a> {
    /// MobileNet V1 (torchvision has none).
    MobileNetV1,
    /// MobileNetV2.
    MobileNetV2(&'a MobileNetV2),
    /// A ResNet.
    ResNet(&'a ResNet),
}

impl HasBackbone for Classifier {
    const BACKBONE: &'static str = "";
    fn backbone(&self) -> Backbone<'_> {
        match self {
            Classifier::MobileNetV1(_) => Backbone::MobileNetV1,
            Classifier::MobileNetV2(m) => Backbone::MobileNetV2(m),
            Classifier::ResNet(r) => Backbone::ResNet(r),
        }
    }
}

impl HasBackbone for Fcn {
    const BACKBONE: &'static str = "backbone.";
    fn backbone(&self) -> Backbone<'_> {
        match &self.backbone {
            FcnBackbone::MobileNetV2(m) => Backbone::MobileNetV2(m),
            FcnBackbone::ResNet(r) => Backbone::ResNet(r),
        }
    }
}

impl HasBackbone for MultiTask {
    const BACKBONE: &'static str = "fcn.backbone.";
    fn backbone(&self) -> Backbone<'_> {
        self.fcn.backbone()
    }
}

/// Where a tensor of the model sits: in the backbone (with its name inside it), or elsewhere.
enum Role<'a> {
    Backbone(&'a str),
    Head,
}

fn role<M: HasBackbone>(name: &str) -> Role<'_> {
    name.strip_prefix(M::BACKBONE)
        .map_or(Role::Head, Role::Backbone)
}

/// Whether a backbone tensor belongs to its classification layer, which a new task replaces.
fn in_classification_layer(inner: &str) -> bool {
    inner.starts_with("classifier.") || inner.starts_with("fc.")
}

/// torchvision's name for a tensor inside the model's backbone.
type TorchNamer = Box<dyn Fn(&str) -> Option<String>>;

fn torch_namer(backbone: Backbone<'_>) -> Result<TorchNamer, ImportError> {
    Ok(match backbone {
        Backbone::MobileNetV2(m) => {
            let expand: Vec<bool> = m.blocks.iter().map(|b| b.expand.is_some()).collect();
            let blocks = expand.len();
            Box::new(move |p: &str| {
                mobilenet_v2_name(p, |b| expand.get(b).copied().unwrap_or(false), blocks)
            })
        }
        Backbone::ResNet(_) => Box::new(resnet_name),
        Backbone::MobileNetV1 => {
            return Err(ImportError::UnsupportedArch {
                arch: "mobilenet-v1".into(),
                detail: "torchvision has no MobileNet V1, so its weights cannot seed one; \
                         use a kestrel checkpoint of a mobilenet-v1"
                    .into(),
            })
        }
    })
}

/// The backbone's name for messages (`mobilenet-v2`, `resnet18`, ...).
fn backbone_name(backbone: Backbone<'_>) -> String {
    match backbone {
        Backbone::MobileNetV1 => "mobilenet-v1".into(),
        Backbone::MobileNetV2(_) => "mobilenet-v2".into(),
        Backbone::ResNet(r) => resnet_model_name(r),
    }
}

/// The key of the model's tensor `name` under `naming`.
fn key_of<M: HasBackbone>(name: &str, naming: Naming, torch: &TorchNamer) -> Option<String> {
    match (role::<M>(name), naming) {
        (Role::Backbone(inner), Naming::Torchvision) => torch(inner),
        (Role::Backbone(inner), Naming::Kestrel) => Some(inner.to_string()),
        (Role::Head, Naming::Torchvision) => None,
        (Role::Head, Naming::Kestrel) => Some(format!("head.{name}")),
    }
}

/// Visits every float tensor of a model with its path and name.
struct Tensors<F> {
    at: PathStack,
    f: F,
}

impl<F: FnMut(&PathStack, &[usize], &dyn Fn() -> Vec<f32>)> ModuleVisitor for Tensors<F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.at.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.lazy_shape().dims::<D>();
        (self.f)(&self.at, &shape, &|| to_f32_vec(param.val()));
    }
}

fn visit_tensors<M: Module>(model: &M, f: impl FnMut(&PathStack, &[usize], &dyn Fn() -> Vec<f32>)) {
    let mut v = Tensors {
        at: PathStack::default(),
        f,
    };
    model.visit(&mut v);
}

/// Every tensor of `model` under [`Naming::Kestrel`]: what [`fit_weights`] reads back to seed
/// another model from this one.
pub fn kestrel_state_dict<M: HasBackbone>(model: &M) -> StateDict {
    let mut sd = StateDict::new();
    let none: TorchNamer = Box::new(|_| None);
    visit_tensors(model, |at, shape, values| {
        if let Some(key) = key_of::<M>(&at.name(), Naming::Kestrel, &none) {
            // Keys are unique: module names are.
            let _ = sd.insert(key, TensorEntry::f32(shape.to_vec(), values()));
        }
    });
    sd
}

/// [`kestrel_state_dict`] of any built network.
pub fn model_state_dict(model: &Model) -> StateDict {
    match model {
        Model::Classifier(m) => kestrel_state_dict(m.as_ref()),
        Model::Segmenter(m) => kestrel_state_dict(m.as_ref()),
        Model::Multitask(m) => kestrel_state_dict(m.as_ref()),
    }
}

/// Sets every tensor of `model` that `sd` holds in the right shape. Every backbone tensor but its
/// classification layer (which a segmentation model leaves unused and this leaves alone) must be
/// there; otherwise nothing is set and
/// [`ImportError::Mismatch`] lists what is missing or mis-shaped (with the file's unused keys).
pub fn fit_weights<M: HasBackbone>(
    model: M,
    sd: &StateDict,
    naming: Naming,
) -> Result<(M, FitReport), ImportError> {
    let torch = match naming {
        Naming::Torchvision => torch_namer(model.backbone())?,
        Naming::Kestrel => Box::new(|_: &str| None),
    };
    let mut mismatch = Mismatch {
        expected: backbone_name(model.backbone()),
        ..Default::default()
    };
    let mut report = FitReport::default();
    let mut plan: HashMap<String, &TensorEntry> = HashMap::new();
    let mut used = HashSet::new();
    visit_tensors(&model, |at, shape, _| {
        let name = at.name();
        let role = role::<M>(&name);
        if matches!(role, Role::Backbone(inner) if in_classification_layer(inner))
            && !M::BACKBONE.is_empty()
        {
            // The backbone's own classifier, which an FCN never runs: neither loaded nor
            // reported (the file's classifier shows as unused).
            return;
        }
        let required = matches!(role, Role::Backbone(inner) if !in_classification_layer(inner));
        let key = key_of::<M>(&name, naming, &torch);
        let want: Vec<usize> = match (shape, naming) {
            ([i, o], Naming::Torchvision) => vec![*o, *i],
            (s, _) => s.to_vec(),
        };
        let found = key.as_ref().and_then(|k| sd.get(k).map(|t| (k, t)));
        match found {
            Some((k, t)) if t.shape == want && t.as_f32().is_some() => {
                plan.insert(at.path(), t);
                used.insert(k.clone());
                report.loaded += 1;
            }
            Some((k, t)) if required && t.shape != want => {
                mismatch.shapes.push((k.clone(), want, t.shape.clone()))
            }
            Some((k, _)) if required => mismatch.not_float.push(k.clone()),
            None if required => mismatch.missing.push(key.unwrap_or(name)),
            _ => report.reinitialised.push(name),
        }
    });
    report.unused = sd
        .keys()
        .filter(|k| !used.contains(*k) && !k.ends_with("num_batches_tracked"))
        .map(str::to_string)
        .collect();
    if !mismatch.is_empty() {
        mismatch.unexpected = report.unused;
        if naming == Naming::Torchvision {
            let keys: Vec<&str> = sd.keys().collect();
            mismatch.detected = guess_arch(keys.iter().copied());
        }
        return Err(ImportError::Mismatch {
            path: None,
            mismatch: Box::new(mismatch),
        });
    }
    let model = model.map(&mut Setter {
        path: Vec::new(),
        plan,
        transpose: naming == Naming::Torchvision,
    });
    Ok((model, report))
}
