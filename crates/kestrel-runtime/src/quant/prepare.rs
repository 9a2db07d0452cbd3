//! What the int8 engine derives from a [`QuantPlan`] once: packed int8 weights, the epilogue
//! constants of every convolution and linear layer, and a one-op fp32 plan for each op that runs
//! in `f32` between a dequantisation and a quantisation.

use super::table::{int8_out_channels, quantize_bias, quantize_weights, ActQuant};
use super::QuantPlan;
use crate::kernels::int8_gemm::PackedB8;
use crate::kernels::int8_requant::Requant;
use crate::plan::{ConvKind, Graph, Op, Plan, WeightRef};
use crate::Activation;

/// How one op runs.
pub(crate) enum Prepared {
    /// A GEMM over rows of pixels (1×1 convolution, linear layer) or of im2col patches.
    Gemm(Int8Layer<PackedB8>),
    /// A depthwise convolution; weights `[kh][kw][c]`.
    Depthwise(Int8Layer<Vec<i8>>),
    /// A pool or an add, on codes.
    Codes,
    /// In `f32` through this one-op plan (value 0 its input, value 1 its output); a convolution's
    /// residual and activation are left out of the plan and applied after it, in `f32`.
    Float(Box<Plan>, Option<(crate::plan::ValueId, Activation)>),
}

/// An op with int8 weights and its epilogue constants.
pub(crate) struct Int8Layer<W> {
    /// The weights.
    pub weight: W,
    /// The epilogue.
    pub epi: Epilogue,
}

impl<W> Int8Layer<W> {
    /// The epilogue as the kernels take it.
    pub(crate) fn requant(&self) -> Requant<'_> {
        let e = &self.epi;
        Requant {
            corr: &e.corr,
            mult: &e.mult,
            residual: e.residual,
            zero: e.zero,
            lo: e.lo,
            hi: e.hi,
        }
    }
}

/// The epilogue constants of an int8 op.
pub(crate) struct Epilogue {
    /// Per channel: the int32 bias, less `zx·Σ qw` for the GEMM (whose sums leave the input's
    /// zero point in).
    pub corr: Vec<i32>,
    /// Per channel: `sx·sw / sy` (codes out) or `sx·sw` (reals out).
    pub mult: Vec<f32>,
    /// Residual `(ratio, zero point)`: `sr / sy` or `sr`.
    pub residual: Option<(f32, u8)>,
    /// Output zero point.
    pub zero: u8,
    /// Output clamp in codes.
    pub lo: u8,
    /// See `lo`.
    pub hi: u8,
    /// Activation (applied in `f32` when this op writes the network's output).
    pub act: Activation,
}

/// Prepares every op of `q` (which must be valid).
pub(crate) fn prepare(q: &QuantPlan) -> Vec<Prepared> {
    let (plan, table) = (&q.plan, &q.table);
    let g = &plan.graph;
    g.ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let Some(cout) = int8_out_channels(op) else {
                return match op {
                    Op::MaxPool { .. } | Op::GlobalAvgPool { .. } | Op::Add { .. } => {
                        Prepared::Codes
                    }
                    Op::Conv(c) if c.residual.is_some() => {
                        let mut bare = c.clone();
                        bare.residual = None;
                        bare.act = Activation::None;
                        let p = one_op_plan(plan, &Op::Conv(bare));
                        Prepared::Float(Box::new(p), c.residual.map(|r| (r, c.act)))
                    }
                    _ => Prepared::Float(Box::new(one_op_plan(plan, op)), None),
                };
            };
            let (input, output, weight, bias, act, residual) = match op {
                Op::Conv(c) => (c.input, c.output, c.weight, c.bias, c.act, c.residual),
                Op::Linear {
                    input,
                    output,
                    weight,
                    bias,
                    act,
                    ..
                } => (*input, *output, *weight, *bias, *act, None),
                _ => unreachable!("int8_out_channels names convolutions and linear layers"),
            };
            let sw = &table.weight_scales[i];
            let (x, y) = (table.values[input], table.values[output]);
            let reals_out = output == g.output;
            let qw = quantize_weights(plan.slice(weight), sw);
            let qb = quantize_bias(plan.slice(bias), x.scale, sw);
            let mult = sw
                .iter()
                .map(|&s| {
                    let m = x.scale as f64 * s as f64;
                    (if reals_out { m } else { m / y.scale as f64 }) as f32
                })
                .collect();
            let residual = residual.map(|r| {
                let rq: ActQuant = table.values[r];
                let ratio = if reals_out {
                    rq.scale
                } else {
                    (rq.scale as f64 / y.scale as f64) as f32
                };
                (ratio, rq.zero)
            });
            let (lo, hi) = y.clamp_codes(act);
            let epi = |corr| Epilogue {
                corr,
                mult,
                residual,
                zero: y.zero,
                lo,
                hi,
                act,
            };
            let depthwise = matches!(op, Op::Conv(c) if c.kind == ConvKind::Depthwise);
            if depthwise {
                Prepared::Depthwise(Int8Layer {
                    weight: qw,
                    epi: epi(qb),
                })
            } else {
                let k = qw.len() / cout;
                let packed = PackedB8::pack(&qw, k, cout, cout);
                let zx = x.zero as i64;
                let corr = qb
                    .iter()
                    .zip(&packed.col_sums)
                    .map(|(&b, &s)| (b as i64 - zx * s as i64).clamp(-(1 << 30), 1 << 30) as i32)
                    .collect();
                Prepared::Gemm(Int8Layer {
                    weight: packed,
                    epi: epi(corr),
                })
            }
        })
        .collect()
}

/// The plan of `op` alone: its input as value 0, its output as value 1, its weights copied.
fn one_op_plan(plan: &Plan, op: &Op) -> Plan {
    let g = &plan.graph;
    let mut weights = Vec::new();
    let mut take = |r: WeightRef| {
        let offset = weights.len();
        weights.extend_from_slice(plan.slice(r));
        WeightRef { offset, len: r.len }
    };
    let (input, output) = (op.inputs()[0], op.output());
    let op = match op.clone() {
        Op::Clip { min, max, .. } => Op::Clip {
            input: 0,
            output: 1,
            min,
            max,
        },
        Op::Resize {
            mode,
            align_corners,
            scale,
            ..
        } => Op::Resize {
            input: 0,
            output: 1,
            mode,
            align_corners,
            scale,
        },
        Op::ConvTranspose(mut c) => {
            c.input = 0;
            c.output = 1;
            c.weight = take(c.weight);
            c.bias = take(c.bias);
            Op::ConvTranspose(c)
        }
        Op::PixelShuffle { factor, .. } => Op::PixelShuffle {
            input: 0,
            output: 1,
            factor,
        },
        Op::Crop { .. } => Op::Crop {
            input: 0,
            output: 1,
        },
        Op::Conv(mut c) => {
            c.input = 0;
            c.output = 1;
            c.weight = take(c.weight);
            c.bias = take(c.bias);
            Op::Conv(c)
        }
        other => unreachable!("{} runs on codes", other.kind_name()),
    };
    Plan {
        graph: Graph {
            values: vec![g.values[input], g.values[output]],
            ops: vec![op],
            output: 1,
        },
        weights,
    }
}
