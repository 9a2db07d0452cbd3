//! The quantisation table of an int8 plan: one `(scale, zero point)` per activation value and one
//! weight scale per output channel of every convolution and linear layer that runs in int8, and
//! the checks that make a corrupt table an error instead of a wrong answer.

use crate::error::{Result, RuntimeError};
use crate::plan::{ConvKind, Op, Plan};
use serde::{Deserialize, Serialize};

/// How one activation value is stored: `real = scale·(q − zero)` for `q` in `0..=255`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActQuant {
    /// Step between consecutive codes (finite, positive).
    pub scale: f32,
    /// The code of real zero.
    pub zero: u8,
}

impl ActQuant {
    /// The 8-bit asymmetric quantisation covering `[lo, hi]` (widened to include 0, as real zero
    /// must have an exact code so that padding adds nothing).
    pub fn from_range(lo: f32, hi: f32) -> ActQuant {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let span = hi - lo;
        if !(span.is_finite() && span > 0.0) {
            return ActQuant {
                scale: 1.0,
                zero: 0,
            };
        }
        let scale = span / 255.0;
        let zero = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        ActQuant { scale, zero }
    }

    /// The code of `x` (round half to even, saturating).
    #[inline]
    pub fn quantize(&self, x: f32) -> u8 {
        crate::kernels::int8_requant::code(x / self.scale, self.zero as i32, 0, 255)
    }

    /// The real value of code `q`.
    #[inline]
    pub fn dequantize(&self, q: u8) -> f32 {
        self.scale * (q as f32 - self.zero as f32)
    }

    /// The codes `[lo, hi]` an activation clamps to (ReLU: reals below 0; ReLU6: above 6 too).
    pub fn clamp_codes(&self, act: crate::Activation) -> (u8, u8) {
        match act {
            crate::Activation::None => (0, 255),
            crate::Activation::Relu => (self.zero, 255),
            crate::Activation::Relu6 => (self.zero, self.quantize(6.0)),
        }
    }
}

/// Where the calibration ranges came from (kept in the plan for `kestrel info` and reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `minmax`, `percentile` or `entropy`.
    pub method: String,
    /// Number of calibration images.
    pub images: usize,
    /// Whether depthwise weights were given one scale per layer instead of per channel (the
    /// ablation).
    #[serde(default)]
    pub depthwise_per_tensor: bool,
}

/// Everything an fp32 [`Plan`] needs to run in int8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantTable {
    /// One entry per plan value (value 0 is the input).
    pub values: Vec<ActQuant>,
    /// Per op: the weight scale of each output channel for ops with int8 weights
    /// ([`int8_out_channels`]), empty for the others.
    pub weight_scales: Vec<Vec<f32>>,
    /// Provenance.
    pub calibration: Calibration,
}

/// The output channels of `op` if it runs with int8 weights: 1×1, depthwise and single-group
/// im2col convolutions, and linear layers. Other ops run on `u8` values directly (pools, adds) or
/// in `f32` between a dequantisation and a quantisation (resizes, transposed convolutions, ...).
pub fn int8_out_channels(op: &Op) -> Option<usize> {
    match op {
        Op::Conv(c) if c.kind != ConvKind::Im2col || c.groups == 1 => Some(c.out_channels),
        Op::Linear { out_features, .. } => Some(*out_features),
        _ => None,
    }
}

/// The output channel of weight element `i` of an int8 op in the plan's layout (every layout
/// keeps the output channel innermost).
pub fn weight_channel(i: usize, out_channels: usize) -> usize {
    i % out_channels
}

/// Symmetric per-channel scales for `weights` (laid out with the output channel innermost):
/// `max |w| / 127`, or the largest of them for every channel when `per_tensor`.
pub fn weight_scales(weights: &[f32], out_channels: usize, per_tensor: bool) -> Vec<f32> {
    let mut amax = vec![0f32; out_channels];
    for (i, w) in weights.iter().enumerate() {
        let c = weight_channel(i, out_channels);
        amax[c] = amax[c].max(w.abs());
    }
    if per_tensor {
        let m = amax.iter().copied().fold(0.0, f32::max);
        amax.fill(m);
    }
    amax.iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect()
}

/// `round(w / scale)` in `[-127, 127]`, per element, with the scale of its output channel.
pub fn quantize_weights(weights: &[f32], scales: &[f32]) -> Vec<i8> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let s = scales[weight_channel(i, scales.len())];
            (w / s).round_ties_even().clamp(-127.0, 127.0) as i8
        })
        .collect()
}

/// The int32 bias of an int8 op, in units of `input scale × weight scale` of its channel (as
/// ONNX's QDQ convention and ONNX Runtime's quantiser store it): `round(b / (sx·sw))`, saturating.
pub fn quantize_bias(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> Vec<i32> {
    bias.iter()
        .zip(weight_scales)
        .map(|(&b, &sw)| {
            let q = (b as f64 / (input_scale * sw) as f64).round_ties_even();
            q.clamp(-(i32::MAX as f64), i32::MAX as f64) as i32
        })
        .collect()
}

/// Whether `s` can be a scale: finite, positive and normal (so its products and quotients stay
/// finite and non-zero).
fn good_scale(s: f32) -> bool {
    s.is_finite() && s.is_normal() && s > 0.0 && s < 1e30
}

/// Refuses a plan with an op the int8 engine cannot run (CARAFE's reassembly, whose softmax
/// weights have no int8 form here), naming the op.
pub fn check_int8_ops(plan: &Plan) -> Result<()> {
    match plan
        .graph
        .ops
        .iter()
        .enumerate()
        .find(|(_, op)| matches!(op, Op::Carafe { .. }))
    {
        Some((i, op)) => Err(RuntimeError::InvalidPlan(format!(
            "op {i} ({}) has no int8 form: deploy this model in fp32",
            op.kind_name()
        ))),
        None => Ok(()),
    }
}

impl QuantTable {
    /// Checks the table against `plan`: one entry per value and op, every scale finite and
    /// positive, pools keeping their input's quantisation, and every requantisation multiplier
    /// finite and non-zero.
    pub fn validate(&self, plan: &Plan) -> Result<()> {
        let g = &plan.graph;
        let bad = |m: String| Err(RuntimeError::InvalidPlan(format!("quantisation: {m}")));
        check_int8_ops(plan)?;
        if self.values.len() != g.values.len() {
            return bad(format!(
                "{} value entries for {} values",
                self.values.len(),
                g.values.len()
            ));
        }
        if self.weight_scales.len() != g.ops.len() {
            return bad(format!(
                "{} weight-scale entries for {} ops",
                self.weight_scales.len(),
                g.ops.len()
            ));
        }
        for (v, q) in self.values.iter().enumerate() {
            if !good_scale(q.scale) {
                return bad(format!(
                    "value {v} has scale {}, expected a finite positive number",
                    q.scale
                ));
            }
        }
        for (i, (op, ws)) in g.ops.iter().zip(&self.weight_scales).enumerate() {
            let want = int8_out_channels(op).unwrap_or(0);
            if ws.len() != want {
                return bad(format!(
                    "op {i} ({}) has {} weight scales, expected {want}",
                    op.kind_name(),
                    ws.len()
                ));
            }
            let (sx, sy) = (
                self.values[op.inputs()[0]].scale,
                self.values[op.output()].scale,
            );
            for (c, &s) in ws.iter().enumerate() {
                let m = sx as f64 * s as f64 / sy as f64;
                if !(good_scale(s) && m.is_finite() && m > 1e-30 && m < 1e30) {
                    return bad(format!(
                        "op {i} ({}) channel {c}: weight scale {s} (requantisation multiplier {m:e}), expected a finite positive number",
                        op.kind_name()
                    ));
                }
            }
            if let Op::MaxPool { input, output, .. } | Op::GlobalAvgPool { input, output } = op {
                if self.values[*input] != self.values[*output] {
                    return bad(format!(
                        "op {i} ({}): output value {output} must keep input value {input}'s scale and zero point",
                        op.kind_name()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_include_zero_and_map_their_ends() {
        let q = ActQuant::from_range(0.0, 6.0);
        assert_eq!((q.zero, q.quantize(6.0), q.quantize(0.0)), (0, 255, 0));
        let q = ActQuant::from_range(-1.0, 3.0);
        assert_eq!(q.quantize(-1.0), 0);
        assert_eq!(q.quantize(3.0), 255);
        assert_eq!(q.dequantize(q.zero), 0.0);
        // A positive-only range still starts at 0.
        assert_eq!(ActQuant::from_range(2.0, 4.0).zero, 0);
        assert_eq!(ActQuant::from_range(0.0, 0.0).scale, 1.0);
    }

    #[test]
    fn per_channel_scales_follow_the_innermost_axis() {
        // [cin = 2][cout = 3]
        let w = [0.5, -2.0, 0.0, -1.0, 1.0, 0.0];
        assert_eq!(
            weight_scales(&w, 3, false),
            vec![1.0 / 127.0, 2.0 / 127.0, 1.0]
        );
        assert_eq!(weight_scales(&w, 3, true), vec![2.0 / 127.0; 3]);
        let s = weight_scales(&w, 3, false);
        assert_eq!(quantize_weights(&w, &s), vec![64, -127, 0, -127, 64, 0]);
    }
}
