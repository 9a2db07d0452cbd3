//! Checking a checkpoint's metadata before anything is built from it: a checkpoint may come from
//! anywhere, and its spec decides how much memory the network takes.

use super::checkpoint::CheckpointMeta;
use kestrel_nn::{ClassifierSpec, ModelSpec};

/// Bytes per parameter a model record holds at the least (half precision, the narrowest float a
/// record stores): a record of `n` bytes holds at most `n / 2` parameters.
pub const MIN_BYTES_PER_PARAM: u64 = 2;

/// The classifier whose parameters the network holds at the least: the classifier itself, or the
/// backbone an FCN is built on (it keeps the backbone whole, classification layer included, with
/// one output per segmentation class, so that torchvision's weights load unchanged), and its
/// output stride.
fn classifier_within(spec: &ModelSpec) -> (ClassifierSpec, usize) {
    let fcn = match spec {
        ModelSpec::Classifier(s) => return (s.clone(), 32),
        ModelSpec::Segmenter(s) => s.clone(),
        ModelSpec::Multitask(s) => s.segmenter(),
    };
    let backbone = ClassifierSpec {
        arch: fcn.name.backbone,
        width: fcn.width,
        num_classes: fcn.num_classes,
        // Counted, not built: the activation changes no parameter.
        activation: Default::default(),
    };
    (backbone, fcn.output_stride)
}

impl CheckpointMeta {
    /// Checks every field a network is built from, before it is: the spec (widths, strides, class
    /// counts, by [`ModelSpec::check`]), one class name per class, the normalisation and the
    /// training configuration (by [`TrainConfig::validate`](crate::config::TrainConfig::validate)).
    /// The message names the field.
    pub fn check(&self) -> Result<(), String> {
        self.spec.check().map_err(|e| field("spec", e))?;
        let classes = match &self.spec {
            ModelSpec::Classifier(s) => s.num_classes,
            ModelSpec::Segmenter(s) => s.num_classes,
            // The image classes: the segmentation classes are the data's, not stored.
            ModelSpec::Multitask(s) => s.num_classes,
        };
        if self.class_names.len() != classes {
            return Err(field(
                "class_names",
                format!(
                    "{} names for a {} model of {classes} classes: expected one name per class",
                    self.class_names.len(),
                    self.spec.task()
                ),
            ));
        }
        self.normalize.check().map_err(|e| field("normalize", e))?;
        self.config
            .validate()
            .map_err(|e| field("config", e.to_string()))?;
        Ok(())
    }

    /// Checks, before the network of the spec is built, that `model_bytes`, the length of the
    /// checkpoint's model record, can hold the parameters the spec asks for
    /// ([`MIN_BYTES_PER_PARAM`] each at the least): a small file cannot make kestrel build a huge
    /// network only to find that its record does not fit.
    pub fn check_record(&self, model_bytes: usize) -> Result<(), String> {
        let (classifier, output_stride) = classifier_within(&self.spec);
        let describe_err = |e: kestrel_nn::InfoError| field("spec", e.to_string());
        let mut params = classifier
            .describe_at(224, output_stride)
            .map_err(describe_err)?
            .params;
        // An FCN's score layers and upsamplers come on top (counted, not built: a transposed ×32
        // of 255 classes alone is a gigabyte).
        let fcn = match &self.spec {
            ModelSpec::Classifier(_) => None,
            ModelSpec::Segmenter(s) => Some(s.clone()),
            ModelSpec::Multitask(s) => Some(s.segmenter()),
        };
        if let Some(fcn) = fcn {
            params = params.max(fcn.describe(224).map_err(describe_err)?.params);
        }
        let needed = params.saturating_mul(MIN_BYTES_PER_PARAM);
        if needed > model_bytes as u64 {
            return Err(field(
                "spec",
                format!(
                    "the {} model {} holds at least {params} parameters ({needed} bytes at \
                     {MIN_BYTES_PER_PARAM} bytes each), but the model record has {model_bytes} \
                     bytes",
                    self.spec.task(),
                    self.spec.name()
                ),
            ));
        }
        Ok(())
    }
}

/// The message for a bad metadata field.
fn field(name: &str, e: String) -> String {
    format!("bad checkpoint metadata, field `{name}`: {e}")
}

#[cfg(test)]
mod tests {
    use crate::driver::checkpoint::{encode_model, save, Checkpoint, CheckpointMeta};
    use crate::TrainError;
    use burn::tensor::Device;
    use kestrel_nn::models::fcn::SegmenterSpec;
    use kestrel_nn::{ClassifierSpec, ModelSpec};
    use std::path::Path;

    fn classifier(num_classes: usize) -> ClassifierSpec {
        ClassifierSpec {
            arch: kestrel_nn::Arch::MobileNetV2,
            width: 0.25,
            num_classes,
            activation: Default::default(),
        }
    }

    /// Valid metadata of a 3-class MobileNetV2 classifier, as JSON to tamper with.
    fn meta_json() -> serde_json::Value {
        serde_json::to_value(CheckpointMeta {
            epoch: 1,
            step: 3,
            config: crate::config::TrainConfig::default(),
            spec: ModelSpec::Classifier(classifier(3)),
            class_names: vec!["a".into(), "b".into(), "c".into()],
            normalize: kestrel_data::Normalize::IMAGENET,
            val_metric: 0.5,
            loop_state: None,
        })
        .unwrap()
    }

    /// A checkpoint file's bytes: the magic, then the three sections.
    fn file(meta: &serde_json::Value, model: &[u8]) -> Vec<u8> {
        let mut out = b"KESTREL-CKPT1\n".to_vec();
        for section in [&serde_json::to_vec(meta).unwrap()[..], model, &[]] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(section);
        }
        out
    }

    fn error(meta: &serde_json::Value, model: &[u8]) -> String {
        match Checkpoint::from_bytes(&file(meta, model), Path::new("evil.ckpt")) {
            Err(TrainError::BadInput(m)) => m,
            Err(e) => panic!("expected bad input, got {e:?}"),
            Ok(_) => panic!("accepted {meta}"),
        }
    }

    #[test]
    fn a_huge_class_count_is_refused_before_anything_is_built() {
        let mut m = meta_json();
        m["spec"]["classifier"]["num_classes"] = serde_json::json!(1_000_000_000_000u64);
        let e = error(&m, &[]);
        assert!(
            e.starts_with("evil.ckpt: bad checkpoint metadata, field `spec`:")
                && e.contains("`classes`: expected 1 to 100000")
                && e.contains("got 1000000000000"),
            "{e}"
        );
        // Segmentation classes: a mask names at most 255.
        let mut m = meta_json();
        m["spec"] = serde_json::to_value(ModelSpec::Segmenter(SegmenterSpec {
            name: "fcn32s-mobilenet-v2".parse().unwrap(),
            width: 0.25,
            num_classes: 4096,
            output_stride: 32,
            upsampler: kestrel_nn::upsample::UpsamplerKind::Transposed,
        }))
        .unwrap();
        let e = error(&m, &[]);
        assert!(
            e.contains("field `spec`") && e.contains("num_classes") && e.contains("1 to 255"),
            "{e}"
        );
    }

    #[test]
    fn widths_class_names_normalisation_and_config_are_checked() {
        let mut m = meta_json();
        m["spec"]["classifier"]["width"] = serde_json::json!(0.0);
        let e = error(&m, &[]);
        assert!(
            e.contains("field `spec`") && e.contains("width") && e.contains("got 0"),
            "{e}"
        );
        let mut m = meta_json();
        m["spec"]["classifier"]["num_classes"] = serde_json::json!(0);
        let e = error(&m, &[]);
        assert!(
            e.contains("`classes`: expected 1 to 100000") && e.contains("got 0"),
            "{e}"
        );

        let mut m = meta_json();
        m["class_names"] = serde_json::json!(["a", "b"]);
        let e = error(&m, &[]);
        assert!(
            e.starts_with("evil.ckpt: bad checkpoint metadata, field `class_names`: 2 names")
                && e.contains("of 3 classes"),
            "{e}"
        );

        let mut m = meta_json();
        m["normalize"]["std"] = serde_json::json!([0.2, 0.0, 0.2]);
        let e = error(&m, &[]);
        assert!(e.contains("field `normalize`: std[1] is 0"), "{e}");

        let mut m = meta_json();
        m["config"]["batch_size"] = serde_json::json!(0);
        let e = error(&m, &[]);
        assert!(
            e.contains("field `config`") && e.contains("batch-size"),
            "{e}"
        );
    }

    #[test]
    fn a_section_longer_than_the_file_is_refused_by_its_length() {
        let mut bytes = file(&meta_json(), &[]);
        // The metadata section claims 2^62 bytes.
        bytes[14..22].copy_from_slice(&(1u64 << 62).to_le_bytes());
        let e = Checkpoint::from_bytes(&bytes, Path::new("evil.ckpt"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("evil.ckpt: truncated checkpoint: a section of 4611686018427387904 bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_spec_larger_than_its_model_record_is_not_built() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        // A genuine 3-class model's record, under metadata claiming 100000 classes.
        let mut m = meta_json();
        m["spec"]["classifier"]["num_classes"] = serde_json::json!(100_000);
        m["class_names"] =
            serde_json::json!((0..100_000).map(|c| c.to_string()).collect::<Vec<_>>());
        let record = encode_model(&classifier(3).init(&device)).unwrap();
        let ckpt = Checkpoint::from_bytes(&file(&m, &record), Path::new("big.ckpt")).unwrap();
        let e = ckpt.load_model(&device).err().unwrap().to_string();
        assert!(
            e.starts_with("big.ckpt: bad checkpoint metadata, field `spec`: the classify model mobilenet-v2 holds at least")
                && e.contains(&format!("the model record has {} bytes", record.len())),
            "{e}"
        );
        // The genuine metadata over the same record loads.
        let path = dir.path().join("ok.ckpt");
        let meta: CheckpointMeta = serde_json::from_value(meta_json()).unwrap();
        save(&path, &meta, &record, None).unwrap();
        assert!(Checkpoint::load(&path).unwrap().load_model(&device).is_ok());
    }
}
