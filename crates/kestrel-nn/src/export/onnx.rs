//! [`to_onnx`]: a classifier as an ONNX model (opset 17): input `input`, NCHW `float32` with a
//! dynamic batch dimension `batch` and the export resolution as height and width; output `logits`
//! (`batch × classes`). Batch norm is folded into `Conv` biases; activations are `Relu` and
//! `Clip(0, 6)`, residuals `Add`, and the head `GlobalAveragePool → Flatten → Gemm`.
//!
//! [`save_segmenter_onnx`]: an FCN the same way, output `logits` (`batch × classes × H × W`);
//! its upsamplers are `Resize` (nearest: `asymmetric` / `floor`; bilinear and bicubic:
//! `align_corners` or `pytorch_half_pixel`, cubic a = −0.75), `ConvTranspose`, or
//! `Conv → DepthToSpace` (CRD, PyTorch's pixel shuffle); crops are `Slice` to the `Shape` of the
//! map they are added to.
//!
//! The protobuf is written by [`super::proto`] with field numbers from `onnx.proto`; the same
//! model and resolution always give the same bytes.

use super::error::ExportError;
use super::lower::lower;
use super::lower_fcn::lower_segmenter;
use super::network::{ConvLayer, Layer, Network};
use super::proto::Message;
use crate::models::fcn::Fcn;
use crate::models::zoo::Classifier;
use crate::upsample::ResizeTo;
use kestrel_runtime::{Activation, ResizeMode};
use std::path::Path;

/// The ONNX operator set the export targets.
pub const ONNX_OPSET: i64 = 17;
/// IR version 8 (ONNX 1.10 and later), the one that goes with opset 17.
const IR_VERSION: i64 = 8;
/// `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;
/// `AttributeProto.AttributeType` values.
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
const ATTR_STRING: i64 = 3;
/// `TensorProto.DataType.INT64`.
const INT64: i64 = 7;
const ATTR_INTS: i64 = 7;
/// Names of the two scalar initializers `Clip` reads for ReLU6.
const RELU6_MIN: &str = "relu6.min";
const RELU6_MAX: &str = "relu6.max";

/// Exports `model` for `resolution` × `resolution` inputs as ONNX bytes.
pub fn to_onnx(model: &Classifier, resolution: usize) -> Result<Vec<u8>, ExportError> {
    to_onnx_with_metadata(model, resolution, &[])
}

/// [`to_onnx`] with `(key, value)` pairs stored in the model's `metadata_props` (e.g. the
/// class names and input normalisation a deployment needs).
pub fn to_onnx_with_metadata(
    model: &Classifier,
    resolution: usize,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, ExportError> {
    Ok(network_to_onnx(&lower(model, resolution)?, metadata))
}

/// Exports `model` with `metadata` (see [`to_onnx_with_metadata`]) to an ONNX file at `path`,
/// written atomically.
pub fn save_onnx(
    model: &Classifier,
    resolution: usize,
    metadata: &[(String, String)],
    path: &Path,
) -> Result<(), ExportError> {
    let bytes = to_onnx_with_metadata(model, resolution, metadata)?;
    kestrel_data::fsio::write_atomic(path, &bytes).map_err(|e| ExportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Exports an FCN segmenter with `metadata` to an ONNX file at `path`, written atomically.
pub fn save_segmenter_onnx(
    model: &Fcn,
    resolution: usize,
    metadata: &[(String, String)],
    path: &Path,
) -> Result<(), ExportError> {
    let bytes = network_to_onnx(&lower_segmenter(model, resolution)?, metadata);
    kestrel_data::fsio::write_atomic(path, &bytes).map_err(|e| ExportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A `TensorProto` of `int64` values.
fn tensor_i64(name: &str, data: &[i64]) -> Message {
    let mut t = Message::new();
    t.int(1, data.len() as i64);
    t.int(2, INT64).string(8, name);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// A string attribute.
fn attr_str(name: &str, v: &str) -> Message {
    let mut a = Message::new();
    a.string(1, name)
        .bytes(4, v.as_bytes())
        .int(20, ATTR_STRING);
    a
}

/// A float attribute.
fn attr_float(name: &str, v: f32) -> Message {
    let mut a = Message::new();
    a.string(1, name).float(2, v).int(20, ATTR_FLOAT);
    a
}

/// A `TensorProto` of `float32` values, stored as raw little-endian bytes.
fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Message {
    let mut t = Message::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, FLOAT).string(8, name);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// One dimension of a tensor type: fixed, or named (dynamic).
enum Dim<'a> {
    Fixed(usize),
    Named(&'a str),
}

/// A `ValueInfoProto` of a `float32` tensor.
fn value_info(name: &str, dims: &[Dim]) -> Message {
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

/// An integer attribute.
fn attr_int(name: &str, i: i64) -> Message {
    let mut a = Message::new();
    a.string(1, name).int(3, i).int(20, ATTR_INT);
    a
}

/// An integer-list attribute.
fn attr_ints(name: &str, v: &[usize]) -> Message {
    let mut a = Message::new();
    a.string(1, name);
    for &x in v {
        a.int(8, x as i64);
    }
    a.int(20, ATTR_INTS);
    a
}

/// A `NodeProto` of the default domain.
fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[Message]) -> Message {
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

/// Nodes and initializers of a graph under construction.
#[derive(Default)]
struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    relu6_bounds: bool,
}

impl Graph {
    /// A convolution (`Conv`), or with its `output_padding` a transposed one (`ConvTranspose`),
    /// named `name`, reading `input`: its weight and bias initializers, the node, and its
    /// activation, the result written to `out`.
    fn conv(
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
        let (op, first, per_group) = match output_padding {
            None => ("Conv", c.out_channels, c.in_channels),
            Some(_) => ("ConvTranspose", c.in_channels, c.out_channels),
        };
        let dims = [first, per_group / c.groups, c.kernel[0], c.kernel[1]];
        self.initializers.push(tensor(&w, &dims, &c.weight));
        self.initializers
            .push(tensor(&b, &[c.out_channels], &c.bias));
        let [ph, pw] = c.padding;
        let mut attrs = vec![
            attr_ints("dilations", &c.dilation),
            attr_int("group", c.groups as i64),
            attr_ints("kernel_shape", &c.kernel),
        ];
        if let Some(op) = output_padding {
            attrs.push(attr_ints("output_padding", op));
        }
        attrs.push(attr_ints("pads", &[ph, pw, ph, pw]));
        attrs.push(attr_ints("strides", &c.stride));
        let pre = match c.act {
            Activation::None => out.to_string(),
            _ => format!("{name}.conv"),
        };
        self.nodes
            .push(node(op, name, &[input, &w, &b], &[&pre], &attrs));
        self.activation(c.act, name, &pre, out);
    }

    /// `act(pre)` written to `out` (or `pre` renamed to `out` when there is no activation: the
    /// caller then writes the producing node's output as `out` directly).
    fn activation(&mut self, act: Activation, name: &str, pre: &str, out: &str) {
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
}

/// The ONNX bytes of an already lowered network, with `metadata` as `metadata_props`.
pub fn network_to_onnx(net: &Network, metadata: &[(String, String)]) -> Vec<u8> {
    let value = |v: usize| -> String {
        if v == 0 {
            "input".into()
        } else if v == net.output() {
            "logits".into()
        } else {
            net.layers[v - 1].name().to_string()
        }
    };
    let mut g = Graph::default();
    for (i, layer) in net.layers.iter().enumerate() {
        let out = value(i + 1);
        // The pre-activation value of a layer with an activation.
        let pre = |act: Activation, suffix: &str| match act {
            Activation::None => out.clone(),
            _ => format!("{}.{suffix}", layer.name()),
        };
        match layer {
            Layer::Conv {
                name,
                input,
                conv: c,
            } => g.conv(name, &value(*input), c, None, &out),
            Layer::MaxPool {
                name,
                input,
                kernel,
                stride,
                padding,
            } => {
                let [ph, pw] = *padding;
                let attrs = [
                    attr_ints("kernel_shape", kernel),
                    attr_ints("pads", &[ph, pw, ph, pw]),
                    attr_ints("strides", stride),
                ];
                g.nodes
                    .push(node("MaxPool", name, &[&value(*input)], &[&out], &attrs));
            }
            Layer::Add { name, a, b, act } => {
                let p = pre(*act, "sum");
                g.nodes
                    .push(node("Add", name, &[&value(*a), &value(*b)], &[&p], &[]));
                g.activation(*act, name, &p, &out);
            }
            Layer::GlobalAvgPool { name, input } => {
                let map = format!("{name}.map");
                g.nodes.push(node(
                    "GlobalAveragePool",
                    name,
                    &[&value(*input)],
                    &[&map],
                    &[],
                ));
                g.nodes.push(node(
                    "Flatten",
                    &format!("{name}.flatten"),
                    &[&map],
                    &[&out],
                    &[attr_int("axis", 1)],
                ));
            }
            Layer::Linear {
                name,
                input,
                weight,
                bias,
                in_features,
                out_features,
            } => {
                let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
                g.initializers
                    .push(tensor(&w, &[*out_features, *in_features], weight));
                g.initializers.push(tensor(&b, &[*out_features], bias));
                g.nodes.push(node(
                    "Gemm",
                    name,
                    &[&value(*input), &w, &b],
                    &[&out],
                    &[attr_int("transB", 1)],
                ));
            }
            Layer::Resize {
                name,
                input,
                mode,
                align_corners,
                resize,
            } => {
                let x = value(*input);
                let mut attrs = vec![];
                let (m, coords) = match mode {
                    ResizeMode::Nearest => ("nearest", "asymmetric"),
                    ResizeMode::Linear | ResizeMode::Cubic => (
                        if *mode == ResizeMode::Linear {
                            "linear"
                        } else {
                            "cubic"
                        },
                        if *align_corners {
                            "align_corners"
                        } else {
                            "pytorch_half_pixel"
                        },
                    ),
                };
                attrs.push(attr_str("coordinate_transformation_mode", coords));
                if *mode == ResizeMode::Cubic {
                    attrs.push(attr_float("cubic_coeff_a", -0.75));
                }
                attrs.push(attr_str("mode", m));
                if *mode == ResizeMode::Nearest {
                    attrs.push(attr_str("nearest_mode", "floor"));
                }
                match resize {
                    ResizeTo::Scale([sh, sw]) => {
                        let scales = format!("{name}.scales");
                        g.initializers.push(tensor(
                            &scales,
                            &[4],
                            &[1.0, 1.0, *sh as f32, *sw as f32],
                        ));
                        g.nodes
                            .push(node("Resize", name, &[&x, "", &scales], &[&out], &attrs));
                    }
                    ResizeTo::Size([h, w]) => {
                        // sizes = [N, C] of the input followed by the fixed size.
                        let (nc, hw, sizes) = (
                            format!("{name}.nc"),
                            format!("{name}.hw"),
                            format!("{name}.sizes"),
                        );
                        g.initializers
                            .push(tensor_i64(&hw, &[*h as i64, *w as i64]));
                        g.nodes
                            .push(node("Shape", &nc, &[&x], &[&nc], &[attr_int("end", 2)]));
                        g.nodes.push(node(
                            "Concat",
                            &sizes,
                            &[&nc, &hw],
                            &[&sizes],
                            &[attr_int("axis", 0)],
                        ));
                        g.nodes
                            .push(node("Resize", name, &[&x, "", "", &sizes], &[&out], &attrs));
                    }
                }
            }
            Layer::ConvTranspose {
                name,
                input,
                conv: c,
                output_padding,
            } => g.conv(name, &value(*input), c, Some(output_padding), &out),
            Layer::PixelShuffle {
                name,
                input,
                factor,
            } => {
                let attrs = [
                    attr_int("blocksize", *factor as i64),
                    attr_str("mode", "CRD"),
                ];
                g.nodes.push(node(
                    "DepthToSpace",
                    name,
                    &[&value(*input)],
                    &[&out],
                    &attrs,
                ));
            }
            Layer::Crop { name, input, like } => {
                let (ends, starts, axes) = (
                    format!("{name}.ends"),
                    format!("{name}.starts"),
                    format!("{name}.axes"),
                );
                g.initializers.push(tensor_i64(&starts, &[0, 0]));
                g.initializers.push(tensor_i64(&axes, &[2, 3]));
                g.nodes.push(node(
                    "Shape",
                    &ends,
                    &[&value(*like)],
                    &[&ends],
                    &[attr_int("end", 4), attr_int("start", 2)],
                ));
                g.nodes.push(node(
                    "Slice",
                    name,
                    &[&value(*input), &starts, &ends, &axes],
                    &[&out],
                    &[],
                ));
            }
        }
    }
    let r = net.resolution;
    let mut graph = Message::new();
    for n in &g.nodes {
        graph.message(1, n);
    }
    graph.string(2, &net.arch);
    for t in &g.initializers {
        graph.message(5, t);
    }
    let batch = Dim::Named("batch");
    graph.message(
        11,
        &value_info(
            "input",
            &[
                batch,
                Dim::Fixed(net.in_channels),
                Dim::Fixed(r),
                Dim::Fixed(r),
            ],
        ),
    );
    let logits = if net.is_dense() {
        vec![
            Dim::Named("batch"),
            Dim::Fixed(net.num_classes),
            Dim::Fixed(r),
            Dim::Fixed(r),
        ]
    } else {
        vec![Dim::Named("batch"), Dim::Fixed(net.num_classes)]
    };
    graph.message(12, &value_info("logits", &logits));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::synthetic::{burn_output, input_nchw, randomized, rel_err};
    use crate::models::zoo::{Arch, ClassifierSpec};
    use burn::tensor::Device;
    use serde_json::Value;
    use std::path::Path;

    /// (name, architecture, activation, width, resolution, classes, seed, batch).
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        f64,
        usize,
        usize,
        u64,
        usize,
    );

    /// The models `tools/onnx_reference.py` runs through ONNX Runtime.
    const CASES: [Case; 5] = [
        ("mobilenet_v1", "mobilenet-v1", "relu6", 0.25, 32, 5, 21, 2),
        ("mobilenet_v2", "mobilenet-v2", "relu6", 0.35, 32, 5, 22, 2),
        (
            "mobilenet_v2_relu",
            "mobilenet-v2",
            "relu",
            0.35,
            32,
            5,
            22,
            2,
        ),
        ("resnet18", "resnet18", "relu6", 1.0, 32, 5, 23, 2),
        ("resnet50", "resnet50", "relu6", 1.0, 32, 5, 24, 2),
    ];

    /// FNV-1a, 64 bits (the fixture's fingerprint of the exported bytes).
    fn fnv1a64(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// The `n` cases of an ONNX Runtime fixture.
    fn ort_cases(fixture: &str, n: usize) -> Vec<Value> {
        let fixture: Value = serde_json::from_str(fixture).unwrap();
        let cases = fixture["cases"].as_array().unwrap().clone();
        assert_eq!(cases.len(), n);
        cases
    }

    /// One fixture case: `bytes` are the export ONNX Runtime ran (`tool` writes the fixture
    /// anew otherwise), and Burn's output `burn` equals ONNX Runtime's values under `key`
    /// within 1e-4 of the largest.
    fn check_ort_case(c: &Value, bytes: &[u8], tool: &str, key: &str, burn: &[f32]) {
        let name = c["name"].as_str().unwrap();
        assert_eq!(
            format!("{:016x}", fnv1a64(bytes)),
            c["fnv1a64"].as_str().unwrap(),
            "{name}: the export's bytes changed; rerun {tool}"
        );
        let ort: Vec<f32> = c[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let e = rel_err(burn, &ort);
        assert!(e < 1e-4, "{name}: relative error {e}\n{burn:?}\n{ort:?}");
    }

    /// Writes `name.onnx`, the NCHW input (little-endian f32) as `name.input.f32` and `meta` as
    /// `name.json` into `dir`, for a reference script.
    fn write_reference(dir: &Path, name: &str, onnx: &[u8], batch: usize, res: usize, meta: Value) {
        std::fs::write(dir.join(format!("{name}.onnx")), onnx).unwrap();
        let x: Vec<u8> = input_nchw(batch, res, 3)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.join(format!("{name}.input.f32")), x).unwrap();
        std::fs::write(dir.join(format!("{name}.json")), meta.to_string()).unwrap();
    }

    fn case_model(arch: &str, act: &str, width: f64, classes: usize, seed: u64) -> Classifier {
        let spec = ClassifierSpec {
            arch: arch.parse::<Arch>().unwrap(),
            width,
            num_classes: classes,
            activation: act.parse().unwrap(),
        };
        randomized(spec.init(&Device::flex()), seed)
    }

    /// Writes each case's ONNX file and NCHW input (little-endian f32) into
    /// `$KESTREL_ONNX_OUT` for `tools/onnx_reference.py`.
    #[test]
    #[ignore = "run by tools/onnx_reference.py"]
    fn write_onnx_reference_inputs() {
        let dir = std::path::PathBuf::from(std::env::var("KESTREL_ONNX_OUT").unwrap());
        for (name, arch, act, width, res, classes, seed, batch) in CASES {
            let model = case_model(arch, act, width, classes, seed);
            let meta = serde_json::json!({
                "name": name, "arch": arch, "activation": act, "width": width,
                "resolution": res, "classes": classes, "seed": seed, "batch": batch,
            });
            let bytes = to_onnx(&model, res).unwrap();
            write_reference(&dir, name, &bytes, batch, res, meta);
        }
    }

    /// ONNX Runtime (run once by `tools/onnx_reference.py`, after `onnx.checker` accepted the
    /// model) gave the fixture's logits for the export of these exact bytes; the Burn model gives
    /// the same logits. The ReLU MobileNetV2 (ONNX `Relu` where the other has `Clip`) has the
    /// ReLU6 one's weights, and its logits differ from that model's: some activation exceeds 6.
    #[test]
    fn onnx_runtime_agrees_with_burn_on_the_exported_bytes() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/onnx_ort.json"
        ));
        let mut relu_pair = Vec::new();
        for c in ort_cases(fixture, CASES.len()) {
            let res = c["resolution"].as_u64().unwrap() as usize;
            let batch = c["batch"].as_u64().unwrap() as usize;
            let model = case_model(
                c["arch"].as_str().unwrap(),
                c["activation"].as_str().unwrap(),
                c["width"].as_f64().unwrap(),
                c["classes"].as_u64().unwrap() as usize,
                c["seed"].as_u64().unwrap(),
            );
            let bytes = to_onnx(&model, res).unwrap();
            let has = |op: &[u8]| bytes.windows(op.len()).any(|w| w == op);
            let burn = burn_output(batch, res, |x| model.forward(x));
            if c["arch"] == "mobilenet-v2" {
                let relu = c["activation"] == "relu";
                assert_eq!((has(b"Clip"), has(b"Relu")), (!relu, relu), "{}", c["name"]);
                relu_pair.push(burn.clone());
            }
            check_ort_case(&c, &bytes, "tools/onnx_reference.py", "logits", &burn);
        }
        let [relu6, relu] = &relu_pair[..] else {
            panic!("expected two mobilenet-v2 cases")
        };
        assert!(rel_err(relu, relu6) > 1e-3, "{relu:?} = {relu6:?}");
    }

    /// The segmenters `tools/onnx_fcn_reference.py` runs through ONNX Runtime:
    /// (name, model, width, output stride, upsampler, resolution, seed); 3 classes, batch 1.
    const FCN_CASES: [(&str, &str, f64, usize, &str, usize, u64); 5] = [
        (
            "fcn8s_mbv2_bilinear",
            "fcn8s-mobilenet-v2",
            0.35,
            32,
            "bilinear",
            35,
            41,
        ),
        (
            "fcn8s_mbv2_os8_transposed",
            "fcn8s-mobilenet-v2",
            0.35,
            8,
            "transposed",
            33,
            42,
        ),
        (
            "fcn16s_mbv2_pixelshuffle",
            "fcn16s-mobilenet-v2",
            0.35,
            32,
            "pixelshuffle",
            34,
            43,
        ),
        (
            "fcn32s_resnet18_os16_bicubic",
            "fcn32s-resnet18",
            1.0,
            16,
            "bicubic",
            37,
            44,
        ),
        (
            "fcn16s_resnet18_nearest",
            "fcn16s-resnet18",
            1.0,
            32,
            "nearest",
            35,
            45,
        ),
    ];

    fn fcn_case(name: &str, width: f64, os: usize, up: &str, seed: u64) -> crate::models::fcn::Fcn {
        let spec =
            crate::models::fcn::SegmenterSpec::for_tests(name, width, 3, os, up.parse().unwrap());
        randomized(spec.init(&Device::flex()).unwrap(), seed)
    }

    fn fcn_bytes(model: &crate::models::fcn::Fcn, res: usize) -> Vec<u8> {
        network_to_onnx(&lower_segmenter(model, res).unwrap(), &[])
    }

    /// Writes each segmenter case's ONNX file and NCHW input into `$KESTREL_ONNX_OUT` for
    /// `tools/onnx_fcn_reference.py`.
    #[test]
    #[ignore = "run by tools/onnx_fcn_reference.py"]
    fn write_onnx_fcn_reference_inputs() {
        let dir = std::path::PathBuf::from(std::env::var("KESTREL_ONNX_OUT").unwrap());
        for (name, model, width, os, up, res, seed) in FCN_CASES {
            let m = fcn_case(model, width, os, up, seed);
            let meta = serde_json::json!({
                "name": name, "model": model, "width": width, "output_stride": os,
                "upsampler": up, "resolution": res, "classes": 3, "seed": seed, "batch": 1,
            });
            write_reference(&dir, name, &fcn_bytes(&m, res), 1, res, meta);
        }
    }

    /// ONNX Runtime's scores for the exported FCNs (fixture of `tools/onnx_fcn_reference.py`)
    /// equal the Burn models' within 1e-4 of the largest score.
    #[test]
    fn onnx_runtime_agrees_with_burn_on_exported_segmenters() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/onnx_fcn_ort.json"
        ));
        for c in ort_cases(fixture, FCN_CASES.len()) {
            let res = c["resolution"].as_u64().unwrap() as usize;
            let model = fcn_case(
                c["model"].as_str().unwrap(),
                c["width"].as_f64().unwrap(),
                c["output_stride"].as_u64().unwrap() as usize,
                c["upsampler"].as_str().unwrap(),
                c["seed"].as_u64().unwrap(),
            );
            let burn = burn_output(1, res, |x| model.forward(x));
            let tool = "tools/onnx_fcn_reference.py";
            check_ort_case(&c, &fcn_bytes(&model, res), tool, "scores", &burn);
        }
    }

    #[test]
    fn the_graph_declares_opset_17_a_dynamic_batch_and_folded_convolutions() {
        let spec = ClassifierSpec {
            arch: Arch::MobileNetV2,
            width: 0.35,
            num_classes: 3,
            activation: Default::default(),
        };
        let model = spec.init(&Device::flex());
        let bytes = to_onnx(&model, 32).unwrap();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        // opset_import { domain: "" version: 17 }: field 8, 4 bytes: `0a 00 10 11`.
        assert!(has(&[0x42, 0x04, 0x0a, 0x00, 0x10, 0x11]));
        assert!(has(b"batch") && has(b"input") && has(b"logits"));
        assert!(has(b"GlobalAveragePool") && has(b"Gemm") && has(b"Clip"));
        assert!(!has(b"BatchNormalization"));
        // Deterministic.
        assert_eq!(bytes, to_onnx(&model, 32).unwrap());
        // Metadata entries (ModelProto field 14) follow the rest of the model.
        let md = [("kestrel.classes".to_string(), "[\"a\"]".to_string())];
        let with = to_onnx_with_metadata(&model, 32, &md).unwrap();
        let mut entry = Message::new();
        entry.string(1, &md[0].0).string(2, &md[0].1);
        let mut tail = Message::new();
        tail.message(14, &entry);
        assert_eq!(with, [bytes, tail.into_bytes()].concat());
    }
}
