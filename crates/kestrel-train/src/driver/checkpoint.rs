//! Checkpoint files: one file holding the run's metadata, the model's parameters and buffers, and
//! the optimiser state, written atomically so that a crash never leaves a half-written checkpoint.
//!
//! Layout: the magic `KESTREL-CKPT1\n`, then three sections, each a little-endian u64 length and
//! its bytes: metadata (JSON), model (a burnpack record), optimiser (a burnpack record; may be
//! empty).

use super::weights::WeightsRecord;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use kestrel_data::Normalize;
use kestrel_nn::models::fcn::{Fcn, SegmenterSpec};
use kestrel_nn::models::multitask::{MultiTask, MultiTaskSpec};
use kestrel_nn::{Classifier, ClassifierSpec, Model, ModelSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8] = b"KESTREL-CKPT1\n";

/// Whether the file at `path` starts as a kestrel checkpoint does (a missing file does not).
pub(crate) fn is_checkpoint(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; MAGIC.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == MAGIC)
}

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredMeta")]
pub struct CheckpointMeta {
    /// Epochs completed (1-based count).
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
    /// The run's configuration.
    pub config: TrainConfig,
    /// How to rebuild the network.
    pub spec: ModelSpec,
    /// Class names, in index order.
    pub class_names: Vec<String>,
    /// Input normalisation.
    pub normalize: Normalize,
    /// Validation metric that selects the best checkpoint, at this epoch.
    pub val_metric: f64,
    /// What `--resume` needs beyond the model and optimiser (in `last` checkpoints; absent in
    /// `best` ones and in checkpoints written before resuming existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_state: Option<LoopState>,
}

/// The metadata as stored, in any form kestrel has written: `spec` since one [`ModelSpec`]
/// describes every network; before that, a classifier spec under `model`, a segmenter under
/// `segmenter` and a multi-task model under `multitask` (which win over `model`, the backbone).
#[derive(Deserialize)]
struct StoredMeta {
    epoch: usize,
    step: usize,
    config: TrainConfig,
    #[serde(default)]
    spec: Option<ModelSpec>,
    #[serde(default)]
    model: Option<ClassifierSpec>,
    #[serde(default)]
    segmenter: Option<SegmenterSpec>,
    #[serde(default)]
    multitask: Option<MultiTaskSpec>,
    class_names: Vec<String>,
    normalize: Normalize,
    val_metric: f64,
    #[serde(default)]
    loop_state: Option<LoopState>,
}

impl TryFrom<StoredMeta> for CheckpointMeta {
    type Error = String;

    fn try_from(m: StoredMeta) -> std::result::Result<Self, String> {
        let spec = m
            .spec
            .or(m.multitask.map(ModelSpec::Multitask))
            .or(m.segmenter.map(ModelSpec::Segmenter))
            .or(m.model.map(ModelSpec::Classifier))
            .ok_or("no model description (expected a `spec` field)")?;
        Ok(Self {
            epoch: m.epoch,
            step: m.step,
            config: m.config,
            spec,
            class_names: m.class_names,
            normalize: m.normalize,
            val_metric: m.val_metric,
            loop_state: m.loop_state,
        })
    }
}

/// The training loop's own state at the end of an epoch, saved in the `last` checkpoint so that
/// a resumed run continues exactly where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Epoch (1-based) of the best checkpoint so far.
    pub best_epoch: usize,
    /// Validation metrics of that epoch as IEEE-754 bit patterns: JSON text read back by
    /// serde_json may round the last bit, and a tie with the best must compare as it did.
    pub best_val_bits: BTreeMap<String, u64>,
    /// Epochs in a row, up to this one, without a new best (the early-stopping counter).
    pub epochs_since_best: usize,
    /// Seconds spent training so far (all sessions).
    pub train_seconds: f64,
    /// The task's own state at the end of the epoch (a multi-task run's loss weighting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_state: Option<serde_json::Value>,
    /// What `--weights` loaded when the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsRecord>,
}

impl LoopState {
    /// The best epoch's validation metrics, exactly as they were computed.
    pub fn best_val(&self) -> BTreeMap<String, f64> {
        self.best_val_bits
            .iter()
            .map(|(k, &b)| (k.clone(), f64::from_bits(b)))
            .collect()
    }

    /// Stores `val` bit for bit.
    pub fn val_bits(val: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
        val.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect()
    }
}

/// A checkpoint read from disk.
pub struct Checkpoint {
    /// Its metadata.
    pub meta: CheckpointMeta,
    model: Vec<u8>,
    optimizer: Vec<u8>,
    /// The file, for errors.
    path: std::path::PathBuf,
}

/// A model's parameters and buffers as a burnpack record, ready for [`save`].
pub fn encode_model<M: Module>(model: &M) -> Result<Vec<u8>> {
    Ok(model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| TrainError::Runtime(format!("cannot serialise the model: {e}")))?
        .to_vec())
}

/// Writes a checkpoint atomically: `model_bytes` from [`encode_model`], so that one encoding serves
/// both the `last` and the `best` checkpoint of an epoch. Layout: magic, then (length, bytes) of
/// metadata, model and optimiser.
pub fn save(
    path: &Path,
    meta: &CheckpointMeta,
    model_bytes: &[u8],
    optimizer: Option<&ModuleOptimizer>,
) -> Result<()> {
    let runtime = |what: &str, e: String| {
        TrainError::Runtime(format!("cannot save {what} to {}: {e}", path.display()))
    };
    let meta_bytes = serde_json::to_vec(meta).map_err(|e| runtime("metadata", e.to_string()))?;
    let optim_bytes = match optimizer {
        Some(o) => o
            .into_bytes()
            .map_err(|e| runtime("optimiser", e.to_string()))?
            .to_vec(),
        None => Vec::new(),
    };
    let mut out = Vec::with_capacity(
        MAGIC.len() + 24 + meta_bytes.len() + model_bytes.len() + optim_bytes.len(),
    );
    out.extend_from_slice(MAGIC);
    for section in [&meta_bytes[..], model_bytes, &optim_bytes[..]] {
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
        out.extend_from_slice(section);
    }
    super::run_dir::write(path, &out)
}

impl Checkpoint {
    /// Reads a checkpoint; a missing, truncated or foreign file is bad input naming the file, and
    /// so is metadata that does not pass `CheckpointMeta::check` (see [`Checkpoint::from_bytes`]).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            TrainError::BadInput(format!("{}: cannot read checkpoint ({e})", path.display()))
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a checkpoint file; `path` names it in errors. Each section's length is
    /// checked against the bytes that remain, and the metadata by `CheckpointMeta::check`; the
    /// network of the spec is built later, by [`Checkpoint::load_model`] and its kin, once
    /// `CheckpointMeta::check_record` has found the model record large enough for it.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |why: &str| TrainError::BadInput(format!("{}: {why}", path.display()));
        let mut rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a kestrel checkpoint (bad magic)"))?;
        let mut sections = Vec::new();
        for _ in 0..3 {
            if rest.len() < 8 {
                return Err(bad("truncated checkpoint"));
            }
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            rest = &rest[8..];
            if (rest.len() as u64) < len {
                return Err(bad(&format!(
                    "truncated checkpoint: a section of {len} bytes, {} bytes left in the file",
                    rest.len()
                )));
            }
            let len = len as usize;
            sections.push(rest[..len].to_vec());
            rest = &rest[len..];
        }
        let optimizer = sections.pop().expect("three sections");
        let model = sections.pop().expect("three sections");
        let meta: CheckpointMeta = serde_json::from_slice(&sections[0])
            .map_err(|e| bad(&format!("bad checkpoint metadata ({e})")))?;
        meta.check().map_err(|e| bad(&e))?;
        Ok(Self {
            meta,
            model,
            optimizer,
            path: path.to_path_buf(),
        })
    }

    fn record(&self) -> Result<ModuleRecord> {
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model.clone()))
            .map_err(|e| TrainError::BadInput(format!("bad model record in checkpoint: {e}")))
    }

    /// Bad input naming the file unless the model record can hold the network of the spec (see
    /// `CheckpointMeta::check_record`); called before that network is built.
    pub fn check_record(&self) -> Result<()> {
        self.meta
            .check_record(self.model.len())
            .map_err(|e| TrainError::BadInput(format!("{}: {e}", self.path.display())))
    }

    /// Loads the saved parameters and buffers into `model`, built from the checkpoint's spec.
    pub fn load_into<M: Module>(&self, model: M) -> Result<M> {
        model
            .try_load_record(self.record()?)
            .map_err(|e| TrainError::BadInput(format!("checkpoint does not fit its model: {e}")))
    }

    /// Rebuilds the network on `device` with the saved parameters and running statistics.
    pub fn load_model(&self, device: &Device) -> Result<Model> {
        Ok(match &self.meta.spec {
            ModelSpec::Classifier(_) => Model::Classifier(Box::new(self.model(device)?)),
            ModelSpec::Segmenter(_) => Model::Segmenter(Box::new(self.segmenter(device)?)),
            ModelSpec::Multitask(_) => Model::Multitask(Box::new(self.multitask_model(device)?)),
        })
    }

    /// A spec that cannot be built is bad input.
    fn bad_spec(&self, e: kestrel_nn::upsample::UpsampleError) -> TrainError {
        TrainError::BadInput(format!(
            "bad {} model in checkpoint: {e}",
            self.meta.spec.task()
        ))
    }

    /// What the checkpoint holds, for a message that it holds the wrong kind.
    fn holds(&self, wanted: &str) -> TrainError {
        let what = match &self.meta.spec {
            ModelSpec::Classifier(s) => format!("the classifier {}", s.arch),
            ModelSpec::Segmenter(s) => format!("the segmentation model {}", s.name),
            ModelSpec::Multitask(s) => format!(
                "the multitask model {} (classify + segment); `kestrel eval` reads it",
                s.backbone
            ),
        };
        TrainError::BadInput(format!("the checkpoint holds {what}, not {wanted}"))
    }

    /// Rebuilds the classifier on `device`; any other checkpoint is bad input.
    pub fn model(&self, device: &Device) -> Result<Classifier> {
        match &self.meta.spec {
            ModelSpec::Classifier(spec) => {
                self.check_record()?;
                self.load_into(spec.init(device))
            }
            _ => Err(self.holds("a classifier")),
        }
    }

    /// Rebuilds the segmentation model on `device`; any other checkpoint is bad input.
    pub fn segmenter(&self, device: &Device) -> Result<Fcn> {
        match &self.meta.spec {
            ModelSpec::Segmenter(spec) => {
                self.check_record()?;
                self.load_into(spec.init(device).map_err(|e| self.bad_spec(e))?)
            }
            _ => Err(self.holds("a segmentation model")),
        }
    }

    /// Rebuilds the multi-task model on `device`; any other checkpoint is bad input.
    pub fn multitask_model(&self, device: &Device) -> Result<MultiTask> {
        match &self.meta.spec {
            ModelSpec::Multitask(spec) => {
                self.check_record()?;
                self.load_into(spec.init(device).map_err(|e| self.bad_spec(e))?)
            }
            _ => Err(self.holds("a multitask model")),
        }
    }

    /// Restores the optimiser state into `optimizer`, when the checkpoint has one.
    pub fn optimizer(&self, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
        if self.optimizer.is_empty() {
            return Ok(optimizer);
        }
        optimizer
            .from_bytes(Bytes::from_bytes_vec(self.optimizer.clone()))
            .map_err(|e| TrainError::BadInput(format!("bad optimiser state in checkpoint: {e}")))
    }
}

/// Every float of `v` replaced by `{"f64": bits}`: exact through JSON text, which a plain float
/// may not be when read back.
pub fn exact_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            serde_json::json!({ "f64": n.as_f64().unwrap_or(f64::NAN).to_bits() })
        }
        Value::Array(a) => Value::Array(a.into_iter().map(exact_json).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, exact_json(v))).collect()),
        other => other,
    }
}

/// The inverse of [`exact_json`].
pub fn from_exact_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(o) if o.len() == 1 && o.get("f64").is_some_and(Value::is_u64) => {
            let bits = o["f64"].as_u64().unwrap_or(0);
            serde_json::Number::from_f64(f64::from_bits(bits)).map_or(Value::Null, Value::Number)
        }
        Value::Array(a) => Value::Array(a.iter().map(from_exact_json).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), from_exact_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> ClassifierSpec {
        ClassifierSpec {
            arch: kestrel_nn::Arch::MobileNetV2,
            width: 0.25,
            num_classes: 3,
            activation: Default::default(),
        }
    }

    fn meta(segmenter: Option<SegmenterSpec>) -> CheckpointMeta {
        CheckpointMeta {
            epoch: 1,
            step: 3,
            config: TrainConfig::default(),
            spec: segmenter.map_or(ModelSpec::Classifier(classifier()), ModelSpec::Segmenter),
            class_names: vec!["a".into(), "b".into(), "c".into()],
            normalize: Normalize::IMAGENET,
            val_metric: 0.5,
            loop_state: None,
        }
    }

    #[test]
    fn classification_metadata_keeps_its_old_form_and_segmenters_round_trip() {
        // Written before segmentation: no `segmenter` key; it still reads (as a classifier).
        let json = serde_json::to_value(meta(None)).unwrap();
        assert!(json.get("segmenter").is_none(), "{json}");
        let back: CheckpointMeta = serde_json::from_value(json).unwrap();
        assert_eq!(back, meta(None));
        let seg = SegmenterSpec {
            name: "fcn8s-mobilenet-v2".parse().unwrap(),
            width: 0.25,
            num_classes: 3,
            output_stride: 32,
            upsampler: kestrel_nn::upsample::UpsamplerKind::Transposed,
        };
        let text = serde_json::to_string(&meta(Some(seg.clone()))).unwrap();
        let back: CheckpointMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(back.spec, ModelSpec::Segmenter(seg));
    }

    #[test]
    fn exact_json_keeps_every_bit_through_text() {
        let v = serde_json::json!({"s": [0.1 + 0.2, -1e-300, 3.0], "t": 7, "name": "x"});
        let text = serde_json::to_string(&exact_json(v.clone())).unwrap();
        let back = from_exact_json(&serde_json::from_str(&text).unwrap());
        assert_eq!(back, v);
        assert_eq!(
            back["s"][0].as_f64().unwrap().to_bits(),
            (0.1f64 + 0.2).to_bits()
        );
        assert_eq!(back["t"], 7);
    }

    #[test]
    fn loop_state_keeps_every_bit_of_the_best_metrics() {
        // 0.1 + 0.2 has a 17-digit shortest form, the kind a best-effort float parser may round.
        let val: BTreeMap<String, f64> = [("accuracy".to_string(), 0.1 + 0.2)].into();
        let m = CheckpointMeta {
            loop_state: Some(LoopState {
                best_epoch: 2,
                best_val_bits: LoopState::val_bits(&val),
                epochs_since_best: 1,
                train_seconds: 3.5,
                task_state: None,
                weights: None,
            }),
            ..meta(None)
        };
        let back: CheckpointMeta =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        let state = back.loop_state.unwrap();
        assert_eq!(
            state.best_val()["accuracy"].to_bits(),
            (0.1f64 + 0.2).to_bits()
        );
        assert_eq!(state.epochs_since_best, 1);
    }

    #[test]
    fn a_checkpoint_gives_only_the_model_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let m = meta(None);
        let model = classifier().init(&device);
        let path = dir.path().join("c.ckpt");
        save(&path, &m, &encode_model(&model).unwrap(), None).unwrap();
        let ckpt = Checkpoint::load(&path).unwrap();
        assert!(ckpt.model(&device).is_ok());
        let e = ckpt.segmenter(&device).err().unwrap().to_string();
        assert!(e.contains("classifier"), "{e}");
        assert!(ckpt.multitask_model(&device).is_err());
    }

    #[test]
    fn a_multitask_checkpoint_reloads_its_model_and_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let spec = MultiTaskSpec {
            backbone: "fcn8s-mobilenet-v2".parse().unwrap(),
            width: 0.25,
            num_classes: 3,
            seg_classes: 4,
            upsampler: kestrel_nn::upsample::UpsamplerKind::Bilinear,
            cascade: true,
        };
        let model = spec.init(&device).unwrap();
        let path = dir.path().join("m.ckpt");
        let m = CheckpointMeta {
            spec: ModelSpec::Multitask(spec.clone()),
            ..meta(None)
        };
        save(&path, &m, &encode_model(&model).unwrap(), None).unwrap();
        let ckpt = Checkpoint::load(&path).unwrap();
        assert_eq!(ckpt.meta.spec, ModelSpec::Multitask(spec));
        assert_eq!(ckpt.meta, m);
        let back = ckpt.multitask_model(&device).unwrap();
        let x = burn::tensor::Tensor::<4>::ones([1, 3, 32, 32], &device);
        let (a, _) = model.forward(x.clone());
        let (b, _) = back.forward(x);
        assert_eq!(
            a.into_data().try_to_vec::<f32>().unwrap(),
            b.into_data().try_to_vec::<f32>().unwrap()
        );
        for e in [
            ckpt.model(&device).err().unwrap().to_string(),
            ckpt.segmenter(&device).err().unwrap().to_string(),
        ] {
            assert!(e.contains("multitask"), "{e}");
        }
    }

    /// Checkpoints written by kestrel before [`ModelSpec`] (the three tasks' `best` checkpoints of
    /// tiny runs, made by `tools/legacy_checkpoints.sh` with commit a4108e3) still load, as the
    /// model they hold.
    #[test]
    fn checkpoints_written_before_model_spec_still_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let device = Device::flex();
        let load = |name: &str| Checkpoint::load(&dir.join(name)).unwrap();

        let c = load("legacy-classify.ckpt");
        let ModelSpec::Classifier(spec) = &c.meta.spec else {
            panic!("{:?}", c.meta.spec)
        };
        assert_eq!(
            (spec.arch, spec.width),
            (kestrel_nn::Arch::MobileNetV1, 0.25)
        );
        assert_eq!(spec.num_classes, c.meta.class_names.len());
        assert!(matches!(
            c.load_model(&device).unwrap(),
            Model::Classifier(_)
        ));

        let s = load("legacy-segment.ckpt");
        let ModelSpec::Segmenter(spec) = &s.meta.spec else {
            panic!("{:?}", s.meta.spec)
        };
        assert_eq!(spec.name.to_string(), "fcn32s-mobilenet-v2");
        assert_eq!(spec.num_classes, s.meta.class_names.len());
        assert!(s.segmenter(&device).is_ok());
        assert!(s.model(&device).is_err());

        let m = load("legacy-multitask.ckpt");
        let ModelSpec::Multitask(spec) = &m.meta.spec else {
            panic!("{:?}", m.meta.spec)
        };
        assert_eq!(spec.backbone.to_string(), "fcn32s-mobilenet-v2");
        assert!(m.multitask_model(&device).is_ok());
        assert!(m.segmenter(&device).is_err());
        // Written again, the metadata has the one `spec` field and reads back the same.
        let text = serde_json::to_value(&m.meta).unwrap();
        assert!(text.get("multitask").is_none() && text.get("spec").is_some());
        let back: CheckpointMeta = serde_json::from_value(text).unwrap();
        assert_eq!(back, m.meta);
    }

    /// The activations of a classifier's conv → BN → activation units, in order.
    fn activations(model: Classifier) -> Vec<kestrel_nn::Activation> {
        use kestrel_nn::MapConvBnAct;
        let mut out = Vec::new();
        model.map_conv_bn_act(&mut |c| {
            out.push(c.activation);
            c
        });
        out
    }

    /// A MobileNetV2 checkpoint written before the `activation` setting existed (the `best`
    /// checkpoint of `kestrel train --data shapes:n=48,size=32,classes=2 --width 0.25
    /// --resolution 32 --epochs 1 --batch-size 8 --model mobilenet-v2`, by a kestrel built from
    /// commit e19405b) loads as the ReLU6 network it was trained as. A ReLU checkpoint saved and
    /// read back builds ReLU layers; metadata that asks a ResNet for ReLU is refused.
    #[test]
    fn checkpoints_written_before_activation_load_as_relu6() {
        use kestrel_nn::{Activation, Arch, HiddenActivation};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let path = dir.join("legacy-mobilenet-v2.ckpt");
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(10).any(|w| w == b"activation"));
        let c = Checkpoint::load(&path).unwrap();
        let ModelSpec::Classifier(spec) = &c.meta.spec else {
            panic!("{:?}", c.meta.spec)
        };
        assert_eq!(spec.arch, Arch::MobileNetV2);
        assert_eq!(spec.activation, HiddenActivation::Relu6);
        assert_eq!(c.meta.config.activation, HiddenActivation::Relu6);
        let device = Device::flex();
        let acts = activations(c.model(&device).unwrap());
        assert!(acts.contains(&Activation::Relu6) && !acts.contains(&Activation::Relu));
        let json = serde_json::to_value(&c.meta).unwrap();
        assert_eq!(json["spec"]["classifier"]["activation"], "relu6");
        assert_eq!(json["config"]["activation"], "relu6");

        let relu = ClassifierSpec {
            activation: HiddenActivation::Relu,
            ..spec.clone()
        };
        let mut meta = c.meta.clone();
        meta.spec = ModelSpec::Classifier(relu.clone());
        meta.config.activation = HiddenActivation::Relu;
        let tmp = tempfile::tempdir().unwrap();
        let saved = tmp.path().join("relu.ckpt");
        let model = c.load_into(relu.init(&device)).unwrap();
        save(&saved, &meta, &encode_model(&model).unwrap(), None).unwrap();
        let back = Checkpoint::load(&saved).unwrap();
        assert_eq!(back.meta, meta);
        let relu_acts = activations(back.model(&device).unwrap());
        let swapped: Vec<Activation> = acts
            .iter()
            .map(|&a| match a {
                Activation::Relu6 => Activation::Relu,
                other => other,
            })
            .collect();
        assert_eq!(relu_acts, swapped);

        meta.spec = ModelSpec::Classifier(ClassifierSpec {
            arch: Arch::ResNet18,
            ..relu
        });
        let e = meta.check().unwrap_err();
        assert!(e.contains("activation") && e.contains("resnet18"), "{e}");
    }
}
