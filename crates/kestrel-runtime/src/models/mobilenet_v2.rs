//! MobileNetV2 (Sandler et al., 2018) as torchvision builds it, assembled into a [`Plan`] from
//! per-layer weights with batch norm folded into a bias.

use super::synthetic::uniform;
use crate::error::{Result, RuntimeError};
use crate::kernels::ConvGeometry;
use crate::{Activation, ConvParams, Plan, PlanBuilder, Shape};

/// The inverted-residual table of the paper (expansion t, channels c, repeats n, first stride s).
pub const BLOCKS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Which MobileNetV2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MobileNetV2Config {
    /// Width multiplier (1.0 for the standard model).
    pub width: f32,
    /// Input height and width.
    pub resolution: usize,
    /// Classifier outputs.
    pub num_classes: usize,
}

impl Default for MobileNetV2Config {
    fn default() -> Self {
        MobileNetV2Config {
            width: 1.0,
            resolution: 224,
            num_classes: 1000,
        }
    }
}

/// torchvision's `_make_divisible(v, 8)`: round to the nearest multiple of 8, at least 8, never
/// more than 10% below `v`.
pub fn make_divisible(v: f32, divisor: usize) -> usize {
    let d = divisor as f32;
    let mut n = (divisor).max(((v + d / 2.0) as usize) / divisor * divisor);
    if (n as f32) < 0.9 * v {
        n += divisor;
    }
    n
}

/// What a layer is: its position in torchvision's `state_dict` order and its convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// torchvision parameter prefix, e.g. `features.2.conv.0.0` or `classifier.1`.
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size (1 for the classifier).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Groups (input channels for depthwise layers).
    pub groups: usize,
    /// Activation after the (folded) batch norm.
    pub act: Activation,
}

impl LayerSpec {
    /// Floats of the OIHW (or `[out][in]`) weight.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels / self.groups * self.kernel * self.kernel
    }
}

/// Weights of one layer: PyTorch layout, batch norm folded into `bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// OIHW convolution weight, or `[out][in]` for the classifier.
    pub weight: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
}

/// Every layer in order: stem, each block's (expand,) depthwise and project convolutions, the last
/// 1×1 convolution, and the classifier.
pub fn layer_specs(cfg: &MobileNetV2Config) -> Vec<LayerSpec> {
    let mut specs = Vec::new();
    let mut cin = make_divisible(32.0 * cfg.width, 8);
    let last = make_divisible(1280.0 * cfg.width.max(1.0), 8);
    let conv = |name: String, i, o, k, s, g, act| LayerSpec {
        name,
        in_channels: i,
        out_channels: o,
        kernel: k,
        stride: s,
        groups: g,
        act,
    };
    specs.push(conv(
        "features.0.0".into(),
        3,
        cin,
        3,
        2,
        1,
        Activation::Relu6,
    ));
    let mut f = 1;
    for &(t, c, n, s) in &BLOCKS {
        let cout = make_divisible(c as f32 * cfg.width, 8);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let hidden = (cin as f32 * t as f32).round() as usize;
            let mut j = 0;
            if t != 1 {
                specs.push(conv(
                    format!("features.{f}.conv.0.0"),
                    cin,
                    hidden,
                    1,
                    1,
                    1,
                    Activation::Relu6,
                ));
                j = 1;
            }
            specs.push(conv(
                format!("features.{f}.conv.{j}.0"),
                hidden,
                hidden,
                3,
                stride,
                hidden,
                Activation::Relu6,
            ));
            specs.push(conv(
                format!("features.{f}.conv.{}", j + 1),
                hidden,
                cout,
                1,
                1,
                1,
                Activation::None,
            ));
            cin = cout;
            f += 1;
        }
    }
    specs.push(conv(
        format!("features.{f}.0"),
        cin,
        last,
        1,
        1,
        1,
        Activation::Relu6,
    ));
    specs.push(conv(
        "classifier.1".into(),
        last,
        cfg.num_classes,
        1,
        1,
        1,
        Activation::None,
    ));
    specs
}

/// Assembles the plan. `weights` follows [`layer_specs`] one to one.
pub fn build(cfg: &MobileNetV2Config, weights: &[LayerWeights]) -> Result<Plan> {
    let specs = layer_specs(cfg);
    if weights.len() != specs.len() {
        return Err(RuntimeError::Builder(format!(
            "MobileNetV2 needs {} layers of weights, got {}",
            specs.len(),
            weights.len()
        )));
    }
    for (s, w) in specs.iter().zip(weights) {
        if w.weight.len() != s.weight_len() || w.bias.len() != s.out_channels {
            return Err(RuntimeError::Builder(format!(
                "layer {}: weight has {} floats and bias {}, expected {} ({}x{}x{}x{}) and {}",
                s.name,
                w.weight.len(),
                w.bias.len(),
                s.weight_len(),
                s.out_channels,
                s.in_channels / s.groups,
                s.kernel,
                s.kernel,
                s.out_channels
            )));
        }
    }
    let r = cfg.resolution;
    let mut b = PlanBuilder::new(Shape { h: r, w: r, c: 3 });
    let mut layer = 0;
    let conv = |b: &mut PlanBuilder, x, layer: &mut usize| -> Result<usize> {
        let (s, w) = (&specs[*layer], &weights[*layer]);
        *layer += 1;
        let p = ConvParams::new(&w.weight, Some(&w.bias), s.out_channels, s.kernel)
            .stride(s.stride)
            .padding(s.kernel / 2)
            .groups(s.groups)
            .act(s.act);
        b.conv(x, &p)
            .map_err(|e| RuntimeError::Builder(format!("layer {}: {e}", s.name)))
    };
    let input = b.input();
    let mut x = conv(&mut b, input, &mut layer)?;
    let mut cin = specs[0].out_channels;
    for &(t, c, n, s) in &BLOCKS {
        let cout = make_divisible(c as f32 * cfg.width, 8);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let block_in = x;
            let mut y = x;
            if t != 1 {
                y = conv(&mut b, y, &mut layer)?;
            }
            y = conv(&mut b, y, &mut layer)?;
            y = conv(&mut b, y, &mut layer)?;
            if stride == 1 && cin == cout {
                y = b.add_residual(y, block_in, Activation::None)?;
            }
            x = y;
            cin = cout;
        }
    }
    x = conv(&mut b, x, &mut layer)?;
    x = b.global_pool(x)?;
    let (s, w) = (&specs[layer], &weights[layer]);
    x = b.linear(
        x,
        &w.weight,
        Some(&w.bias),
        s.out_channels,
        Activation::None,
    )?;
    b.build(x)
}

/// Synthetic weights for every layer: layer `l`'s weight is stream `2l` and its bias stream
/// `2l + 1` of [`uniform`], scaled `sqrt(6 / fan_in)` (He-uniform) and `0.1`.
pub fn synthetic_weights(cfg: &MobileNetV2Config, seed: u64) -> Vec<LayerWeights> {
    layer_specs(cfg)
        .iter()
        .enumerate()
        .map(|(l, s)| {
            let fan_in = s.in_channels / s.groups * s.kernel * s.kernel;
            let scale = (6.0 / fan_in as f64).sqrt() as f32;
            LayerWeights {
                weight: uniform(seed, 2 * l as u64, s.weight_len(), scale),
                bias: uniform(seed, 2 * l as u64 + 1, s.out_channels, 0.1),
            }
        })
        .collect()
}

/// The window used by every 3×3 layer of the network, for reference.
pub fn depthwise_geometry(stride: usize) -> ConvGeometry {
    ConvGeometry::square(3, stride, 1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_torchvision() {
        // Values from torchvision.models._utils._make_divisible.
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(16.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24);
        assert_eq!(make_divisible(96.0 * 0.5, 8), 48);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
    }

    #[test]
    fn standard_model_has_torchvision_parameter_count_and_macs() {
        let cfg = MobileNetV2Config::default();
        let specs = layer_specs(&cfg);
        // 52 convolutions + classifier
        assert_eq!(specs.len(), 53);
        // torchvision mobilenet_v2(): 3,504,872 parameters, of which BN adds 2 per channel of the
        // 52 conv outputs (17,056 channels -> 34,112), conv/linear biases absent except classifier (1000).
        let conv_and_fc: usize = specs.iter().map(|s| s.weight_len()).sum();
        assert_eq!(conv_and_fc + 1000 + 34_112, 3_504_872);
        let plan = build(&cfg, &synthetic_weights(&cfg, 0)).unwrap();
        // The paper's Table 3: 300M multiply-adds at 224 (torchvision reports 0.30 GFLOPS).
        let macs = plan.macs();
        assert!((295_000_000..=310_000_000).contains(&macs), "{macs}");
        assert_eq!(
            plan.output_shape(),
            Shape {
                h: 1,
                w: 1,
                c: 1000
            }
        );
    }

    #[test]
    fn wrong_weights_are_named() {
        let cfg = MobileNetV2Config {
            width: 0.35,
            resolution: 32,
            num_classes: 4,
        };
        let mut w = synthetic_weights(&cfg, 0);
        w[3].weight.pop();
        let e = build(&cfg, &w).unwrap_err().to_string();
        assert!(e.contains("features.2.conv.0.0"), "{e}");
        w.pop();
        assert!(build(&cfg, &w)
            .unwrap_err()
            .to_string()
            .contains("needs 53 layers"));
    }
}
