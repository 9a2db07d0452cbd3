//! One backbone, two heads: image classification and FCN segmentation (multi-task learning).
//!
//! The backbone and the segmentation head are an [`Fcn`] (so a multi-task model segments exactly
//! as the FCN of the same [`SegmenterName`] does); the classification head is MobileNetV2's:
//! the last feature map, globally average-pooled, then dropout and a linear layer.
//!
//! With `cascade`, the classifier also reads the segmentation output: its per-pixel softmax,
//! averaged over the image — a K_seg vector of predicted class-area shares — is concatenated to
//! the pooled features before the linear layer. That vector is detached: the classification loss
//! does not train the segmentation head through it, so the shares keep meaning what the
//! segmentation loss makes them mean, and each task's gradient on the shared backbone stays the
//! gradient of its own loss (which GradNorm measures, see [`MultiTask::forward_split`]).

use crate::layers::batch_norm::BatchNorm2d;
use crate::layers::conv_bn_act::ConvBnAct;
use crate::layers::init::mobilenet_classifier;
use crate::layers::pool::global_avg_pool;
use crate::models::fcn::{Fcn, FcnBackbone, SegmenterName, SegmenterSpec};
use crate::models::zoo::MAX_CLASSES;
use crate::upsample::{UpsampleError, UpsamplerKind};
use burn::module::{Module, Param, ParamId, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Output stride of the backbone of a multi-task model (the FCN paper's: no dilation).
pub const MULTITASK_OUTPUT_STRIDE: usize = 32;

/// Dropout before the classifier (MobileNetV2's).
pub const MULTITASK_DROPOUT: f64 = 0.2;

/// What it takes to build a [`MultiTask`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiTaskSpec {
    /// The FCN (head and backbone) whose backbone both tasks share, e.g. `fcn8s-mobilenet-v2`.
    pub backbone: SegmenterName,
    /// Width multiplier α of a MobileNetV2 backbone (ignored by ResNets).
    pub width: f64,
    /// Image classes (outputs of the classification head).
    pub num_classes: usize,
    /// Segmentation classes, background included.
    pub seg_classes: usize,
    /// The upsampling layers of the segmentation head.
    pub upsampler: UpsamplerKind,
    /// Whether the classifier also reads the predicted class-area shares of the segmentation.
    pub cascade: bool,
}

/// The multi-task network: an [`Fcn`] and a classification head on its last feature map.
#[derive(Module, Debug)]
pub struct MultiTask {
    /// Backbone and segmentation head.
    pub fcn: Fcn,
    /// Dropout before the classifier.
    pub dropout: Dropout,
    /// The classifier: pooled features (plus K_seg area shares with `cascade`) → image classes.
    pub classifier: Linear,
    /// Whether the classifier reads the segmentation's class-area shares.
    #[module(skip)]
    pub cascade: bool,
}

/// The two copies of the last shared layer's weight made by [`MultiTask::forward_split`].
#[derive(Debug)]
pub struct SharedSplit {
    /// The id of the model's own parameter: its gradient is the sum of the copies' gradients.
    pub param: ParamId,
    /// The copy only the classification head depends on (a leaf tensor).
    pub classify: Tensor<4>,
    /// The copy only the segmentation head depends on (a leaf tensor).
    pub segment: Tensor<4>,
}

impl MultiTaskSpec {
    /// The FCN part of the model.
    pub fn segmenter(&self) -> SegmenterSpec {
        SegmenterSpec {
            name: self.backbone,
            width: self.width,
            num_classes: self.seg_classes,
            output_stride: MULTITASK_OUTPUT_STRIDE,
            upsampler: self.upsampler,
        }
    }

    /// Inputs of the classifier: the last feature map's channels, plus K_seg with `cascade`.
    pub fn classifier_inputs(&self) -> usize {
        let features = self.segmenter().tap_channels()[2];
        features + if self.cascade { self.seg_classes } else { 0 }
    }

    /// Checks the image class count (1 to [`MAX_CLASSES`]) and the segmenter's settings.
    pub(crate) fn check(&self) -> Result<(), UpsampleError> {
        if !(1..=MAX_CLASSES).contains(&self.num_classes) {
            return Err(UpsampleError::field(
                "multitask",
                "num_classes",
                self.num_classes,
                format!("1 to {MAX_CLASSES}"),
            ));
        }
        self.segmenter().check()
    }

    /// Builds the model: the FCN as [`SegmenterSpec::init`] builds it, the classifier as
    /// MobileNetV2's (weights N(0, 0.01²), zero bias). Errors name the bad field.
    pub fn init(&self, device: &Device) -> Result<MultiTask, UpsampleError> {
        self.check()?;
        let fcn = self.segmenter().init(device)?;
        let classifier = mobilenet_classifier(self.classifier_inputs(), self.num_classes, device);
        Ok(MultiTask {
            fcn,
            dropout: DropoutConfig::new(MULTITASK_DROPOUT).init(),
            classifier,
            cascade: self.cascade,
        })
    }
}

/// `layer` with its convolution weight replaced by the fresh leaf `weight`; with `keep_stats`
/// false its BatchNorm updates a throw-away copy of the running statistics.
fn with_weight(layer: &ConvBnAct, weight: Tensor<4>, keep_stats: bool) -> ConvBnAct {
    let bn = layer.bn.as_ref().map(|bn| {
        if keep_stats {
            bn.clone()
        } else {
            BatchNorm2d {
                running_mean: RunningState::new(bn.running_mean.value()),
                running_var: RunningState::new(bn.running_var.value()),
                ..bn.clone()
            }
        }
    });
    ConvBnAct {
        conv: Conv2d {
            weight: Param::from_tensor(weight),
            ..layer.conv.clone()
        },
        bn,
        activation: layer.activation,
    }
}

/// `layer` applied to `h` twice, through two leaf copies of its weight; the running statistics
/// of its BatchNorm are updated once, as by one ordinary forward pass.
fn split_layer(layer: &ConvBnAct, h: Tensor<4>) -> (Tensor<4>, Tensor<4>, SharedSplit) {
    let w = layer.conv.weight.val();
    // Each detach gives a new leaf node (that keeps the parameter's gradient requirement).
    let (wa, wb) = (w.clone().detach(), w.detach());
    let a = with_weight(layer, wa.clone(), true).forward(h.clone());
    let b = with_weight(layer, wb.clone(), false).forward(h);
    let split = SharedSplit {
        param: layer.conv.weight.id,
        classify: wa,
        segment: wb,
    };
    (a, b, split)
}

impl MultiTask {
    /// Class logits (N, classes) and per-pixel class scores (N, K_seg, H, W) of images
    /// (N, 3, H, W).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<4>) {
        let [_, _, h, w] = x.dims();
        let taps = self.fcn.features(x);
        let last = taps[2].clone();
        let seg = self.fcn.head(taps, h, w);
        (self.classify(last, &seg), seg)
    }

    /// The classification head on the last feature map (and, with `cascade`, on the
    /// segmentation scores `seg`).
    fn classify(&self, last: Tensor<4>, seg: &Tensor<4>) -> Tensor<2> {
        let mut pooled = global_avg_pool(last);
        if self.cascade {
            let shares = global_avg_pool(softmax(seg.clone().detach(), 1));
            pooled = Tensor::cat(vec![pooled, shares], 1);
        }
        self.classifier.forward(self.dropout.forward(pooled))
    }

    /// As [`MultiTask::forward`] (the same values and the same gradients for every parameter),
    /// but the last shared layer of the backbone — MobileNetV2's 1×1 `head` convolution, or the
    /// last convolution of a ResNet's last block — runs twice, once for each task, through two
    /// leaf copies of its weight. After a backward pass the copies' gradients are each task's
    /// gradient on that weight (GradNorm's ‖∇_W w_i L_i‖); their sum is the weight's own
    /// gradient, which the caller registers under [`SharedSplit::param`].
    pub fn forward_split(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<4>, SharedSplit) {
        let [_, _, h, w] = x.dims();
        let (f8, f16, last_cls, last_seg, split) = match &self.fcn.backbone {
            FcnBackbone::MobileNetV2(m) => {
                let mut y = m.stem.forward(x);
                let mut taps = Vec::with_capacity(2);
                for (i, block) in m.blocks.iter().enumerate() {
                    y = block.forward(y);
                    if self.fcn.taps.contains(&i) {
                        taps.push(y.clone());
                    }
                }
                let (a, b, split) = split_layer(&m.head, y);
                let f16 = taps.pop().expect("two taps");
                let f8 = taps.pop().expect("two taps");
                (f8, f16, a, b, split)
            }
            FcnBackbone::ResNet(r) => {
                let run = |mut y: Tensor<4>, blocks: &[crate::models::resnet::ResidualBlock]| {
                    for block in blocks {
                        y = block.forward(y);
                    }
                    y
                };
                let y = r.maxpool.forward(r.conv1.forward(x));
                let f8 = run(run(y, &r.layer1), &r.layer2);
                let f16 = run(f8.clone(), &r.layer3);
                let (last, rest) = r.layer4.split_last().expect("layer4 has blocks");
                let y = run(f16.clone(), rest);
                let shortcut = match &last.downsample {
                    Some(d) => d.forward(y.clone()),
                    None => y.clone(),
                };
                let mut hidden = last.conv1.forward(y);
                let final_conv = match &last.conv3 {
                    Some(c3) => {
                        hidden = last.conv2.forward(hidden);
                        c3
                    }
                    None => &last.conv2,
                };
                let (a, b, split) = split_layer(final_conv, hidden);
                (
                    f8,
                    f16,
                    relu(a + shortcut.clone()),
                    relu(b + shortcut),
                    split,
                )
            }
        };
        let seg = self.fcn.head([f8, f16, last_seg], h, w);
        (self.classify(last_cls, &seg), seg, split)
    }

    /// The number of image classes.
    pub fn num_classes(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, cascade: bool) -> MultiTaskSpec {
        MultiTaskSpec {
            backbone: name.parse().unwrap(),
            width: 0.25,
            num_classes: 3,
            seg_classes: 4,
            upsampler: UpsamplerKind::Bilinear,
            cascade,
        }
    }

    #[test]
    fn class_counts_are_checked_before_building() {
        use crate::ModelSpec;
        let check = |num_classes: usize, seg_classes: usize| {
            ModelSpec::Multitask(MultiTaskSpec {
                num_classes,
                seg_classes,
                ..spec("fcn32s-mobilenet-v2", true)
            })
            .check()
        };
        assert_eq!(check(3, 4), Ok(()));
        let e = check(0, 4).unwrap_err();
        assert!(
            e.contains("num_classes") && e.contains("1 to 100000"),
            "{e}"
        );
        let e = check(MAX_CLASSES + 1, 4).unwrap_err();
        assert!(e.contains("100001"), "{e}");
        // The segmentation classes: what a byte mask can name.
        let e = check(3, 256).unwrap_err();
        assert!(
            e.contains("num_classes") && e.contains("is 256") && e.contains("1 to 255"),
            "{e}"
        );
        assert!(spec("fcn32s-mobilenet-v2", true)
            .init(&Device::flex())
            .is_ok());
    }

    #[test]
    fn outputs_have_the_class_and_pixel_shapes() {
        let device = Device::flex();
        for (name, cascade) in [
            ("fcn8s-mobilenet-v2", false),
            ("fcn8s-mobilenet-v2", true),
            ("fcn32s-resnet18", true),
        ] {
            let s = spec(name, cascade);
            let model = s.init(&device).unwrap();
            let x = Tensor::<4>::ones([2, 3, 40, 52], &device);
            let (c, seg) = model.forward(x);
            assert_eq!(c.dims(), [2, 3], "{name}");
            assert_eq!(seg.dims(), [2, 4, 40, 52], "{name}");
            // MobileNetV2 at α ≤ 1 ends in 1280 channels, ResNet-18 in 512; cascade adds K_seg.
            let base = if name.contains("resnet") { 512 } else { 1280 };
            let want = base + if cascade { 4 } else { 0 };
            assert_eq!(s.classifier_inputs(), want);
            assert_eq!(model.classifier.weight.dims(), [want, 3]);
        }
    }

    #[test]
    fn the_segmentation_head_is_the_fcn_of_the_same_name() {
        // Same parameters → the multi-task model's segmentation equals the FCN's output.
        let device = Device::flex();
        let model = spec("fcn8s-mobilenet-v2", false).init(&device).unwrap();
        // Score layers start at zero; give them values so the comparison means something.
        let fcn = model.fcn.clone();
        let mut fcn = fcn;
        fcn.score32.weight = Param::from_tensor(fcn.score32.weight.val().ones_like());
        let model = MultiTask { fcn, ..model };
        let x = Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        let (_, seg) = model.forward(x.clone());
        let want = model.fcn.forward(x);
        let d = (seg - want).abs().max().into_scalar::<f32>();
        assert_eq!(d, 0.0);
    }

    #[test]
    fn cascade_changes_the_class_logits_with_the_segmentation() {
        // With cascade, the class logits move when only the segmentation scores change.
        let device = Device::flex();
        let model = spec("fcn8s-mobilenet-v2", true).init(&device).unwrap();
        let x = Tensor::<4>::ones([1, 3, 32, 32], &device);
        let (c0, _) = model.forward(x.clone());
        let mut m2 = model.clone();
        let bias = m2.fcn.score32.bias.as_ref().unwrap().val();
        let k = bias.dims()[0];
        let bumped = Tensor::<1>::from_data(
            burn::tensor::TensorData::new((0..k).map(|i| i as f32).collect::<Vec<f32>>(), [k]),
            &device,
        );
        m2.fcn.score32.bias = Some(Param::from_tensor(bumped));
        let (c1, _) = m2.forward(x);
        let d = (c0 - c1).abs().max().into_scalar::<f32>();
        assert!(d > 0.0);
    }

    #[test]
    fn every_head_trains_on_the_autodiff_device() {
        let device = Device::flex().autodiff();
        let model = spec("fcn8s-mobilenet-v2", true).init(&device).unwrap();
        let x = Tensor::<4>::ones([2, 3, 32, 32], &device);
        let (c, seg) = model.forward(x);
        let grads = (c.sum() + seg.sum()).backward();
        assert!(model.classifier.weight.val().grad(&grads).is_some());
        let bias = model.classifier.bias.as_ref().unwrap();
        assert!(bias.val().grad(&grads).is_some());
        assert!(model.fcn.score32.weight.val().grad(&grads).is_some());
        let FcnBackbone::MobileNetV2(m) = &model.fcn.backbone else {
            unreachable!()
        };
        assert!(m.stem.conv.weight.val().grad(&grads).is_some());
    }

    /// Gradients of (Σ class logits · a + Σ seg scores · b) for the shared layer and a
    /// backbone layer, by the plain and the split forward.
    fn split_matches_plain(name: &str) {
        let device = Device::flex().autodiff();
        // Seeded: with some random draws this untrained network's stem gradient reaches 1e7
        // and the two summation orders drift past the tolerance.
        device.seed(11);
        let mut model = spec(name, false).init(&device).unwrap();
        // Non-zero score layers, so the segmentation loss reaches the backbone.
        model.fcn.score32.weight =
            Param::from_tensor(model.fcn.score32.weight.val().detach().ones_like() * 0.1);
        // Dropout draws anew on every pass; off, so that both passes compute the same function.
        model.dropout = DropoutConfig::new(0.0).init();
        let model = model;
        let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
        let objective =
            |c: Tensor<2>, s: Tensor<4>| (c * 0.7).sum() + (s.powi_scalar(2) * 0.3).sum();
        let (c, s) = model.forward(x.clone());
        let plain = objective(c.clone(), s.clone()).backward();
        let (c2, s2, split) = model.forward_split(x);
        let d = (c.inner() - c2.clone().inner())
            .abs()
            .max()
            .into_scalar::<f32>()
            + (s.inner() - s2.clone().inner())
                .abs()
                .max()
                .into_scalar::<f32>();
        assert!(d < 1e-5, "{name}: outputs differ by {d}");
        let split_grads = objective(c2, s2).backward();
        let (shared, stem) = match &model.fcn.backbone {
            FcnBackbone::MobileNetV2(m) => (m.head.conv.weight.val(), m.stem.conv.weight.val()),
            FcnBackbone::ResNet(r) => {
                let last = r.layer4.last().unwrap();
                let w = last.conv3.as_ref().unwrap_or(&last.conv2).conv.weight.val();
                (w, r.conv1.conv.weight.val())
            }
        };
        assert_eq!(
            split.param,
            match &model.fcn.backbone {
                FcnBackbone::MobileNetV2(m) => m.head.conv.weight.id,
                FcnBackbone::ResNet(r) => {
                    let last = r.layer4.last().unwrap();
                    last.conv3.as_ref().unwrap_or(&last.conv2).conv.weight.id
                }
            }
        );
        let want = shared.grad(&plain).unwrap();
        assert!(
            shared.grad(&split_grads).is_none(),
            "the real weight is unused"
        );
        let ga = split.classify.grad(&split_grads).unwrap();
        let gb = split.segment.grad(&split_grads).unwrap();
        let scale = want.clone().abs().max().into_scalar::<f32>();
        assert!(scale > 0.0);
        let d = (ga.clone() + gb.clone() - want)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(
            d <= 1e-4 * scale,
            "{name}: shared gradient off by {d} (scale {scale})"
        );
        // Each copy carries only its own task's gradient: both non-zero here.
        assert!(ga.abs().max().into_scalar::<f32>() > 0.0);
        assert!(gb.abs().max().into_scalar::<f32>() > 0.0);
        let d = (stem.grad(&plain).unwrap() - stem.grad(&split_grads).unwrap())
            .abs()
            .max()
            .into_scalar::<f32>();
        let scale = stem.grad(&plain).unwrap().abs().max().into_scalar::<f32>();
        assert!(
            d <= 1e-3 * scale,
            "{name}: stem gradient off by {d} (scale {scale})"
        );
    }

    #[test]
    fn the_split_forward_gives_the_same_values_and_gradients() {
        split_matches_plain("fcn8s-mobilenet-v2");
        split_matches_plain("fcn16s-resnet18");
    }

    #[test]
    fn zero_classes_is_an_error_naming_the_field() {
        let mut s = spec("fcn8s-mobilenet-v2", false);
        s.num_classes = 0;
        let e = s.init(&Device::flex()).unwrap_err().to_string();
        assert!(e.contains("num_classes"), "{e}");
    }
}
