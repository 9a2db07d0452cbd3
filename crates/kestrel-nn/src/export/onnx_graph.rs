//! The ONNX messages both ONNX writers build — [`super::onnx`] from a lowered network,
//! [`super::qdq`] from a runtime plan: tensors, attributes, nodes, value infos, and [`Graph`], the
//! nodes and initializers of a model under construction with the layers the two share
//! (convolutions, activations, resizes) and the model around them.
//!
//! Field numbers and enum values are those of `onnx.proto`.

use super::network::ConvLayer;
use super::proto::Message;
use crate::upsample::ResizeTo;
use kestrel_runtime::kernels::ConvGeometry;
use kestrel_runtime::{Activation, ResizeMode};

/// The ONNX operator set the exports target (per-axis `QuantizeLinear` / `DequantizeLinear`
/// need 13 or later).
pub const ONNX_OPSET: i64 = 17;
/// IR version 8 (ONNX 1.10 and later), the one that goes with opset 17.
const IR_VERSION: i64 = 8;
/// `TensorProto.DataType.FLOAT`.
pub(super) const FLOAT: i64 = 1;
/// `TensorProto.DataType.UINT8`.
pub(super) const UINT8: i64 = 2;
/// `TensorProto.DataType.INT8`.
pub(super) const INT8: i64 = 3;
/// `TensorProto.DataType.INT32`.
pub(super) const INT32: i64 = 6;
/// `TensorProto.DataType.INT64`.
pub(super) const INT64: i64 = 7;
/// `AttributeProto.AttributeType` values.
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
const ATTR_STRING: i64 = 3;
const ATTR_INTS: i64 = 7;
/// Names of the two scalar initializers `Clip` reads for ReLU6.
const RELU6_MIN: &str = "relu6.min";
const RELU6_MAX: &str = "relu6.max";

/// A `TensorProto` of element type `dtype` with little-endian `raw` data.
pub(super) fn tensor_raw(name: &str, dims: &[usize], dtype: i64, raw: &[u8]) -> Message {
    let mut t = Message::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, dtype).string(8, name);
    t.bytes(9, raw);
    t
}

/// A `TensorProto` of `float32` values.
pub(super) fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Message {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor_raw(name, dims, FLOAT, &raw)
}

/// A one-dimensional `TensorProto` of `int64` values.
pub(super) fn tensor_i64(name: &str, data: &[i64]) -> Message {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor_raw(name, &[data.len()], INT64, &raw)
}

/// A `TensorProto` of `int32` values.
pub(super) fn tensor_i32(name: &str, dims: &[usize], data: &[i32]) -> Message {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor_raw(name, dims, INT32, &raw)
}

/// A `TensorProto` of `int8` values.
pub(super) fn tensor_i8(name: &str, dims: &[usize], data: &[i8]) -> Message {
    let raw: Vec<u8> = data.iter().map(|&v| v as u8).collect();
    tensor_raw(name, dims, INT8, &raw)
}

/// A `TensorProto` of `uint8` values.
pub(super) fn tensor_u8(name: &str, dims: &[usize], data: &[u8]) -> Message {
    tensor_raw(name, dims, UINT8, data)
}

/// A string attribute.
pub(super) fn attr_str(name: &str, v: &str) -> Message {
    let mut a = Message::new();
    a.string(1, name)
        .bytes(4, v.as_bytes())
        .int(20, ATTR_STRING);
    a
}

/// A float attribute.
pub(super) fn attr_float(name: &str, v: f32) -> Message {
    let mut a = Message::new();
    a.string(1, name).float(2, v).int(20, ATTR_FLOAT);
    a
}

/// An integer attribute.
pub(super) fn attr_int(name: &str, i: i64) -> Message {
    let mut a = Message::new();
    a.string(1, name).int(3, i).int(20, ATTR_INT);
    a
}

/// An integer-list attribute.
pub(super) fn attr_ints(name: &str, v: &[usize]) -> Message {
    let mut a = Message::new();
    a.string(1, name);
    for &x in v {
        a.int(8, x as i64);
    }
    a.int(20, ATTR_INTS);
    a
}

/// A `NodeProto` of the default domain.
pub(super) fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[Message],
) -> Message {
    let mut n = Message::new();
    for i in inputs {
        n.string(1, i);
    }
    for o in outputs {
        n.string(2, o);
    }
    n.string(3, name).string(4, op);
    for a in attrs {
        n.message(5, a);
    }
    n
}

/// One dimension of a tensor type: fixed, or named (dynamic).
pub(super) enum Dim<'a> {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size, e.g. `batch`.
    Named(&'a str),
}

/// A `ValueInfoProto` of a `float32` tensor.
pub(super) fn value_info(name: &str, dims: &[Dim]) -> Message {
    let mut shape = Message::new();
    for d in dims {
        let mut dim = Message::new();
        match d {
            Dim::Fixed(n) => dim.int(1, *n as i64),
            Dim::Named(s) => dim.string(2, s),
        };
        shape.message(1, &dim);
    }
    let mut tensor_type = Message::new();
    tensor_type.int(1, FLOAT).message(2, &shape);
    let mut ty = Message::new();
    ty.message(1, &tensor_type);
    let mut v = Message::new();
    v.string(1, name).message(2, &ty);
    v
}

/// Nodes and initializers of a graph under construction.
#[derive(Default)]
pub(super) struct Graph {
    /// Nodes in execution order.
    pub nodes: Vec<Message>,
    /// Initializers in the order they were added.
    pub initializers: Vec<Message>,
    /// Whether the ReLU6 bounds are among the initializers yet.
    relu6_bounds: bool,
}

impl Graph {
    /// A convolution (`Conv`), or with its `output_padding` a transposed one (`ConvTranspose`),
    /// named `name`, reading `input`: its weight and bias initializers, the node, and its
    /// activation, the result written to `out`.
    pub fn conv(
        &mut self,
        name: &str,
        input: &str,
        c: &ConvLayer,
        output_padding: Option<&[usize; 2]>,
        out: &str,
    ) {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        // PyTorch's weight layouts: (out, in / groups, kh, kw), transposed (in, out / groups, kh,
        // kw).
        let (first, per_group) = match output_padding {
            None => (c.out_channels, c.in_channels),
            Some(_) => (c.in_channels, c.out_channels),
        };
        let dims = [first, per_group / c.groups, c.kernel[0], c.kernel[1]];
        self.initializers.push(tensor(&w, &dims, &c.weight));
        self.initializers
            .push(tensor(&b, &[c.out_channels], &c.bias));
        let pre = match c.act {
            Activation::None => out.to_string(),
            _ => format!("{name}.conv"),
        };
        let geom = c.geometry();
        self.conv_node(name, [input, &w, &b], geom, c.groups, output_padding, &pre);
        self.activation(c.act, name, &pre, out);
    }

    /// The `Conv` node (`ConvTranspose` with an `output_padding`) named `name` on `[input,
    /// weight, bias]`, written to `out`.
    pub fn conv_node(
        &mut self,
        name: &str,
        inputs: [&str; 3],
        geom: ConvGeometry,
        groups: usize,
        output_padding: Option<&[usize; 2]>,
        out: &str,
    ) {
        let [ph, pw] = geom.padding;
        let mut attrs = vec![
            attr_ints("dilations", &geom.dilation),
            attr_int("group", groups as i64),
            attr_ints("kernel_shape", &geom.kernel),
        ];
        if let Some(op) = output_padding {
            attrs.push(attr_ints("output_padding", op));
        }
        attrs.push(attr_ints("pads", &[ph, pw, ph, pw]));
        attrs.push(attr_ints("strides", &geom.stride));
        let op = match output_padding {
            None => "Conv",
            Some(_) => "ConvTranspose",
        };
        self.nodes.push(node(op, name, &inputs, &[out], &attrs));
    }

    /// `act(pre)` written to `out` (or `pre` renamed to `out` when there is no activation: the
    /// caller then writes the producing node's output as `out` directly).
    pub fn activation(&mut self, act: Activation, name: &str, pre: &str, out: &str) {
        match act {
            Activation::None => {}
            Activation::Relu => {
                self.nodes
                    .push(node("Relu", &format!("{name}.relu"), &[pre], &[out], &[]))
            }
            Activation::Relu6 => {
                if !self.relu6_bounds {
                    self.relu6_bounds = true;
                    self.initializers.push(tensor(RELU6_MIN, &[], &[0.0]));
                    self.initializers.push(tensor(RELU6_MAX, &[], &[6.0]));
                }
                self.nodes.push(node(
                    "Clip",
                    &format!("{name}.relu6"),
                    &[pre, RELU6_MIN, RELU6_MAX],
                    &[out],
                    &[],
                ));
            }
        }
    }

    /// PyTorch's `F.interpolate` of `x` as a `Resize` node named `name` written to `out`
    /// (nearest: `asymmetric` / `floor`; linear and cubic: `align_corners` or
    /// `pytorch_half_pixel`, cubic a = −0.75), by scale factors or to a fixed size.
    pub fn resize(
        &mut self,
        name: &str,
        x: &str,
        mode: ResizeMode,
        align_corners: bool,
        resize: ResizeTo,
        out: &str,
    ) {
        let mut attrs = vec![];
        let (m, coords) = match mode {
            ResizeMode::Nearest => ("nearest", "asymmetric"),
            ResizeMode::Linear | ResizeMode::Cubic => (
                if mode == ResizeMode::Linear {
                    "linear"
                } else {
                    "cubic"
                },
                if align_corners {
                    "align_corners"
                } else {
                    "pytorch_half_pixel"
                },
            ),
        };
        attrs.push(attr_str("coordinate_transformation_mode", coords));
        if mode == ResizeMode::Cubic {
            attrs.push(attr_float("cubic_coeff_a", -0.75));
        }
        attrs.push(attr_str("mode", m));
        if mode == ResizeMode::Nearest {
            attrs.push(attr_str("nearest_mode", "floor"));
        }
        match resize {
            ResizeTo::Scale([sh, sw]) => {
                let scales = format!("{name}.scales");
                self.initializers
                    .push(tensor(&scales, &[4], &[1.0, 1.0, sh as f32, sw as f32]));
                self.nodes
                    .push(node("Resize", name, &[x, "", &scales], &[out], &attrs));
            }
            ResizeTo::Size([h, w]) => {
                // sizes = [N, C] of the input followed by the fixed size.
                let (nc, hw, sizes) = (
                    format!("{name}.nc"),
                    format!("{name}.hw"),
                    format!("{name}.sizes"),
                );
                self.initializers
                    .push(tensor_i64(&hw, &[h as i64, w as i64]));
                self.nodes
                    .push(node("Shape", &nc, &[x], &[&nc], &[attr_int("end", 2)]));
                self.nodes.push(node(
                    "Concat",
                    &sizes,
                    &[&nc, &hw],
                    &[&sizes],
                    &[attr_int("axis", 0)],
                ));
                self.nodes
                    .push(node("Resize", name, &[x, "", "", &sizes], &[out], &attrs));
            }
        }
    }

    /// CARAFE's reassembly of `x` (N, C, H, W) by `factor` σ with k×k kernels from the logits
    /// `kernels` (N, σ²k², H, W), written to `out`, in standard operators: the logits
    /// `DepthToSpace` (CRD) → `Softmax` over channels → `Split` into k² weight maps; `x` zero
    /// padded by ⌊k/2⌋ and upsampled by `Resize` (nearest, ×σ), so that tap (a, b) of output
    /// pixel (i, j) — source pixel (⌊i/σ⌋ + a − ⌊k/2⌋, ⌊j/σ⌋ + b − ⌊k/2⌋) — is the upsampled map
    /// at (i + σa, j + σb): a `Slice` per tap, `Mul` by its weight map, and one `Sum`.
    pub fn carafe(
        &mut self,
        name: &str,
        x: &str,
        kernels: &str,
        factor: usize,
        kernel: usize,
        out: &str,
    ) {
        let (s, k) = (factor, kernel);
        let r = k / 2;
        let [shuffled, soft, pads, padded, up, axes] =
            ["shuffled", "softmax", "pads", "padded", "upsampled", "axes"]
                .map(|v| format!("{name}.{v}"));
        let d2s = [attr_int("blocksize", s as i64), attr_str("mode", "CRD")];
        self.nodes.push(node(
            "DepthToSpace",
            &shuffled,
            &[kernels],
            &[&shuffled],
            &d2s,
        ));
        self.nodes.push(node(
            "Softmax",
            &soft,
            &[&shuffled],
            &[&soft],
            &[attr_int("axis", 1)],
        ));
        let weights: Vec<String> = (0..k * k).map(|q| format!("{name}.w{q}")).collect();
        let wrefs: Vec<&str> = weights.iter().map(String::as_str).collect();
        let split = format!("{name}.split");
        self.nodes.push(node(
            "Split",
            &split,
            &[&soft],
            &wrefs,
            &[attr_int("axis", 1)],
        ));
        let r64 = r as i64;
        self.initializers
            .push(tensor_i64(&pads, &[0, 0, r64, r64, 0, 0, r64, r64]));
        self.nodes
            .push(node("Pad", &padded, &[x, &pads], &[&padded], &[]));
        let scale = ResizeTo::Scale([s as f64; 2]);
        self.resize(&up, &padded, ResizeMode::Nearest, false, scale, &up);
        self.initializers.push(tensor_i64(&axes, &[2, 3]));
        // The upsampled map has σ(H + 2r) rows; tap a keeps rows [σa, σa + σH), i.e. it ends
        // σ(2r − a) rows before the end (at the end itself for a = 2r).
        let end = |a: usize| match 2 * r - a {
            0 => i64::MAX,
            d => -((s * d) as i64),
        };
        let mut products = Vec::with_capacity(k * k);
        for a in 0..k {
            for b in 0..k {
                let q = a * k + b;
                let [starts, ends, tap, prod] =
                    ["starts", "ends", "tap", "product"].map(|v| format!("{name}.{v}{q}"));
                self.initializers
                    .push(tensor_i64(&starts, &[(s * a) as i64, (s * b) as i64]));
                self.initializers.push(tensor_i64(&ends, &[end(a), end(b)]));
                self.nodes.push(node(
                    "Slice",
                    &tap,
                    &[&up, &starts, &ends, &axes],
                    &[&tap],
                    &[],
                ));
                self.nodes
                    .push(node("Mul", &prod, &[&tap, &weights[q]], &[&prod], &[]));
                products.push(prod);
            }
        }
        let prefs: Vec<&str> = products.iter().map(String::as_str).collect();
        self.nodes.push(node("Sum", name, &prefs, &[out], &[]));
    }

    /// The `ModelProto` bytes of this graph named `name` with one input and one output, opset
    /// [`ONNX_OPSET`], and `metadata` as `metadata_props`.
    pub fn into_model(
        self,
        name: &str,
        input: &Message,
        output: &Message,
        metadata: &[(String, String)],
    ) -> Vec<u8> {
        let mut graph = Message::new();
        for n in &self.nodes {
            graph.message(1, n);
        }
        graph.string(2, name);
        for t in &self.initializers {
            graph.message(5, t);
        }
        graph.message(11, input).message(12, output);
        let mut opset = Message::new();
        opset.string(1, "").int(2, ONNX_OPSET);
        let mut model = Message::new();
        model
            .int(1, IR_VERSION)
            .string(2, "kestrel")
            .string(3, env!("CARGO_PKG_VERSION"))
            .message(7, &graph)
            .message(8, &opset);
        for (k, v) in metadata {
            let mut entry = Message::new();
            entry.string(1, k).string(2, v);
            model.message(14, &entry);
        }
        model.into_bytes()
    }
}
