//! MobileNetV2 (Sandler et al., 2018) as torchvision builds it, assembled into a [`Plan`] from
//! per-layer weights with batch norm folded into a bias.

use super::synthetic::uniform;
use kestrel_runtime::error::Result;
use kestrel_runtime::{Activation, ConvParams, Plan, PlanBuilder, RuntimeError, Shape};

/// The inverted-residual table of the paper without its channel column (see [`CHANNELS`]):
/// expansion t, repeats n, first stride s of each stage.
const BLOCKS: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (6, 2, 2),
    (6, 3, 2),
    (6, 4, 2),
    (6, 3, 1),
    (6, 3, 2),
    (6, 1, 1),
];

/// torchvision's channel counts for the width multipliers the tests and benchmarks use: the stem,
/// the seven stages of [`BLOCKS`] and the last 1×1 convolution, each `c · width` rounded by
/// `_make_divisible(·, 8)` (the last never below 1280). A table rather than the rounding rule, whose
/// one home is kestrel-nn's `divisible` module.
const CHANNELS: [(f32, [usize; 9]); 3] = [
    (0.35, [16, 8, 8, 16, 24, 32, 56, 112, 1280]),
    (0.5, [16, 8, 16, 16, 32, 48, 80, 160, 1280]),
    (1.0, [32, 16, 24, 32, 64, 96, 160, 320, 1280]),
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

impl MobileNetV2Config {
    /// Channels of the stem, of each stage of [`BLOCKS`] and of the last 1×1 convolution.
    fn channels(&self) -> [usize; 9] {
        CHANNELS
            .iter()
            .find(|(w, _)| *w == self.width)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("no channel table for width {}", self.width))
    }
}

/// What a layer is: its position in torchvision's `state_dict` order and its convolution.
#[derive(Debug, Clone, PartialEq)]
struct LayerSpec {
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
fn layer_specs(cfg: &MobileNetV2Config) -> Vec<LayerSpec> {
    let mut specs = Vec::new();
    let channels = cfg.channels();
    let mut cin = channels[0];
    let last = channels[8];
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
    for (&(t, n, s), &cout) in BLOCKS.iter().zip(&channels[1..8]) {
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
    for (&(t, n, s), &cout) in BLOCKS.iter().zip(&cfg.channels()[1..8]) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
