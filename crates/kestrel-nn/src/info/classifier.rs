//! The classifiers' descriptions by name: [`ClassifierSpec::describe`] checks the settings and
//! describes the configuration [`ClassifierSpec::init`] would build (see
//! [`crate::info::mobilenet_v1`], [`crate::info::mobilenet_v2`] and [`crate::info::resnet`] for
//! the layer lists).

use crate::info::{describe, InfoError, ModelInfo};
use crate::layers::conv_bn_act::HiddenActivation;
use crate::models::zoo::{
    Arch, ArchConfig, ClassifierSpec, MAX_CLASSES, MAX_WIDTH, OUTPUT_STRIDES,
};

impl ClassifierSpec {
    /// [`ClassifierSpec::describe`] of the dilated backbone with output stride 8, 16 or 32
    /// (MobileNetV2 and the ResNets; MobileNet V1 only at 32).
    pub fn describe_at(
        &self,
        resolution: usize,
        output_stride: usize,
    ) -> Result<ModelInfo, InfoError> {
        let supported = if self.arch == Arch::MobileNetV1 {
            &OUTPUT_STRIDES[2..]
        } else {
            &OUTPUT_STRIDES[..]
        };
        if !supported.contains(&output_stride) {
            let list: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
            return Err(InfoError::BadValue {
                field: "output-stride".into(),
                expected: format!("one of {} for {}", list.join(", "), self.arch),
                got: output_stride.to_string(),
            });
        }
        self.check()?;
        let name = self.arch.to_string();
        match self.config_at(output_stride) {
            ArchConfig::MobileNetV1(c) => describe(&name, &c, resolution),
            ArchConfig::MobileNetV2(c) => describe(&name, &c, resolution),
            ArchConfig::ResNet(c) => describe(&name, &c, resolution),
        }
    }

    /// The network's layers, parameters and multiply-adds on `resolution` × `resolution` RGB
    /// inputs, without building it (see [`crate::info`]). Errors name the bad setting: a width
    /// outside (0, [`MAX_WIDTH`]] (MobileNets), zero classes or more than [`MAX_CLASSES`], an input too small for some layer,
    /// or counts beyond 64 bits.
    pub fn describe(&self, resolution: usize) -> Result<ModelInfo, InfoError> {
        self.describe_at(resolution, 32)
    }

    /// Checks the width, the class count (1 to [`MAX_CLASSES`]) and the activation (a choice
    /// only for [`Arch::has_activation_choice`]).
    pub(crate) fn check(&self) -> Result<(), InfoError> {
        let bad = |field: &str, expected: &str, got: String| InfoError::BadValue {
            field: field.into(),
            expected: expected.into(),
            got,
        };
        if self.arch.has_width() && !(self.width > 0.0 && self.width <= MAX_WIDTH) {
            return Err(bad(
                "width",
                &format!("a multiplier in (0, {MAX_WIDTH}]"),
                self.width.to_string(),
            ));
        }
        if !(1..=MAX_CLASSES).contains(&self.num_classes) {
            return Err(bad(
                "classes",
                &format!("1 to {MAX_CLASSES} (kestrel's limit on class counts)"),
                self.num_classes.to_string(),
            ));
        }
        if self.activation != HiddenActivation::default() && !self.arch.has_activation_choice() {
            return Err(bad(
                "activation",
                &format!(
                    "{} for {} (it uses ReLU throughout; only mobilenet-v2 has a choice)",
                    HiddenActivation::default(),
                    self.arch
                ),
                self.activation.to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::params::{for_each_tensor, is_buffer, trainable_params};
    use crate::models::zoo::{Classifier, ARCH_NAMES};
    use burn::tensor::Device;

    /// Trainable tensors of a built classifier: (module path inside the network, elements).
    fn tensors(model: &Classifier) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut collect = |path: &str, shape: &[usize]| {
            if !is_buffer(path) {
                out.push((path.to_string(), shape.iter().product()));
            }
        };
        match model {
            Classifier::MobileNetV1(m) => for_each_tensor(m, &mut collect),
            Classifier::MobileNetV2(m) => for_each_tensor(m, &mut collect),
            Classifier::ResNet(m) => for_each_tensor(m, &mut collect),
        }
        out
    }

    /// The description's rows account for every trainable tensor of the real Burn model, row by
    /// row (a row's parameters are the tensors under its module path), and the totals agree with
    /// `trainable_params`.
    #[test]
    fn descriptions_match_the_built_models_tensor_by_tensor() {
        let device = Device::flex();
        for name in ARCH_NAMES {
            let arch: Arch = name.parse().unwrap();
            let widths: &[f64] = if arch.has_width() {
                &[1.0, 0.35]
            } else {
                &[1.0]
            };
            for &width in widths {
                let spec = ClassifierSpec {
                    arch,
                    width,
                    num_classes: 10,
                    activation: Default::default(),
                };
                let model = spec.init(&device);
                let info = spec.describe(64).unwrap();
                assert_eq!(info.model, name);
                assert_eq!(
                    info.params,
                    trainable_params(&model) as u64,
                    "{name} α={width}"
                );
                let tensors = tensors(&model);
                let mut covered = 0;
                for row in &info.layers {
                    let prefix = format!("{}.", row.name);
                    let n: usize = tensors
                        .iter()
                        .filter(|(p, _)| p.starts_with(&prefix))
                        .map(|(_, n)| n)
                        .sum();
                    assert_eq!(row.params, n as u64, "{name} α={width} row {}", row.name);
                    covered += tensors
                        .iter()
                        .filter(|(p, _)| p.starts_with(&prefix))
                        .count();
                }
                assert_eq!(covered, tensors.len(), "{name}: tensors outside every row");
                // Totals are the sums of the rows.
                assert_eq!(info.macs, info.layers.iter().map(|l| l.macs).sum::<u64>());
            }
        }
    }

    #[test]
    fn bad_settings_are_errors_not_panics() {
        let spec = |arch, width, num_classes| ClassifierSpec {
            arch,
            width,
            num_classes,
            activation: Default::default(),
        };
        for (s, field) in [
            (spec(Arch::MobileNetV1, 0.0, 10), "width"),
            (spec(Arch::MobileNetV2, f64::NAN, 10), "width"),
            (spec(Arch::MobileNetV1, -1.0, 10), "width"),
            (spec(Arch::MobileNetV1, 4.5, 10), "width"),
            (spec(Arch::ResNet18, 1.0, 0), "classes"),
        ] {
            let e = s.describe(224).unwrap_err();
            assert!(
                matches!(&e, InfoError::BadValue { field: f, .. } if f == field),
                "{e}"
            );
        }
        for name in ARCH_NAMES {
            let s = spec(name.parse().unwrap(), 1.0, 10);
            let e = s.describe(0).unwrap_err();
            assert!(matches!(e, InfoError::TooSmall { .. }), "{name}: {e}");
            // Padding lets even a 1-pixel input through every layer, as in PyTorch.
            assert_eq!(
                s.describe(1).unwrap().layers.last().unwrap().out,
                [10, 1, 1]
            );
            // Absurd sizes overflow cleanly or succeed, never panic.
            let _ = s.describe(usize::MAX);
            let _ = spec(s.arch, MAX_WIDTH, usize::MAX).describe(usize::MAX / 2);
        }
        // ResNets ignore the width.
        assert_eq!(
            spec(Arch::ResNet18, 0.5, 10).describe(64),
            spec(Arch::ResNet18, 1.0, 10).describe(64)
        );
    }
}
