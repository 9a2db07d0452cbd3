//! [`PlanBuilder`]: assembles a [`Plan`] from PyTorch-layout weights (conv OIHW, linear `[out][in]`)
//! with batch norm already folded into a bias, choosing each convolution's kernel and fusing a
//! following residual add into the convolution that feeds it.

use crate::error::{Result, RuntimeError};
use crate::kernels::conv_transpose::pack_conv_transpose;
use crate::kernels::resize::ResizeMode;
use crate::kernels::ConvGeometry;
use crate::layout::{pack_depthwise, pack_im2col, pack_pointwise};
use crate::plan::{ConvKind, ConvOp, ConvTransposeOp, Graph, Op, Plan, Shape, ValueId, WeightRef};
use crate::Activation;

/// One convolution layer as PyTorch describes it.
#[derive(Debug, Clone, Copy)]
pub struct ConvParams<'a> {
    /// OIHW weights, `out × in/groups × kh × kw`.
    pub weight: &'a [f32],
    /// Folded bias, one per output channel (`None`: zeros).
    pub bias: Option<&'a [f32]>,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel, stride, padding, dilation.
    pub geom: ConvGeometry,
    /// Channel groups.
    pub groups: usize,
    /// Activation after bias (and a fused residual).
    pub act: Activation,
}

impl<'a> ConvParams<'a> {
    /// A `kernel`×`kernel` convolution with stride 1, no padding, dilation 1, one group and no
    /// activation; adjust with the setters.
    pub fn new(
        weight: &'a [f32],
        bias: Option<&'a [f32]>,
        out_channels: usize,
        kernel: usize,
    ) -> Self {
        ConvParams {
            weight,
            bias,
            out_channels,
            geom: ConvGeometry::square(kernel, 1, 0, 1),
            groups: 1,
            act: Activation::None,
        }
    }

    /// Sets the stride (both axes).
    pub fn stride(mut self, s: usize) -> Self {
        self.geom.stride = [s, s];
        self
    }

    /// Sets the padding (both axes, both sides).
    pub fn padding(mut self, p: usize) -> Self {
        self.geom.padding = [p, p];
        self
    }

    /// Sets the dilation (both axes).
    pub fn dilation(mut self, d: usize) -> Self {
        self.geom.dilation = [d, d];
        self
    }

    /// Sets the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Sets the activation.
    pub fn act(mut self, a: Activation) -> Self {
        self.act = a;
        self
    }
}

/// One transposed convolution as PyTorch describes it (`ConvTranspose2d`).
#[derive(Debug, Clone, Copy)]
pub struct ConvTransposeParams<'a> {
    /// Weights `in × out/groups × kh × kw` (PyTorch's layout).
    pub weight: &'a [f32],
    /// Bias, one per output channel (`None`: zeros).
    pub bias: Option<&'a [f32]>,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel, stride, padding and dilation.
    pub geom: ConvGeometry,
    /// PyTorch's `output_padding`.
    pub output_padding: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Activation after the bias.
    pub act: Activation,
}

/// The checks a convolution and a transposed convolution share, in order: the input's `cin` and
/// the `cout` output channels split into `groups`; the weight has the length `weight_len` gives
/// (with its layout, for the message; called only once the groups are valid); the bias, if any,
/// has `cout` values; no value is infinite or NaN. Returns the bias (zeros where none is given)
/// or what is wrong.
fn checked_operands<'b>(
    cin: usize,
    groups: usize,
    cout: usize,
    weight: &[f32],
    weight_len: impl FnOnce() -> (usize, String),
    bias: Option<&'b [f32]>,
) -> std::result::Result<std::borrow::Cow<'b, [f32]>, String> {
    let g = groups;
    if g == 0 || cout == 0 || !cin.is_multiple_of(g) || !cout.is_multiple_of(g) {
        return Err(format!(
            "{cin} input and {cout} output channels cannot be split into {g} groups"
        ));
    }
    let (want, layout) = weight_len();
    if weight.len() != want {
        return Err(format!(
            "weight has {} floats, expected {want} ({layout})",
            weight.len()
        ));
    }
    let bias = match bias {
        Some(b) if b.len() != cout => {
            return Err(format!("bias has {} floats, expected {cout}", b.len()))
        }
        Some(b) => std::borrow::Cow::Borrowed(b),
        None => std::borrow::Cow::Owned(vec![0.0; cout]),
    };
    if weight.iter().chain(bias.iter()).any(|v| !v.is_finite()) {
        return Err("weights or bias contain a non-finite value".into());
    }
    Ok(bias)
}

/// Builds a [`Plan`] op by op. Every method checks its arguments against the shapes so far and
/// returns the new value's id.
#[derive(Debug, Clone)]
pub struct PlanBuilder {
    values: Vec<Shape>,
    ops: Vec<Op>,
    weights: Vec<f32>,
    /// How many ops read each value.
    uses: Vec<usize>,
}

impl PlanBuilder {
    /// Starts a plan whose input is an NHWC image of `input` per batch element.
    pub fn new(input: Shape) -> Self {
        PlanBuilder {
            values: vec![input],
            ops: Vec::new(),
            weights: Vec::new(),
            uses: vec![0],
        }
    }

    /// The input value.
    pub fn input(&self) -> ValueId {
        0
    }

    /// Shape of value `v`.
    pub fn shape(&self, v: ValueId) -> Result<Shape> {
        self.values.get(v).copied().ok_or_else(|| {
            RuntimeError::Builder(format!(
                "value {v} does not exist (only {} so far)",
                self.values.len()
            ))
        })
    }

    fn push_weights(&mut self, w: &[f32]) -> WeightRef {
        let r = WeightRef {
            offset: self.weights.len(),
            len: w.len(),
        };
        self.weights.extend_from_slice(w);
        r
    }

    fn push_op(&mut self, op: Op, shape: Shape) -> ValueId {
        for v in op.inputs() {
            self.uses[v] += 1;
        }
        self.values.push(shape);
        self.uses.push(0);
        self.ops.push(op);
        self.values.len() - 1
    }

    /// Adds a convolution; 1×1 single-group convolutions become GEMMs, one-filter-per-channel ones
    /// the direct depthwise kernel, the rest im2col + GEMM.
    pub fn conv(&mut self, x: ValueId, p: &ConvParams) -> Result<ValueId> {
        let is = self.shape(x)?;
        let (g, cout) = (p.groups, p.out_channels);
        let err = |m: String| RuntimeError::Builder(format!("conv on value {x} ({is}): {m}"));
        let [kh, kw] = p.geom.kernel;
        let weight_len = || {
            let cin_g = is.c / g;
            (
                cout * cin_g * kh * kw,
                format!("OIHW {cout}x{cin_g}x{kh}x{kw}"),
            )
        };
        let bias = checked_operands(is.c, g, cout, p.weight, weight_len, p.bias).map_err(err)?;
        let Some((oh, ow)) = p.geom.output_hw(is.h, is.w) else {
            return Err(err(format!("window {:?} does not fit the input", p.geom)));
        };
        let cin_g = is.c / g;
        let (kind, packed) = if p.geom.is_pointwise() && g == 1 {
            (ConvKind::Pointwise, pack_pointwise(p.weight, cout, is.c))
        } else if g == is.c && cout == is.c {
            (ConvKind::Depthwise, pack_depthwise(p.weight, is.c, kh, kw))
        } else {
            (
                ConvKind::Im2col,
                pack_im2col(p.weight, cout, cin_g, kh, kw, g),
            )
        };
        let weight = self.push_weights(&packed);
        let bias = self.push_weights(&bias);
        let op = Op::Conv(ConvOp {
            input: x,
            output: self.values.len(),
            residual: None,
            kind,
            geom: p.geom,
            groups: g,
            out_channels: cout,
            weight,
            bias,
            act: p.act,
        });
        Ok(self.push_op(op, Shape::new(oh, ow, cout)))
    }

    /// Adds a depthwise convolution (`groups` = channels = output channels); `p.groups` and
    /// `p.out_channels` are set from the input.
    pub fn depthwise(&mut self, x: ValueId, p: &ConvParams) -> Result<ValueId> {
        let c = self.shape(x)?.c;
        self.conv(
            x,
            &ConvParams {
                groups: c,
                out_channels: c,
                ..*p
            },
        )
    }

    /// `act(x + skip)`. When `x` was just produced by a convolution with no activation, no residual
    /// and no other reader, the add is fused into that convolution's epilogue.
    pub fn add_residual(&mut self, x: ValueId, skip: ValueId, act: Activation) -> Result<ValueId> {
        let (xs, ss) = (self.shape(x)?, self.shape(skip)?);
        if xs != ss {
            return Err(RuntimeError::Builder(format!(
                "add_residual: value {x} is {xs} but skip {skip} is {ss}"
            )));
        }
        let last = self.values.len() - 1;
        if x == last && x != skip && self.uses[x] == 0 {
            if let Some(Op::Conv(c)) = self.ops.last_mut() {
                if c.residual.is_none() && c.act == Activation::None {
                    c.residual = Some(skip);
                    c.act = act;
                    self.uses[skip] += 1;
                    return Ok(x);
                }
            }
        }
        let op = Op::Add {
            a: x,
            b: skip,
            output: self.values.len(),
            act,
        };
        Ok(self.push_op(op, xs))
    }

    /// Max pooling with PyTorch's semantics (padding never wins).
    pub fn max_pool(&mut self, x: ValueId, geom: ConvGeometry) -> Result<ValueId> {
        let is = self.shape(x)?;
        let Some((oh, ow)) = geom.output_hw(is.h, is.w) else {
            return Err(RuntimeError::Builder(format!(
                "max_pool on value {x} ({is}): window {geom:?} does not fit"
            )));
        };
        let op = Op::MaxPool {
            input: x,
            output: self.values.len(),
            geom,
        };
        Ok(self.push_op(op, Shape::new(oh, ow, is.c)))
    }

    /// Global average pooling to `1×1×c`.
    pub fn global_pool(&mut self, x: ValueId) -> Result<ValueId> {
        let c = self.shape(x)?.c;
        let op = Op::GlobalAvgPool {
            input: x,
            output: self.values.len(),
        };
        Ok(self.push_op(op, Shape { h: 1, w: 1, c }))
    }

    /// Fully connected layer on a `1×1×in` value, with PyTorch `Linear` weights `[out][in]`.
    pub fn linear(
        &mut self,
        x: ValueId,
        weight: &[f32],
        bias: Option<&[f32]>,
        out_features: usize,
        act: Activation,
    ) -> Result<ValueId> {
        let is = self.shape(x)?;
        let err = |m: String| {
            Err(RuntimeError::Builder(format!(
                "linear on value {x} ({is}): {m}"
            )))
        };
        if is.h != 1 || is.w != 1 {
            return err("input must be 1x1xC; add global_pool first".into());
        }
        if weight.len() != out_features * is.c {
            return err(format!(
                "weight has {} floats, expected {} ([out][in] = {out_features}x{})",
                weight.len(),
                out_features * is.c,
                is.c
            ));
        }
        if let Some(b) = bias {
            if b.len() != out_features {
                return err(format!(
                    "bias has {} floats, expected {out_features}",
                    b.len()
                ));
            }
        }
        let packed = pack_pointwise(weight, out_features, is.c);
        let weight = self.push_weights(&packed);
        let zeros = vec![0.0; out_features];
        let bias = self.push_weights(bias.unwrap_or(&zeros));
        let op = Op::Linear {
            input: x,
            output: self.values.len(),
            out_features,
            weight,
            bias,
            act,
        };
        Ok(self.push_op(op, Shape::new(1, 1, out_features)))
    }

    /// `min(max(x, min), max)`.
    pub fn clip(&mut self, x: ValueId, min: f32, max: f32) -> Result<ValueId> {
        let is = self.shape(x)?;
        if min.is_nan() || max.is_nan() || min > max {
            return Err(RuntimeError::Builder(format!(
                "clip bounds [{min}, {max}] are not ordered"
            )));
        }
        let op = Op::Clip {
            input: x,
            output: self.values.len(),
            min,
            max,
        };
        Ok(self.push_op(op, is))
    }

    /// Resamples `x` to `out_hw` (see [`Op::Resize`]).
    pub fn resize(
        &mut self,
        x: ValueId,
        mode: ResizeMode,
        align_corners: bool,
        scale: Option<[f64; 2]>,
        out_hw: [usize; 2],
    ) -> Result<ValueId> {
        let is = self.shape(x)?;
        if out_hw.contains(&0)
            || scale.is_some_and(|s| s.iter().any(|v| !(v.is_finite() && *v > 0.0)))
        {
            return Err(RuntimeError::Builder(format!(
                "resize of value {x} ({is}) to {out_hw:?} with scale {scale:?}: expected sizes >= 1 and finite positive scales"
            )));
        }
        let op = Op::Resize {
            input: x,
            output: self.values.len(),
            mode,
            align_corners,
            scale,
        };
        Ok(self.push_op(op, Shape::new(out_hw[0], out_hw[1], is.c)))
    }

    /// Adds a transposed convolution.
    pub fn conv_transpose(&mut self, x: ValueId, p: &ConvTransposeParams) -> Result<ValueId> {
        let is = self.shape(x)?;
        let (g, cout) = (p.groups, p.out_channels);
        let err =
            |m: String| RuntimeError::Builder(format!("conv_transpose on value {x} ({is}): {m}"));
        let [kh, kw] = p.geom.kernel;
        let weight_len = || {
            let (cin, cout_g) = (is.c, cout / g);
            let layout = format!("in x out/groups x kh x kw = {cin}x{cout_g}x{kh}x{kw}");
            (cin * cout_g * kh * kw, layout)
        };
        let bias = checked_operands(is.c, g, cout, p.weight, weight_len, p.bias).map_err(err)?;
        let Some((oh, ow)) = p.geom.transposed_output_hw(p.output_padding, is.h, is.w) else {
            return Err(err(format!(
                "window {:?} with output padding {:?} gives no output",
                p.geom, p.output_padding
            )));
        };
        let packed = pack_conv_transpose(p.weight, is.c, cout, kh, kw, g);
        let weight = self.push_weights(&packed);
        let bias = self.push_weights(&bias);
        let op = Op::ConvTranspose(ConvTransposeOp {
            input: x,
            output: self.values.len(),
            geom: p.geom,
            output_padding: p.output_padding,
            groups: g,
            out_channels: cout,
            weight,
            bias,
            act: p.act,
        });
        Ok(self.push_op(op, Shape::new(oh, ow, cout)))
    }

    /// PyTorch's `pixel_shuffle` by `factor`.
    pub fn pixel_shuffle(&mut self, x: ValueId, factor: usize) -> Result<ValueId> {
        let is = self.shape(x)?;
        let r2 = factor.saturating_mul(factor);
        if factor == 0 || !is.c.is_multiple_of(r2) {
            return Err(RuntimeError::Builder(format!(
                "pixel_shuffle by {factor} on value {x} ({is}): channels must be a multiple of {r2}"
            )));
        }
        let op = Op::PixelShuffle {
            input: x,
            output: self.values.len(),
            factor,
        };
        Ok(self.push_op(op, Shape::new(is.h * factor, is.w * factor, is.c / r2)))
    }

    /// CARAFE's reassembly of `x` by `factor` with the k×k kernels whose logits `kernels`
    /// holds (the content encoder's output, `σ²·k²` channels at `x`'s size; see
    /// [`crate::kernels::carafe`]).
    pub fn carafe(
        &mut self,
        x: ValueId,
        kernels: ValueId,
        factor: usize,
        kernel: usize,
    ) -> Result<ValueId> {
        let (is, ks) = (self.shape(x)?, self.shape(kernels)?);
        let want = factor
            .checked_mul(factor)
            .and_then(|s2| s2.checked_mul(kernel.checked_mul(kernel)?));
        let ok = factor >= 1
            && kernel % 2 == 1
            && kernel <= crate::kernels::carafe::MAX_KERNEL
            && [ks.h, ks.w] == [is.h, is.w]
            && want == Some(ks.c);
        if !ok {
            return Err(RuntimeError::Builder(format!(
                "carafe of value {x} ({is}) by {factor} with kernel {kernel} and logits value \
                 {kernels} ({ks}): expected a factor >= 1, an odd kernel of at most {}, and \
                 logits of the input's size with factor² · kernel² channels",
                crate::kernels::carafe::MAX_KERNEL
            )));
        }
        let op = Op::Carafe {
            input: x,
            kernels,
            output: self.values.len(),
            factor,
            kernel,
        };
        Ok(self.push_op(op, Shape::new(is.h * factor, is.w * factor, is.c)))
    }

    /// The top-left `out_hw` corner of `x`; returns `x` itself when it already has that size.
    pub fn crop(&mut self, x: ValueId, out_hw: [usize; 2]) -> Result<ValueId> {
        let is = self.shape(x)?;
        if [is.h, is.w] == out_hw {
            return Ok(x);
        }
        if out_hw[0] > is.h || out_hw[1] > is.w || out_hw.contains(&0) {
            return Err(RuntimeError::Builder(format!(
                "crop of value {x} ({is}) to {out_hw:?}: expected a non-empty size no larger than the input"
            )));
        }
        let op = Op::Crop {
            input: x,
            output: self.values.len(),
        };
        Ok(self.push_op(op, Shape::new(out_hw[0], out_hw[1], is.c)))
    }

    /// Finishes the plan with `output` as its result, and validates it.
    pub fn build(self, output: ValueId) -> Result<Plan> {
        let plan = Plan {
            graph: Graph {
                values: self.values,
                ops: self.ops,
                output,
            },
            weights: self.weights,
        };
        plan.validate()?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(h: usize, w: usize, c: usize) -> Shape {
        Shape { h, w, c }
    }

    #[test]
    fn chooses_kernels_by_shape() {
        let mut b = PlanBuilder::new(sh(8, 8, 4));
        let w1 = vec![0.1; 8 * 4];
        let x = b.conv(0, &ConvParams::new(&w1, None, 8, 1)).unwrap();
        let wd = vec![0.1; 8 * 9];
        let y = b
            .depthwise(x, &ConvParams::new(&wd, None, 0, 3).padding(1).stride(2))
            .unwrap();
        let w3 = vec![0.1; 6 * 4 * 9];
        let z = b
            .conv(y, &ConvParams::new(&w3, None, 6, 3).groups(2))
            .unwrap();
        assert_eq!(b.shape(z).unwrap(), sh(2, 2, 6));
        let p = b.build(z).unwrap();
        let kinds: Vec<_> = p.graph.ops.iter().map(|o| o.kind_name()).collect();
        assert_eq!(kinds, ["conv1x1", "depthwise", "conv_im2col"]);
    }

    #[test]
    fn residual_fuses_into_a_fresh_conv_only() {
        let w = vec![0.1; 16];
        let mut b = PlanBuilder::new(sh(3, 3, 4));
        let x = b.conv(0, &ConvParams::new(&w, None, 4, 1)).unwrap();
        let y = b.add_residual(x, 0, Activation::Relu).unwrap();
        assert_eq!(x, y, "fused");
        // the conv now has an activation, so a second add cannot fuse
        let z = b.add_residual(y, 0, Activation::None).unwrap();
        assert_ne!(z, y);
        let p = b.build(z).unwrap();
        assert!(
            matches!(&p.graph.ops[0], Op::Conv(c) if c.residual == Some(0) && c.act == Activation::Relu)
        );
        assert!(matches!(p.graph.ops[1], Op::Add { .. }));
    }

    #[test]
    fn bad_arguments_name_the_problem() {
        let mut b = PlanBuilder::new(sh(4, 4, 3));
        let e = b
            .conv(0, &ConvParams::new(&[0.0; 5], None, 8, 3))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expected 216") && e.contains("OIHW 8x3x3x3"),
            "{e}"
        );
        let e = b
            .conv(
                0,
                &ConvParams::new(&[0.0; 8 * 3 * 25], None, 8, 5).dilation(2),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit"), "{e}");
        let e = b
            .conv(0, &ConvParams::new(&[0.0; 8], None, 8, 1).groups(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("groups"), "{e}");
        let e = b
            .linear(0, &[0.0; 3], None, 1, Activation::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1x1xC"), "{e}");
        let e = b
            .add_residual(0, 7, Activation::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("value 7 does not exist"), "{e}");
        let e = b
            .conv(0, &ConvParams::new(&[f32::NAN; 24], None, 8, 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite"), "{e}");
    }
}
