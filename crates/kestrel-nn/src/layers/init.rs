//! Weight initialisation of kestrel's models.
//!
//! Every model initialises itself as torchvision does (checked by the tests below):
//!
//! | layer                               | scheme                                                      |
//! |-------------------------------------|-------------------------------------------------------------|
//! | every convolution (`ConvBnAct`)     | He / Kaiming normal, fan-out, ReLU gain: N(0, 2 / fan_out), fan_out = out · k² as PyTorch counts it (also for grouped and depthwise convolutions) |
//! | BatchNorm                           | γ = 1, β = 0                                                |
//! | MobileNet V1 / V2 classifier        | N(0, 0.01²) weights, zero bias (torchvision's MobileNets)   |
//! | ResNet `fc`                         | PyTorch's `nn.Linear` default: U(±1/√fan_in) weight and bias (torchvision's ResNet leaves it) |
//!
//! Xavier / Glorot uniform (U(±√(6 / (fan_in + fan_out)))) is what Keras uses for dense layers;
//! torchvision does not, so no kestrel model does (Burn has it as `Initializer::XavierUniform`).
//!
//! torchvision's optional `zero_init_residual` (the last BatchNorm γ of every residual block set
//! to 0, so each block starts as the identity) is [`crate::models::zoo::zero_init_residual`] on a
//! built classifier, [`crate::models::resnet::zero_init_resnet`] on a ResNet.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::Device;

/// The standard deviation of He / Kaiming-normal initialisation with fan-out `fan_out` and ReLU
/// gain √2: √(2 / fan_out).
pub fn kaiming_normal_std(fan_out: usize) -> f64 {
    (2.0 / fan_out as f64).sqrt()
}

/// A linear classifier from `in_features` to `out_features` as torchvision initialises its
/// MobileNets' (and kestrel's multi-task head): weights N(0, 0.01²), zero bias.
pub fn mobilenet_classifier(in_features: usize, out_features: usize, device: &Device) -> Linear {
    let linear = LinearConfig::new(in_features, out_features)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        })
        .init(device);
    Linear {
        // A fresh zero parameter: mapping the old one to `zeros_like` would drop its gradient
        // tracking, and the bias would never train.
        bias: linear
            .bias
            .map(|b| Initializer::Zeros.init(b.val().dims(), device)),
        ..linear
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::zoo::zero_init_residual;
    use crate::tensor_values::to_f64_vec as values;
    use crate::{Arch, Classifier, ClassifierSpec, ConvBnActConfig};
    use burn::tensor::{Device, Tensor};

    fn mean_std(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
        assert!(
            (got / want - 1.0).abs() < rel,
            "{what}: {got} vs {want} (±{rel})"
        );
    }

    #[test]
    fn convolutions_are_kaiming_normal_fan_out() {
        let device = Device::flex();
        device.seed(1);
        // 147,456 draws: the sample std is within 0.5 % of the true one with near certainty.
        let conv = ConvBnActConfig::new(64, 256).init(&device);
        let (mean, std) = mean_std(&values(conv.conv.weight.val()));
        assert!(mean.abs() < 1e-3, "{mean}");
        assert_close(std, kaiming_normal_std(256 * 9), 0.02, "3x3 conv");
        // Depthwise: PyTorch's fan_out is out · k² = 512 · 9 whatever the groups (4,608 draws).
        let dw = ConvBnActConfig::new(512, 512)
            .with_groups(512)
            .init(&device);
        let (_, std) = mean_std(&values(dw.conv.weight.val()));
        assert_close(std, kaiming_normal_std(512 * 9), 0.05, "depthwise conv");
        let bn = conv.bn.as_ref().unwrap();
        assert!(values(bn.gamma.val()).iter().all(|&g| g == 1.0));
        assert!(values(bn.beta.val()).iter().all(|&b| b == 0.0));
    }

    #[test]
    fn classifiers_follow_torchvision() {
        let device = Device::flex();
        device.seed(2);
        let spec = |arch| ClassifierSpec {
            arch,
            width: 0.5,
            num_classes: 100,
            activation: Default::default(),
        };
        let Classifier::MobileNetV2(m) = spec(Arch::MobileNetV2).init(&device) else {
            unreachable!()
        };
        let (mean, std) = mean_std(&values(m.classifier.weight.val()));
        assert!(mean.abs() < 2e-4, "{mean}");
        assert_close(std, 0.01, 0.02, "MobileNetV2 classifier");
        assert!(values(m.classifier.bias.unwrap().val())
            .iter()
            .all(|&b| b == 0.0));
        let Classifier::ResNet(r) = spec(Arch::ResNet18).init(&device) else {
            unreachable!()
        };
        // U(±1/√512): max within the bound, std bound/√3.
        let bound = 1.0 / 512f64.sqrt();
        let w = values(r.fc.weight.val());
        assert!(w.iter().all(|x| x.abs() <= bound + 1e-7));
        assert_close(mean_std(&w).1, bound / 3f64.sqrt(), 0.02, "ResNet fc");
    }

    #[test]
    fn zero_init_residual_zeroes_only_the_last_gamma_of_each_block() {
        let device = Device::flex();
        let sum = |t: Tensor<1>| values(t).iter().sum::<f64>();
        let spec = |arch| ClassifierSpec {
            arch,
            width: 1.0,
            num_classes: 10,
            activation: Default::default(),
        };
        let mut model = spec(Arch::ResNet18).init(&device);
        assert_eq!(zero_init_residual(&mut model), 8);
        let Classifier::ResNet(r) = &model else {
            unreachable!()
        };
        for b in r
            .layer1
            .iter()
            .chain(&r.layer2)
            .chain(&r.layer3)
            .chain(&r.layer4)
        {
            assert_eq!(sum(b.conv2.bn.as_ref().unwrap().gamma.val()), 0.0);
            assert!(sum(b.conv1.bn.as_ref().unwrap().gamma.val()) > 0.0);
            if let Some(d) = &b.downsample {
                assert!(sum(d.bn.as_ref().unwrap().gamma.val()) > 0.0);
            }
        }
        assert!(sum(r.conv1.bn.as_ref().unwrap().gamma.val()) > 0.0);
        let mut model = spec(Arch::ResNet50).init(&device);
        assert_eq!(zero_init_residual(&mut model), 16);
        let Classifier::ResNet(r) = &model else {
            unreachable!()
        };
        let b = &r.layer3[2];
        assert_eq!(
            sum(b.conv3.as_ref().unwrap().bn.as_ref().unwrap().gamma.val()),
            0.0
        );
        assert!(sum(b.conv2.bn.as_ref().unwrap().gamma.val()) > 0.0);
        let mut m = spec(Arch::MobileNetV2).init(&device);
        assert_eq!(zero_init_residual(&mut m), 0);
    }
}
