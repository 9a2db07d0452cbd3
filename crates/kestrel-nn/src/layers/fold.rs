//! Folding BatchNorm into the preceding convolution, for inference.
//!
//! In eval mode a BatchNorm is an affine map per channel, `y = γ·(x − μ)/√(σ² + ε) + β`, with the
//! running mean μ and variance σ². After a convolution with weight `w` and bias `b` (zero when
//! absent), with `s = γ/√(σ² + ε)` per output channel,
//!
//! ```text
//! w' = w·s        b' = (b − μ)·s + β
//! ```
//!
//! gives one convolution that computes the same thing. A folded [`ConvBnAct`] has `bn = None`, a
//! convolution bias, and skips the normalisation in its forward pass.
//!
//! Folding uses the running statistics: the folded model equals the original in eval mode, and
//! is meant for inference, not for further training.
//!
//! Each model implements [`MapConvBnAct`] beside its definition (in [`crate::models`]), listing
//! its units in forward order; [`crate::models::zoo::Classifier::fold_bn`] folds any classifier.

use crate::layers::conv_bn_act::ConvBnAct;
use burn::module::Param;
use burn::tensor::Tensor;

/// A module built from [`ConvBnAct`] units that can rebuild itself with each unit replaced.
pub trait MapConvBnAct: Sized {
    /// Replaces every [`ConvBnAct`] inside `self` by `f(unit)`, in forward order.
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self;

    /// Folds every BatchNorm into its convolution (see the module documentation).
    fn fold_bn(self) -> Self {
        self.map_conv_bn_act(&mut ConvBnAct::fold_bn)
    }
}

impl ConvBnAct {
    /// Folds the BatchNorm into the convolution; a unit already folded is returned unchanged.
    pub fn fold_bn(self) -> ConvBnAct {
        if self.bn.is_none() {
            return self;
        }
        let bn = self.bn.expect("checked above");
        let gamma = bn.gamma.val().detach();
        let beta = bn.beta.val().detach();
        let mean = bn.running_mean.value().detach();
        let var = bn.running_var.value().detach();
        let device = gamma.device();
        let scale: Tensor<1> = gamma.div(var.add_scalar(bn.epsilon).sqrt());
        let [out, ..] = self.conv.weight.val().dims();
        let mut conv = self.conv;
        let per_channel = scale.clone().reshape([out, 1, 1, 1]);
        conv.weight = conv.weight.map(|w| w.detach().mul(per_channel));
        let bias = match conv.bias.take() {
            Some(b) => b.val().detach(),
            None => Tensor::zeros([out], &device),
        };
        conv.bias = Some(Param::from_tensor(bias.sub(mean).mul(scale).add(beta)));
        ConvBnAct {
            conv,
            bn: None,
            activation: self.activation,
        }
    }

    /// Whether the BatchNorm has been folded into the convolution.
    pub fn is_folded(&self) -> bool {
        self.bn.is_none()
    }
}

impl MapConvBnAct for ConvBnAct {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        f(self)
    }
}

impl<T: MapConvBnAct> MapConvBnAct for Option<T> {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        self.map(|m| m.map_conv_bn_act(f))
    }
}

impl<T: MapConvBnAct> MapConvBnAct for Vec<T> {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        self.into_iter().map(|m| m.map_conv_bn_act(f)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::params::for_each_tensor;
    use crate::models::zoo::{Arch, ClassifierSpec};
    use crate::{Activation, ConvBnActConfig};
    use burn::module::{Module, RunningState};
    use burn::tensor::{Device, Distribution};

    /// Random, far-from-default BatchNorm statistics and affine parameters: γ in ±[0.5, 1.5],
    /// β and μ in [−1, 1], σ² in [0.1, 2].
    fn randomise_bn(mut unit: ConvBnAct) -> ConvBnAct {
        if let Some(bn) = unit.bn.as_mut() {
            let device = bn.gamma.val().device();
            let [c] = bn.gamma.val().dims();
            let u = |lo, hi| Tensor::<1>::random([c], Distribution::Uniform(lo, hi), &device);
            let sign = u(-1.0, 1.0).sign();
            bn.gamma = Param::from_tensor(u(0.5, 1.5).mul(sign));
            bn.beta = Param::from_tensor(u(-1.0, 1.0));
            bn.running_mean = RunningState::new(u(-1.0, 1.0));
            bn.running_var = RunningState::new(u(0.1, 2.0));
        }
        unit
    }

    fn paths<M: Module>(m: &M) -> Vec<String> {
        let mut out = Vec::new();
        for_each_tensor(m, |p, _| out.push(p.to_string()));
        out
    }

    fn max_abs(v: &[f32]) -> f32 {
        v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
    }

    /// A single unit with a convolution bias, grouped, with stride: folded output = unfolded.
    #[test]
    fn folded_unit_matches_including_an_existing_bias() {
        let device = Device::flex();
        let mut unit = ConvBnActConfig::new(4, 6)
            .with_groups(2)
            .with_stride(2)
            .with_activation(Activation::Identity)
            .init(&device);
        unit.conv.bias = Some(Param::from_tensor(Tensor::random(
            [6],
            Distribution::Uniform(-1.0, 1.0),
            &device,
        )));
        let unit = randomise_bn(unit);
        let x = Tensor::<4>::random([2, 4, 7, 9], Distribution::Normal(0.0, 1.0), &device);
        let want: Vec<f32> = unit.forward(x.clone()).into_data().try_to_vec().unwrap();
        let folded = unit.fold_bn();
        assert!(folded.is_folded());
        let got: Vec<f32> = folded.forward(x.clone()).into_data().try_to_vec().unwrap();
        let scale = max_abs(&want);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "{a} vs {b}");
        }
        // Folding twice changes nothing.
        let again: Vec<f32> = folded
            .fold_bn()
            .forward(x)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(again, got);
    }

    /// Every architecture: the folded network's logits are within 1e-4 (relative to the largest
    /// logit) of the unfolded network's, and its tensors are exactly the unfolded ones minus every
    /// `bn.*` plus one `conv.bias` per unit.
    #[test]
    fn folded_classifiers_give_the_same_logits_and_have_no_batch_norm() {
        let device = Device::flex();
        for (arch, width) in [
            (Arch::MobileNetV1, 0.5),
            (Arch::MobileNetV2, 0.5),
            (Arch::ResNet18, 1.0),
            (Arch::ResNet50, 1.0),
        ] {
            let spec = ClassifierSpec {
                arch,
                width,
                num_classes: 10,
                activation: Default::default(),
            };
            let model = spec.init(&device).map_conv_bn_act(&mut randomise_bn);
            let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
            let want: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
            let before = paths(&model);
            let folded = model.fold_bn();
            let got: Vec<f32> = folded.forward(x).into_data().try_to_vec().unwrap();
            let scale = max_abs(&want);
            assert!(scale > 0.0 && scale.is_finite(), "{arch}: {want:?}");
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4 * scale, "{arch}: {got:?} vs {want:?}");
            }
            let after = paths(&folded);
            let mut expected: Vec<String> = Vec::new();
            for p in &before {
                if p.contains(".bn.") {
                    if p.ends_with(".bn.gamma") {
                        expected.push(p.replace(".bn.gamma", ".conv.bias"));
                    }
                } else {
                    expected.push(p.clone());
                }
            }
            assert!(after.iter().all(|p| !p.contains("bn")), "{arch}: {after:?}");
            let mut sorted = after.clone();
            sorted.sort();
            expected.sort();
            assert_eq!(sorted, expected, "{arch}");
            assert!(before.len() > after.len(), "{arch}");
        }
    }

    /// Making `bn` an `Option` changed no module path: an unfolded network's record (what
    /// kestrel checkpoints hold) still names `ResNet.conv1.bn.gamma` etc. and loads into a fresh network.
    #[test]
    fn unfolded_records_keep_their_paths_and_round_trip() {
        let device = Device::flex();
        let spec = ClassifierSpec {
            arch: Arch::ResNet18,
            width: 1.0,
            num_classes: 4,
            activation: Default::default(),
        };
        let model = spec.init(&device).map_conv_bn_act(&mut randomise_bn);
        let names = paths(&model);
        for p in [
            "ResNet.conv1.bn.gamma",
            "ResNet.conv1.bn.running_var",
            "ResNet.layer2.0.downsample.bn.beta",
            "ResNet.layer4.1.conv2.bn.running_mean",
        ] {
            assert!(names.iter().any(|n| n == p), "{p} missing: {names:?}");
        }
        let bytes = model.clone().into_record().into_bytes().unwrap();
        let record = burn::store::ModuleRecord::from_bytes(bytes).unwrap();
        let loaded = spec.init(&device).try_load_record(record).unwrap();
        let x = Tensor::<4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let a: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
        let b: Vec<f32> = loaded.forward(x).into_data().try_to_vec().unwrap();
        assert_eq!(a, b);
    }
}
