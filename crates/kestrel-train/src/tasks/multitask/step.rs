//! One multi-task training step without the loop around it: forward, the two task losses, their
//! weighted total, backward, the weighting's update, and the gradients for the optimiser. The
//! loop ([`crate::tasks::multitask`]) only draws batches, steps the optimiser and logs.

use crate::error::{Result, TrainError};
use crate::loss::CrossEntropy;
use crate::tasks::multitask::weighting::LossWeighting;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor};
use kestrel_nn::models::multitask::{MultiTask, SharedSplit};

/// Names of the tasks, in the order of every per-task vector: (classify, segment).
pub const TASKS: [&str; 2] = ["classify", "segment"];

/// What one step measured.
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    /// Unweighted loss of each task, in [`TASKS`] order.
    pub losses: [f64; 2],
    /// The weighted total that was differentiated.
    pub total: f64,
    /// Predicted image class of each sample.
    pub class_pred: Vec<usize>,
}

/// Cross-entropy of the class logits (N, C) and the per-pixel cross-entropy of the scores
/// (N, K, H, W) with mask value 255 ignored, in [`TASKS`] order.
pub fn task_losses(
    class_logits: Tensor<2>,
    seg_logits: Tensor<4>,
    labels: Tensor<1, Int>,
    masks: Tensor<3, Int>,
) -> Result<[Tensor<1>; 2]> {
    let classify = CrossEntropy::new().forward(class_logits, labels)?;
    let segment = CrossEntropy::segmentation().forward_nchw(seg_logits, masks)?;
    Ok([classify, segment])
}

/// Euclidean norm of a tensor's values.
fn norm(t: Tensor<4>) -> Result<f64> {
    let v: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| TrainError::Runtime(format!("reading a gradient: {e:?}")))?;
    Ok(v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt())
}

/// The forward half of a step: the weighted total loss to differentiate and what the backward
/// half needs.
pub struct Forward {
    /// The weighted total loss (shape [1]), on the autodiff graph.
    pub total: Tensor<1>,
    /// What the step measured.
    pub stats: StepStats,
    log_vars: Option<Tensor<1>>,
    split: Option<SharedSplit>,
}

/// The forward half of a step on a batch (images `x`, image labels, masks) of `model` on an
/// autodiff device. A non-finite loss is a runtime error.
pub fn forward_step(
    model: &MultiTask,
    weighting: &LossWeighting,
    x: Tensor<4>,
    labels: Tensor<1, Int>,
    masks: Tensor<3, Int>,
) -> Result<Forward> {
    let device = x.device();
    let (class_logits, seg_logits, split) = if weighting.needs_task_gradients() {
        let (c, s, split) = model.forward_split(x);
        (c, s, Some(split))
    } else {
        let (c, s) = model.forward(x);
        (c, s, None)
    };
    let class_pred = crate::tasks::predicted_classes(class_logits.clone())?;
    let losses = task_losses(class_logits, seg_logits, labels, masks)?;
    let values = [
        losses[0].clone().into_scalar::<f32>() as f64,
        losses[1].clone().into_scalar::<f32>() as f64,
    ];
    let combined = weighting.combine(&losses, &device);
    let total = combined.total.clone().into_scalar::<f32>() as f64;
    if !total.is_finite() || values.iter().any(|v| !v.is_finite()) {
        return Err(TrainError::Runtime(format!(
            "training loss became {total} (classify {}, segment {})",
            values[0], values[1]
        )));
    }
    Ok(Forward {
        total: combined.total,
        stats: StepStats {
            losses: values,
            total,
            class_pred,
        },
        log_vars: combined.log_vars,
        split,
    })
}

/// The backward half: the gradients of `loss` (the forward's total, plus any penalty) for the
/// optimiser, updating `weighting` (uncertainty's s at learning rate `lr`, GradNorm's weights)
/// from what `forward` measured.
pub fn backward_step(
    model: &MultiTask,
    weighting: &mut LossWeighting,
    forward: Forward,
    loss: Tensor<1>,
    lr: f64,
) -> Result<GradientsParams> {
    let Forward {
        stats,
        log_vars,
        split,
        ..
    } = forward;
    let mut grads = loss.backward();
    let s_grad = match &log_vars {
        Some(s) => Some(
            s.grad(&grads)
                .ok_or_else(|| TrainError::Runtime("no gradient for the log-variances".into()))?
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Runtime(format!("reading a gradient: {e:?}")))?
                .into_iter()
                .map(f64::from)
                .collect::<Vec<f64>>(),
        ),
        None => None,
    };
    let mut shared = None;
    if let Some(split) = split {
        let missing = || TrainError::Runtime("no gradient on the last shared layer".into());
        let ga = split.classify.grad_remove(&mut grads).ok_or_else(missing)?;
        let gb = split.segment.grad_remove(&mut grads).ok_or_else(missing)?;
        shared = Some((split.param, ga, gb));
    }
    let mut params = GradientsParams::from_grads(grads, model);
    let mut norms = None;
    if let Some((id, ga, gb)) = shared {
        norms = Some([norm(ga.clone())?, norm(gb.clone())?]);
        // The weight's own gradient: both tasks' parts.
        params.register(id, ga + gb);
    }
    weighting.after_step(
        &stats.losses,
        s_grad.as_deref(),
        norms.as_ref().map(|n| &n[..]),
        lr,
    );
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::multitask::weighting::WeightingKind;
    use burn::tensor::{Device, TensorData};
    use kestrel_nn::models::multitask::MultiTaskSpec;
    use kestrel_nn::upsample::UpsamplerKind;

    /// One step on a batch (images `x`, image labels, masks) of `model` on an autodiff device:
    /// returns the gradients for the optimiser and what the step measured, and updates
    /// `weighting` (uncertainty's s at learning rate `lr`, GradNorm's weights). A non-finite total
    /// loss is a runtime error before any update.
    fn train_step(
        model: &MultiTask,
        weighting: &mut LossWeighting,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        masks: Tensor<3, Int>,
        lr: f64,
    ) -> Result<(GradientsParams, StepStats)> {
        let forward = forward_step(model, weighting, x, labels, masks)?;
        let stats = forward.stats.clone();
        let loss = forward.total.clone();
        let grads = backward_step(model, weighting, forward, loss, lr)?;
        Ok((grads, stats))
    }

    fn batch(device: &Device) -> (Tensor<4>, Tensor<1, Int>, Tensor<3, Int>) {
        let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), device);
        let mask: Vec<i64> = (0..2 * 32 * 32).map(|i| (i % 3) as i64).collect();
        let masks = Tensor::<3, Int>::from_data(TensorData::new(mask, [2, 32, 32]), device);
        (x, labels, masks)
    }

    fn model(device: &Device) -> MultiTask {
        let mut m = MultiTaskSpec {
            backbone: "fcn8s-mobilenet-v2".parse().unwrap(),
            width: 0.25,
            num_classes: 3,
            seg_classes: 3,
            upsampler: UpsamplerKind::Bilinear,
            cascade: false,
        }
        .init(device)
        .unwrap();
        m.dropout = burn::nn::DropoutConfig::new(0.0).init();
        m
    }

    #[test]
    fn gradnorm_step_gives_the_plain_gradients_and_moves_the_weights() {
        // The split forward of GradNorm must hand the optimiser the same gradient as a fixed
        // weighting at the same weights (1, 1) — including the shared layer's.
        let device = Device::flex().autodiff();
        let m = model(&device);
        let (x, y, masks) = batch(&device);
        let mut fixed = LossWeighting::new(WeightingKind::Fixed, 2, &[1.0, 1.0], 1.5).unwrap();
        let mut gn = LossWeighting::new(WeightingKind::GradNorm, 2, &[], 1.5).unwrap();
        let (g_fixed, s_fixed) =
            train_step(&m, &mut fixed, x.clone(), y.clone(), masks.clone(), 1e-3).unwrap();
        let (g_gn, s_gn) = train_step(&m, &mut gn, x, y, masks, 1e-3).unwrap();
        assert!((s_fixed.total - s_gn.total).abs() < 1e-5 * s_fixed.total);
        let kestrel_nn::models::fcn::FcnBackbone::MobileNetV2(b) = &m.fcn.backbone else {
            unreachable!()
        };
        for id in [b.head.conv.weight.id, b.stem.conv.weight.id] {
            let a = g_fixed.get::<4>(id).unwrap();
            let c = g_gn.get::<4>(id).unwrap();
            let scale = a.clone().abs().max().into_scalar::<f32>();
            let d = (a - c).abs().max().into_scalar::<f32>();
            assert!(scale > 0.0 && d <= 1e-3 * scale, "{d} vs {scale}");
        }
        // The first GradNorm update: r = 1 for both tasks, so the weights move towards equal
        // gradient norms, and they still sum to 2.
        let w = gn.weights();
        assert!(w != vec![1.0, 1.0], "{w:?}");
        assert!((w[0] + w[1] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn uncertainty_step_moves_s_against_its_gradient() {
        // ∂total/∂s_i = 1 − exp(−s_i)·L_i: s falls for a task whose loss is below 1 (its weight
        // exp(−s) rises) and rises for one above 1 (its weight falls).
        let device = Device::flex().autodiff();
        let m = model(&device);
        let (x, y, masks) = batch(&device);
        let mut w = LossWeighting::new(WeightingKind::Uncertainty, 2, &[], 1.5).unwrap();
        let (_, stats) = train_step(&m, &mut w, x, y, masks, 0.01).unwrap();
        for (i, l) in stats.losses.iter().enumerate() {
            let moved = w.weights()[i] - 1.0;
            // Adam's first step is lr·sign(g): the weight exp(−s) moves by ≈ 0.01.
            assert_eq!(
                moved > 0.0,
                *l < 1.0,
                "task {i}: loss {l}, weight {:?}",
                w.weights()
            );
            assert!((moved.abs() - 0.01).abs() < 1e-3, "{moved}");
        }
        // The total is Σ exp(−0)·L_i + 0 at the first step.
        assert!((stats.total - stats.losses.iter().sum::<f64>()).abs() < 1e-5);
    }
}
