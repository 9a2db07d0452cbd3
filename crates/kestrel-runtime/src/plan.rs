//! The plan: a topologically ordered list of fused operations over per-image NHWC values, with
//! every weight in one flat array, laid out for the kernel that reads it.

use crate::error::{Result, RuntimeError};
use crate::kernels::carafe::MAX_KERNEL;
use crate::kernels::resize::ResizeMode;
use crate::kernels::ConvGeometry;
use crate::Activation;
use serde::{Deserialize, Serialize};

/// Index of a value (an activation tensor) in [`Graph::values`]; value 0 is the input.
pub type ValueId = usize;

/// Per-image shape of a value, `(height, width, channels)`; the batch is chosen at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// The shape `h × w × c`.
    pub const fn new(h: usize, w: usize, c: usize) -> Self {
        Shape { h, w, c }
    }

    /// Floats per image.
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Whether the value holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.h, self.w, self.c)
    }
}

/// The largest value (floats per image) a plan may declare.
pub const MAX_VALUE_FLOATS: usize = 1 << 31;

/// A slice `[offset, offset + len)` of [`Plan::weights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightRef {
    /// First float.
    pub offset: usize,
    /// Number of floats.
    pub len: usize,
}

/// Which kernel runs a convolution, and so how its weights are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConvKind {
    /// 1×1, stride 1, no padding, one group: a GEMM on NHWC rows; weights `[cin][cout]`.
    Pointwise,
    /// One filter per channel: direct kernel; weights `[kh][kw][c]`.
    Depthwise,
    /// Anything else: im2col + GEMM; weights `[groups][kh][kw][cin/groups][cout/groups]`.
    Im2col,
}

/// A convolution with folded batch norm (bias), activation and optional residual:
/// `output = act(conv(input) + bias + residual)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvOp {
    /// Input value.
    pub input: ValueId,
    /// Output value.
    pub output: ValueId,
    /// Value added before the activation, shaped like the output.
    pub residual: Option<ValueId>,
    /// Kernel (and weight layout).
    pub kind: ConvKind,
    /// Window.
    pub geom: ConvGeometry,
    /// Channel groups.
    pub groups: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Weights in the layout of `kind`.
    pub weight: WeightRef,
    /// One bias per output channel.
    pub bias: WeightRef,
    /// Activation.
    pub act: Activation,
}

/// A transposed convolution (PyTorch `ConvTranspose2d`) with bias and activation:
/// `output = act(conv_transpose(input) + bias)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvTransposeOp {
    /// Input value.
    pub input: ValueId,
    /// Output value.
    pub output: ValueId,
    /// Kernel, stride, padding (removed from both sides of the output) and dilation.
    pub geom: ConvGeometry,
    /// Extra rows / columns on the bottom / right of the output.
    pub output_padding: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Weights `[groups][kh][kw][in/groups][out/groups]`.
    pub weight: WeightRef,
    /// One bias per output channel.
    pub bias: WeightRef,
    /// Activation.
    pub act: Activation,
}

/// One fused operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Convolution (see [`ConvOp`]).
    Conv(ConvOp),
    /// Max pooling, padding ignored.
    MaxPool {
        /// Input value.
        input: ValueId,
        /// Output value.
        output: ValueId,
        /// Window.
        geom: ConvGeometry,
    },
    /// Mean over height and width, giving a `1×1×c` value.
    GlobalAvgPool {
        /// Input value.
        input: ValueId,
        /// Output value.
        output: ValueId,
    },
    /// Fully connected layer on a `1×1×in` value: `act(x · W + b)`, weights `[in][out]`.
    Linear {
        /// Input value.
        input: ValueId,
        /// Output value.
        output: ValueId,
        /// Output features.
        out_features: usize,
        /// `[in][out]` weights.
        weight: WeightRef,
        /// `out` biases.
        bias: WeightRef,
        /// Activation.
        act: Activation,
    },
    /// `act(a + b)` for two values of one shape.
    Add {
        /// First operand.
        a: ValueId,
        /// Second operand.
        b: ValueId,
        /// Output value.
        output: ValueId,
        /// Activation.
        act: Activation,
    },
    /// `min(max(x, min), max)`.
    Clip {
        /// Input value.
        input: ValueId,
        /// Output value.
        output: ValueId,
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Resampling to the output value's height and width (same channels), with PyTorch's
    /// `F.interpolate` conventions (see [`crate::kernels::resize`]).
    Resize {
        /// Input value.
        input: ValueId,
        /// Output value.
        output: ValueId,
        /// Interpolation kernel.
        mode: ResizeMode,
        /// PyTorch's `align_corners` (ignored by nearest).
        align_corners: bool,
        /// The scale factors `[height, width]` the model was given, if any (they define the
        /// sampling positions when not using `align_corners`); `None`: input / output size.
        scale: Option<[f64; 2]>,
    },
    /// Transposed convolution (see [`ConvTransposeOp`]).
    ConvTranspose(ConvTransposeOp),
    /// Depth to space by `factor` r, PyTorch's `pixel_shuffle`: `(h, w, c·r²) → (h·r, w·r, c)`.
    PixelShuffle {
        /// Input value.
        input: ValueId,
        /// Output value.
        output: ValueId,
        /// Upscale factor r.
        factor: usize,
    },
    /// CARAFE's reassembly (see [`crate::kernels::carafe`]): `input` `(h, w, c)` upsampled by
    /// `factor` σ with the kernels whose logits `kernels` `(h, w, σ²·k²)` holds (the content
    /// encoder's output, before its pixel shuffle and softmax).
    Carafe {
        /// The features to reassemble.
        input: ValueId,
        /// The kernels' logits.
        kernels: ValueId,
        /// Output value, `(σh, σw, c)`.
        output: ValueId,
        /// Upsampling factor σ.
        factor: usize,
        /// Reassembly kernel side k (odd).
        kernel: usize,
    },
    /// The top-left corner of the input, of the output value's height and width.
    Crop {
        /// Input value.
        input: ValueId,
        /// Output value.
        output: ValueId,
    },
}

impl Op {
    /// Values this op reads.
    pub fn inputs(&self) -> Vec<ValueId> {
        match self {
            Op::Conv(c) => std::iter::once(c.input).chain(c.residual).collect(),
            Op::MaxPool { input, .. }
            | Op::GlobalAvgPool { input, .. }
            | Op::Linear { input, .. }
            | Op::Clip { input, .. }
            | Op::Resize { input, .. }
            | Op::PixelShuffle { input, .. }
            | Op::Crop { input, .. } => {
                vec![*input]
            }
            Op::ConvTranspose(c) => vec![c.input],
            Op::Add { a, b, .. } => vec![*a, *b],
            Op::Carafe { input, kernels, .. } => vec![*input, *kernels],
        }
    }

    /// The value this op writes.
    pub fn output(&self) -> ValueId {
        match self {
            Op::Conv(c) => c.output,
            Op::MaxPool { output, .. }
            | Op::GlobalAvgPool { output, .. }
            | Op::Linear { output, .. }
            | Op::Add { output, .. }
            | Op::Clip { output, .. }
            | Op::Resize { output, .. }
            | Op::PixelShuffle { output, .. }
            | Op::Carafe { output, .. }
            | Op::Crop { output, .. } => *output,
            Op::ConvTranspose(c) => c.output,
        }
    }

    /// A short name of the kind of op, for profiles (`conv1x1`, `depthwise`, `conv_im2col`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::Conv(c) => match c.kind {
                ConvKind::Pointwise => "conv1x1",
                ConvKind::Depthwise => "depthwise",
                ConvKind::Im2col => "conv_im2col",
            },
            Op::MaxPool { .. } => "max_pool",
            Op::GlobalAvgPool { .. } => "global_avg_pool",
            Op::Linear { .. } => "linear",
            Op::Add { .. } => "add",
            Op::Clip { .. } => "clip",
            Op::Resize { mode, .. } => match mode {
                ResizeMode::Nearest => "resize_nearest",
                ResizeMode::Linear => "resize_linear",
                ResizeMode::Cubic => "resize_cubic",
            },
            Op::ConvTranspose(_) => "conv_transpose",
            Op::PixelShuffle { .. } => "pixel_shuffle",
            Op::Carafe { .. } => "carafe",
            Op::Crop { .. } => "crop",
        }
    }
}

/// The graph part of a plan: everything but the weight values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Shape of every value; `values[0]` is the input.
    pub values: Vec<Shape>,
    /// Operations in execution order; op `i` writes a value no earlier op wrote.
    pub ops: Vec<Op>,
    /// The value returned by the engine.
    pub output: ValueId,
}

/// A complete, validated model for the [`crate::Engine`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Values and ops.
    pub graph: Graph,
    /// All weights, referenced by [`WeightRef`]s.
    pub weights: Vec<f32>,
}

impl Plan {
    /// Per-image input shape.
    pub fn input_shape(&self) -> Shape {
        self.graph.values[0]
    }

    /// Per-image output shape.
    pub fn output_shape(&self) -> Shape {
        self.graph.values[self.graph.output]
    }

    /// The slice of weights `r` points at (the plan must be valid).
    pub fn slice(&self, r: WeightRef) -> &[f32] {
        &self.weights[r.offset..r.offset + r.len]
    }

    /// Multiply-accumulates per image (convolutions and linear layers).
    pub fn macs(&self) -> u64 {
        let v = &self.graph.values;
        self.graph
            .ops
            .iter()
            .map(|op| match op {
                Op::Conv(c) => {
                    let (i, o) = (v[c.input], v[c.output]);
                    (o.len() * (i.c / c.groups) * c.geom.kernel[0] * c.geom.kernel[1]) as u64
                }
                Op::Linear {
                    input,
                    out_features,
                    ..
                } => (v[*input].len() * out_features) as u64,
                Op::ConvTranspose(c) => {
                    let i = v[c.input];
                    (i.len() * (c.out_channels / c.groups) * c.geom.kernel[0] * c.geom.kernel[1])
                        as u64
                }
                _ => 0,
            })
            .sum()
    }

    /// Checks every reference, shape and weight size; the engine runs only valid plans.
    pub fn validate(&self) -> Result<()> {
        let g = &self.graph;
        let bad = |msg: String| Err(RuntimeError::InvalidPlan(msg));
        if g.values.is_empty() {
            return bad("no values (value 0 must be the input)".into());
        }
        for (v, s) in g.values.iter().enumerate() {
            let len = s.h.checked_mul(s.w).and_then(|x| x.checked_mul(s.c));
            match len {
                Some(0) => return bad(format!("value {v} ({s}) has a zero dimension")),
                Some(n) if n <= MAX_VALUE_FLOATS => {}
                _ => {
                    return bad(format!(
                        "value {v} ({s}) exceeds {MAX_VALUE_FLOATS} floats per image"
                    ))
                }
            }
        }
        let mut defined = vec![false; g.values.len()];
        defined[0] = true;
        let weight_ok = |i: usize, what: &str, r: WeightRef, want: usize| -> Result<()> {
            if r.len != want {
                return Err(RuntimeError::InvalidPlan(format!(
                    "op {i}: {what} has {} floats, expected {want}",
                    r.len
                )));
            }
            match r.offset.checked_add(r.len) {
                Some(end) if end <= self.weights.len() => Ok(()),
                _ => Err(RuntimeError::InvalidPlan(format!(
                    "op {i}: {what} [{}, +{}) lies outside the {} weights",
                    r.offset,
                    r.len,
                    self.weights.len()
                ))),
            }
        };
        for (i, op) in g.ops.iter().enumerate() {
            for v in op.inputs() {
                if v >= g.values.len() || !defined[v] {
                    return bad(format!(
                        "op {i} ({}) reads value {v} before it is written",
                        op.kind_name()
                    ));
                }
            }
            let out = op.output();
            if out >= g.values.len() || defined[out] {
                return bad(format!(
                    "op {i} ({}) writes value {out}, which is out of range or already written",
                    op.kind_name()
                ));
            }
            defined[out] = true;
            let os = g.values[out];
            let expect = |want: Shape| -> Result<()> {
                if want != os {
                    return Err(RuntimeError::InvalidPlan(format!(
                        "op {i} ({}): output value {out} is {os}, expected {want}",
                        op.kind_name()
                    )));
                }
                Ok(())
            };
            match op {
                Op::Conv(c) => {
                    let is = g.values[c.input];
                    if c.groups == 0
                        || !is.c.is_multiple_of(c.groups)
                        || !c.out_channels.is_multiple_of(c.groups)
                    {
                        return bad(format!(
                            "op {i}: {} input and {} output channels are not divisible into {} groups",
                            is.c, c.out_channels, c.groups
                        ));
                    }
                    let Some((oh, ow)) = c.geom.output_hw(is.h, is.w) else {
                        return bad(format!(
                            "op {i}: window {:?} does not fit input {is}",
                            c.geom
                        ));
                    };
                    expect(Shape::new(oh, ow, c.out_channels))?;
                    let [kh, kw] = c.geom.kernel;
                    let wlen = match c.kind {
                        ConvKind::Pointwise => {
                            if !c.geom.is_pointwise() || c.groups != 1 || c.geom.dilation != [1, 1]
                            {
                                return bad(format!("op {i}: pointwise kind needs a 1x1 stride-1 unpadded single-group window"));
                            }
                            Some(is.c * c.out_channels)
                        }
                        ConvKind::Depthwise => {
                            if c.groups != is.c || c.out_channels != is.c {
                                return bad(format!(
                                    "op {i}: depthwise kind needs groups = in = out channels ({})",
                                    is.c
                                ));
                            }
                            kh.checked_mul(kw).and_then(|x| x.checked_mul(is.c))
                        }
                        ConvKind::Im2col => kh
                            .checked_mul(kw)
                            .and_then(|x| x.checked_mul(is.c / c.groups))
                            .and_then(|x| x.checked_mul(c.out_channels)),
                    };
                    let Some(wlen) = wlen else {
                        return bad(format!(
                            "op {i}: weight size of a {kh}x{kw} kernel overflows"
                        ));
                    };
                    weight_ok(i, "weight", c.weight, wlen)?;
                    weight_ok(i, "bias", c.bias, c.out_channels)?;
                    if let Some(r) = c.residual {
                        if g.values[r] != os {
                            return bad(format!(
                                "op {i}: residual value {r} is {}, expected {os}",
                                g.values[r]
                            ));
                        }
                    }
                }
                Op::MaxPool { input, geom, .. } => {
                    let is = g.values[*input];
                    let Some((oh, ow)) = geom.output_hw(is.h, is.w) else {
                        return bad(format!("op {i}: window {geom:?} does not fit input {is}"));
                    };
                    expect(Shape::new(oh, ow, is.c))?;
                }
                Op::GlobalAvgPool { input, .. } => expect(Shape::new(1, 1, g.values[*input].c))?,
                Op::Linear {
                    input,
                    out_features,
                    weight,
                    bias,
                    ..
                } => {
                    let is = g.values[*input];
                    if is.h != 1 || is.w != 1 {
                        return bad(format!("op {i}: linear input is {is}, expected 1x1xC (add a global pool first)"));
                    }
                    expect(Shape::new(1, 1, *out_features))?;
                    weight_ok(i, "weight", *weight, is.c * out_features)?;
                    weight_ok(i, "bias", *bias, *out_features)?;
                }
                Op::Add { a, b, .. } => {
                    if g.values[*a] != g.values[*b] {
                        return bad(format!(
                            "op {i}: add of {} and {}",
                            g.values[*a], g.values[*b]
                        ));
                    }
                    expect(g.values[*a])?;
                }
                Op::Clip {
                    input, min, max, ..
                } => {
                    if min > max || min.is_nan() || max.is_nan() {
                        return bad(format!(
                            "op {i}: clip bounds [{min}, {max}] are not ordered"
                        ));
                    }
                    expect(g.values[*input])?;
                }
                Op::Resize { input, scale, .. } => {
                    let is = g.values[*input];
                    if os.c != is.c {
                        return bad(format!(
                            "op {i}: resize of {is} to {os} changes the channels"
                        ));
                    }
                    if let Some(s) = scale {
                        if s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                            return bad(format!(
                                "op {i}: resize scale {s:?} is not finite and positive"
                            ));
                        }
                    }
                }
                Op::ConvTranspose(c) => {
                    let is = g.values[c.input];
                    if c.groups == 0
                        || !is.c.is_multiple_of(c.groups)
                        || !c.out_channels.is_multiple_of(c.groups)
                    {
                        return bad(format!(
                            "op {i}: {} input and {} output channels are not divisible into {} groups",
                            is.c, c.out_channels, c.groups
                        ));
                    }
                    let Some((oh, ow)) = c.geom.transposed_output_hw(c.output_padding, is.h, is.w)
                    else {
                        return bad(format!(
                            "op {i}: transposed window {:?} (output padding {:?}) gives no output for {is}",
                            c.geom, c.output_padding
                        ));
                    };
                    expect(Shape::new(oh, ow, c.out_channels))?;
                    let [kh, kw] = c.geom.kernel;
                    let Some(wlen) = kh
                        .checked_mul(kw)
                        .and_then(|x| x.checked_mul(is.c))
                        .and_then(|x| x.checked_mul(c.out_channels / c.groups))
                    else {
                        return bad(format!(
                            "op {i}: weight size of a {kh}x{kw} kernel overflows"
                        ));
                    };
                    weight_ok(i, "weight", c.weight, wlen)?;
                    weight_ok(i, "bias", c.bias, c.out_channels)?;
                }
                Op::PixelShuffle { input, factor, .. } => {
                    let is = g.values[*input];
                    let r2 = factor.checked_mul(*factor).unwrap_or(0);
                    if r2 == 0 || !is.c.is_multiple_of(r2) {
                        return bad(format!(
                            "op {i}: pixel shuffle by {factor} needs channels divisible by {r2}, input is {is}"
                        ));
                    }
                    let (Some(h), Some(w)) = (is.h.checked_mul(*factor), is.w.checked_mul(*factor))
                    else {
                        return bad(format!("op {i}: pixel shuffle by {factor} overflows"));
                    };
                    expect(Shape { h, w, c: is.c / r2 })?;
                }
                Op::Carafe {
                    input,
                    kernels,
                    factor,
                    kernel,
                    ..
                } => {
                    let (is, ks) = (g.values[*input], g.values[*kernels]);
                    let (s, k) = (*factor, *kernel);
                    if s == 0 || k.is_multiple_of(2) || k > MAX_KERNEL {
                        return bad(format!(
                            "op {i}: carafe factor {s} and kernel {k}: expected a factor >= 1 and an odd kernel of at most {MAX_KERNEL}"
                        ));
                    }
                    let want = s
                        .checked_mul(s)
                        .and_then(|s2| s2.checked_mul(k * k))
                        .map(|c| Shape::new(is.h, is.w, c));
                    if want != Some(ks) {
                        return bad(format!(
                            "op {i}: carafe kernels value is {ks}, expected {}x{} with {s}²·{k}² channels (factor² · kernel² logits per input pixel)",
                            is.h, is.w
                        ));
                    }
                    let (Some(h), Some(w)) = (is.h.checked_mul(s), is.w.checked_mul(s)) else {
                        return bad(format!("op {i}: carafe by {s} overflows"));
                    };
                    expect(Shape::new(h, w, is.c))?;
                }
                Op::Crop { input, .. } => {
                    let is = g.values[*input];
                    if os.c != is.c || os.h > is.h || os.w > is.w {
                        return bad(format!(
                            "op {i}: crop of {is} to {os}: expected the same channels and no larger size"
                        ));
                    }
                }
            }
        }
        if g.output >= g.values.len() || !defined[g.output] {
            return bad(format!("output value {} is never written", g.output));
        }
        Ok(())
    }
}
