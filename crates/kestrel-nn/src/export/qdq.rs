//! [`quant_plan_to_onnx`]: an int8 plan as an ONNX model in QDQ form (the layout ONNX Runtime's
//! own quantiser writes), with the semantics of kestrel's int8 engine; [`plan_to_onnx`]: an fp32
//! plan as the same graph without quantisation.
//!
//! Both take input `input`, NCHW `float32` with a dynamic batch dimension `batch` (the plan's is
//! NHWC), and give `logits`: `batch × C` when the plan's output value is `1×1×C`, otherwise
//! `batch × C × H × W`. Opset [`ONNX_OPSET`](super::ONNX_OPSET) (per-axis `QuantizeLinear` /
//! `DequantizeLinear` need 13). Plan value `v` is the tensor `v{v}` (`input` for value 0), op `i`
//! the nodes named `op{i}…`.
//!
//! In QDQ form:
//!
//! - every value an op reads goes through `QuantizeLinear` (`v{v}.q`, `uint8`, the value's scale
//!   and zero point from the table) and, for each reader, its own `DequantizeLinear`;
//! - a convolution or linear layer with int8 weights
//!   ([`int8_out_channels`]) reads them as an `int8` initializer — [`quantize_weights`] in OIHW
//!   (`Gemm`'s `[out][in]`, `transB = 1`) — dequantised per output channel (axis 0, zero point 0),
//!   and its bias as an `int32` initializer ([`quantize_bias`]) dequantised with scale
//!   `input scale × weight scale` per channel; then the dequantised residual is added, the
//!   activation applied (`Relu`, `Clip(0, 6)`) and the result quantised to the output value;
//! - pools, adds, clips, resizes, transposed convolutions (float weights), pixel shuffles, crops
//!   and convolutions without int8 weights run in float between their inputs' `DequantizeLinear`
//!   and their output's `QuantizeLinear`;
//! - the plan's output value is not quantised: its op's float result is `logits`.

use super::error::ExportError;
use super::onnx_graph::{attr_int, attr_ints, attr_str, node, tensor, tensor_i32, tensor_i64};
use super::onnx_graph::{tensor_i8, tensor_u8, value_info, Dim, Graph};
use crate::upsample::ResizeTo;
use kestrel_runtime::layout::{unpack_conv, unpack_conv_transpose};
use kestrel_runtime::plan::{ConvOp, ConvTransposeOp};
use kestrel_runtime::quant::table::{int8_out_channels, quantize_bias, quantize_weights};
use kestrel_runtime::quant::{QuantPlan, QuantTable};
use kestrel_runtime::{Activation, ConvKind, Op, Plan, ValueId};

/// Writes `q` as a QDQ ONNX model with `metadata` as `metadata_props` (see the module
/// documentation). Errors: a plan or table that does not validate, or a resize whose scale
/// factors do not give its output size.
pub fn quant_plan_to_onnx(
    q: &QuantPlan,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, ExportError> {
    q.validate()?;
    write(&q.plan, Some(&q.table), "kestrel-int8-plan", metadata)
}

/// Writes the fp32 `plan` as an ONNX model (the graph [`quant_plan_to_onnx`] writes, without
/// quantisation).
pub fn plan_to_onnx(plan: &Plan, metadata: &[(String, String)]) -> Result<Vec<u8>, ExportError> {
    plan.validate()?;
    write(plan, None, "kestrel-plan", metadata)
}

/// Name of the graph's output.
const OUTPUT: &str = "logits";

/// The graph under construction and where each plan value can be read.
struct Writer<'a> {
    plan: &'a Plan,
    table: Option<&'a QuantTable>,
    g: Graph,
    /// Readers of each value.
    uses: Vec<usize>,
    /// Per value: its `uint8` codes (with a table) or its float tensor (without), NCHW.
    src: Vec<String>,
    /// Per value: `DequantizeLinear` nodes (or flattenings) written so far, for unique names.
    reads: Vec<usize>,
    /// Per value: whether its scale and zero point are initializers yet.
    qparams: Vec<bool>,
}

fn write(
    plan: &Plan,
    table: Option<&QuantTable>,
    name: &str,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, ExportError> {
    let g = &plan.graph;
    let n = g.values.len();
    let mut uses = vec![0; n];
    for op in &g.ops {
        for v in op.inputs() {
            uses[v] += 1;
        }
    }
    let mut w = Writer {
        plan,
        table,
        g: Graph::default(),
        uses,
        src: vec![String::new(); n],
        reads: vec![0; n],
        qparams: vec![false; n],
    };
    w.publish(0, "input".into(), false);
    for (i, op) in g.ops.iter().enumerate() {
        w.op(i, op)?;
    }
    let (s, o) = (plan.input_shape(), plan.output_shape());
    let batch = || Dim::Named("batch");
    let input = value_info(
        "input",
        &[batch(), Dim::Fixed(s.c), Dim::Fixed(s.h), Dim::Fixed(s.w)],
    );
    let output = if is_vector(o) {
        value_info(OUTPUT, &[batch(), Dim::Fixed(o.c)])
    } else {
        value_info(
            OUTPUT,
            &[batch(), Dim::Fixed(o.c), Dim::Fixed(o.h), Dim::Fixed(o.w)],
        )
    };
    Ok(w.g.into_model(name, &input, &output, metadata))
}

/// Whether a value is `1×1×C` (given to `Gemm` and as the output as `batch × C`).
fn is_vector(s: kestrel_runtime::Shape) -> bool {
    s.h == 1 && s.w == 1
}

impl Writer<'_> {
    /// The name op results for value `v` are written to: `logits` for the output value when the
    /// producer gives it in the output's rank (`flat`: `batch × C`), else `v{v}`.
    fn dest(&self, v: ValueId, flat: bool) -> String {
        let g = &self.plan.graph;
        if v == g.output && flat == is_vector(g.values[v]) {
            OUTPUT.into()
        } else {
            format!("v{v}")
        }
    }

    /// The scale and zero point initializers of value `v` (added on first use).
    fn qparams(&mut self, v: ValueId, t: &QuantTable) -> [String; 2] {
        let names = [format!("v{v}.scale"), format!("v{v}.zero")];
        if !self.qparams[v] {
            self.qparams[v] = true;
            let q = t.values[v];
            self.g.initializers.push(tensor(&names[0], &[], &[q.scale]));
            self.g
                .initializers
                .push(tensor_u8(&names[1], &[], &[q.zero]));
        }
        names
    }

    /// Value `v`'s float result is `float` (`batch × C` when `flat`): becomes the graph output
    /// for the output value, and is quantised (and brought back to NCHW) for its readers.
    fn publish(&mut self, v: ValueId, float: String, flat: bool) {
        let g = &self.plan.graph;
        if v == g.output && float != OUTPUT {
            let (op, attrs) = if is_vector(g.values[v]) {
                ("Flatten", vec![attr_int("axis", 1)])
            } else {
                ("Identity", vec![])
            };
            let name = format!("v{v}.output");
            self.g
                .nodes
                .push(node(op, &name, &[&float], &[OUTPUT], &attrs));
        }
        if self.uses[v] == 0 {
            return;
        }
        let src = match self.table {
            Some(t) => {
                let [s, z] = self.qparams(v, t);
                let q = format!("v{v}.q");
                let qname = if flat { format!("{q}.flat") } else { q.clone() };
                let quantize = node("QuantizeLinear", &qname, &[&float, &s, &z], &[&qname], &[]);
                self.g.nodes.push(quantize);
                if flat {
                    self.unflatten(v, &qname, &q);
                }
                q
            }
            None if flat => {
                let nchw = format!("v{v}.nchw");
                self.unflatten(v, &float, &nchw);
                nchw
            }
            None => float,
        };
        self.src[v] = src;
    }

    /// `Reshape` of a `batch × C` tensor to NCHW `batch × C × 1 × 1`.
    fn unflatten(&mut self, v: ValueId, from: &str, to: &str) {
        let shape = format!("v{v}.shape");
        let c = self.plan.graph.values[v].c as i64;
        // 0 keeps the batch dimension.
        self.g.initializers.push(tensor_i64(&shape, &[0, c, 1, 1]));
        self.g
            .nodes
            .push(node("Reshape", to, &[from, &shape], &[to], &[]));
    }

    /// A float tensor holding value `v` for one reader: its own `DequantizeLinear` of the codes
    /// (with a table), or the float value; `flat`: as `batch × C` (`Flatten` of the codes).
    fn read(&mut self, v: ValueId, flat: bool) -> String {
        let k = self.reads[v];
        self.reads[v] += 1;
        let mut src = self.src[v].clone();
        if flat {
            let f = format!("v{v}.flat{k}");
            let flatten = node("Flatten", &f, &[&src], &[&f], &[attr_int("axis", 1)]);
            self.g.nodes.push(flatten);
            src = f;
        }
        let Some(t) = self.table else {
            return src;
        };
        let [s, z] = self.qparams(v, t);
        let dq = format!("v{v}.dq{k}");
        self.g
            .nodes
            .push(node("DequantizeLinear", &dq, &[&src, &s, &z], &[&dq], &[]));
        dq
    }

    /// The weight and bias of op `i` (named `name`, reading value `input`): float initializers,
    /// or with int8 weights `int8` / `int32` initializers and their per-channel
    /// `DequantizeLinear`s. `order[k]` is the plan-layout index of element `k` of the ONNX weight
    /// of `dims` (output channels first).
    fn operands(
        &mut self,
        i: usize,
        name: &str,
        input: ValueId,
        (weight, bias): (&[f32], &[f32]),
        order: &[usize],
        dims: &[usize],
    ) -> [String; 2] {
        let op = &self.plan.graph.ops[i];
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        let t = match self.table {
            Some(t) if int8_out_channels(op).is_some() => t,
            _ => {
                let data: Vec<f32> = order.iter().map(|&j| weight[j]).collect();
                self.g.initializers.push(tensor(&w, dims, &data));
                self.g.initializers.push(tensor(&b, &[bias.len()], bias));
                return [w, b];
            }
        };
        let ws = &t.weight_scales[i];
        let sx = t.values[input].scale;
        let q = quantize_weights(weight, ws);
        let q: Vec<i8> = order.iter().map(|&j| q[j]).collect();
        let channels = [ws.len()];
        let zeros = vec![0; ws.len()];
        // (dequantised name, integer initializer, its zero point, per-channel scales)
        let parts = [
            (
                &w,
                tensor_i8(&format!("{w}.q"), dims, &q),
                tensor_i8(&format!("{w}.zero"), &channels, &vec![0; ws.len()]),
                ws.clone(),
            ),
            (
                &b,
                tensor_i32(&format!("{b}.q"), &channels, &quantize_bias(bias, sx, ws)),
                tensor_i32(&format!("{b}.zero"), &channels, &zeros),
                ws.iter().map(|&s| sx * s).collect(),
            ),
        ];
        for (out, data, zero, scales) in parts {
            let [q, s, z] = ["q", "scale", "zero"].map(|x| format!("{out}.{x}"));
            self.g.initializers.push(data);
            self.g.initializers.push(tensor(&s, &channels, &scales));
            self.g.initializers.push(zero);
            let dq = node(
                "DequantizeLinear",
                &format!("{out}.dq"),
                &[&q, &s, &z],
                &[out],
                &[attr_int("axis", 0)],
            );
            self.g.nodes.push(dq);
        }
        [w, b]
    }

    /// `act(pre)` to `dest`, where `pre` is `dest` itself without an activation.
    fn pre(act: Activation, name: &str, suffix: &str, dest: &str) -> String {
        match act {
            Activation::None => dest.to_string(),
            _ => format!("{name}.{suffix}"),
        }
    }

    /// Writes op `i`.
    fn op(&mut self, i: usize, op: &Op) -> Result<(), ExportError> {
        let name = format!("op{i}");
        let v = op.output();
        let plan = self.plan;
        let values = &plan.graph.values;
        let (is, os) = (values[op.inputs()[0]], values[v]);
        let dest = self.dest(v, matches!(op, Op::Linear { .. }));
        match op {
            Op::Conv(c) => return self.conv(i, &name, c, dest),
            Op::ConvTranspose(c) => return self.conv_transpose(i, &name, c, dest),
            Op::Linear {
                input,
                out_features,
                weight,
                bias,
                act,
                ..
            } => {
                let idx: Vec<usize> = (0..weight.len).collect();
                let order = unpack_conv(&idx, ConvKind::Pointwise, *out_features, is.c, [1, 1], 1);
                let (weight, bias) = (plan.slice(*weight), plan.slice(*bias));
                let dims = [*out_features, is.c];
                let [w, b] = self.operands(i, &name, *input, (weight, bias), &order, &dims);
                let x = self.read(*input, true);
                let pre = Self::pre(*act, &name, "gemm", &dest);
                let gemm = node(
                    "Gemm",
                    &name,
                    &[&x, &w, &b],
                    &[&pre],
                    &[attr_int("transB", 1)],
                );
                self.g.nodes.push(gemm);
                self.g.activation(*act, &name, &pre, &dest);
                self.publish(v, dest, true);
                return Ok(());
            }
            Op::MaxPool { input, geom, .. } => {
                let x = self.read(*input, false);
                let [ph, pw] = geom.padding;
                let mut attrs = vec![];
                if geom.dilation != [1, 1] {
                    attrs.push(attr_ints("dilations", &geom.dilation));
                }
                attrs.push(attr_ints("kernel_shape", &geom.kernel));
                attrs.push(attr_ints("pads", &[ph, pw, ph, pw]));
                attrs.push(attr_ints("strides", &geom.stride));
                self.g
                    .nodes
                    .push(node("MaxPool", &name, &[&x], &[&dest], &attrs));
            }
            Op::GlobalAvgPool { input, .. } => {
                let x = self.read(*input, false);
                let pool = node("GlobalAveragePool", &name, &[&x], &[&dest], &[]);
                self.g.nodes.push(pool);
            }
            Op::Add { a, b, act, .. } => {
                let (a, b) = (self.read(*a, false), self.read(*b, false));
                let pre = Self::pre(*act, &name, "sum", &dest);
                self.g
                    .nodes
                    .push(node("Add", &name, &[&a, &b], &[&pre], &[]));
                self.g.activation(*act, &name, &pre, &dest);
            }
            Op::Clip {
                input, min, max, ..
            } => {
                let x = self.read(*input, false);
                let (lo, hi) = (format!("{name}.min"), format!("{name}.max"));
                self.g.initializers.push(tensor(&lo, &[], &[*min]));
                self.g.initializers.push(tensor(&hi, &[], &[*max]));
                self.g
                    .nodes
                    .push(node("Clip", &name, &[&x, &lo, &hi], &[&dest], &[]));
            }
            Op::Resize {
                input,
                mode,
                align_corners,
                scale,
                ..
            } => {
                let resize = match scale {
                    Some(s) => ResizeTo::Scale(*s),
                    None => ResizeTo::Size([os.h, os.w]),
                };
                if resize.output_size([is.h, is.w]) != Some([os.h, os.w]) {
                    return Err(ExportError::Unsupported {
                        layer: format!("op {i} ({})", op.kind_name()),
                        message: format!(
                            "scale factors {scale:?} give no {}x{} output from {is}, which ONNX's Resize needs",
                            os.h, os.w
                        ),
                    });
                }
                let x = self.read(*input, false);
                self.g
                    .resize(&name, &x, *mode, *align_corners, resize, &dest);
            }
            Op::PixelShuffle { input, factor, .. } => {
                let x = self.read(*input, false);
                let attrs = [
                    attr_int("blocksize", *factor as i64),
                    attr_str("mode", "CRD"),
                ];
                self.g
                    .nodes
                    .push(node("DepthToSpace", &name, &[&x], &[&dest], &attrs));
            }
            Op::Carafe {
                input,
                kernels,
                factor,
                kernel,
                ..
            } => {
                let x = self.read(*input, false);
                let k = self.read(*kernels, false);
                self.g.carafe(&name, &x, &k, *factor, *kernel, &dest);
            }
            Op::Crop { input, .. } => {
                let x = self.read(*input, false);
                let [starts, ends, axes] =
                    ["starts", "ends", "axes"].map(|s| format!("{name}.{s}"));
                self.g.initializers.push(tensor_i64(&starts, &[0, 0]));
                let end = [os.h as i64, os.w as i64];
                self.g.initializers.push(tensor_i64(&ends, &end));
                self.g.initializers.push(tensor_i64(&axes, &[2, 3]));
                let inputs = [x.as_str(), &starts, &ends, &axes];
                self.g
                    .nodes
                    .push(node("Slice", &name, &inputs, &[&dest], &[]));
            }
        }
        self.publish(v, dest, false);
        Ok(())
    }

    /// A convolution: `Conv`, then the residual `Add` and the activation.
    fn conv(&mut self, i: usize, name: &str, c: &ConvOp, dest: String) -> Result<(), ExportError> {
        let plan = self.plan;
        let is = plan.graph.values[c.input];
        let cin_g = is.c / c.groups;
        let idx: Vec<usize> = (0..c.weight.len).collect();
        let order = unpack_conv(&idx, c.kind, c.out_channels, cin_g, c.geom.kernel, c.groups);
        let [kh, kw] = c.geom.kernel;
        let dims = [c.out_channels, cin_g, kh, kw];
        let wb = (plan.slice(c.weight), plan.slice(c.bias));
        let [w, b] = self.operands(i, name, c.input, wb, &order, &dims);
        let x = self.read(c.input, false);
        let sum = Self::pre(c.act, name, "sum", &dest);
        let out = match c.residual {
            Some(_) => format!("{name}.conv"),
            None => sum.clone(),
        };
        self.g
            .conv_node(name, [&x, &w, &b], c.geom, c.groups, None, &out);
        if let Some(r) = c.residual {
            let r = self.read(r, false);
            let add = node(
                "Add",
                &format!("{name}.residual"),
                &[&out, &r],
                &[&sum],
                &[],
            );
            self.g.nodes.push(add);
        }
        self.g.activation(c.act, name, &sum, &dest);
        self.publish(c.output, dest, false);
        Ok(())
    }

    /// A transposed convolution (float weights) and its activation.
    fn conv_transpose(
        &mut self,
        i: usize,
        name: &str,
        c: &ConvTransposeOp,
        dest: String,
    ) -> Result<(), ExportError> {
        let plan = self.plan;
        let cin = plan.graph.values[c.input].c;
        let idx: Vec<usize> = (0..c.weight.len).collect();
        let order = unpack_conv_transpose(&idx, cin, c.out_channels, c.geom.kernel, c.groups);
        let [kh, kw] = c.geom.kernel;
        let dims = [cin, c.out_channels / c.groups, kh, kw];
        let wb = (plan.slice(c.weight), plan.slice(c.bias));
        let [w, b] = self.operands(i, name, c.input, wb, &order, &dims);
        let x = self.read(c.input, false);
        let pre = Self::pre(c.act, name, "conv", &dest);
        let op = Some(&c.output_padding);
        self.g
            .conv_node(name, [&x, &w, &b], c.geom, c.groups, op, &pre);
        self.g.activation(c.act, name, &pre, &dest);
        self.publish(c.output, dest, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
