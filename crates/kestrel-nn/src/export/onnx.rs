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
use super::network::{Layer, Network};
use super::onnx_graph::{attr_int, attr_ints, attr_str, node, tensor, tensor_i64, value_info};
use super::onnx_graph::{Dim, Graph};
use crate::models::fcn::Fcn;
use crate::models::zoo::Classifier;
use kestrel_runtime::Activation;
use std::path::Path;

pub use super::onnx_graph::ONNX_OPSET;

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
            } => g.resize(name, &value(*input), *mode, *align_corners, *resize, &out),
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
            Layer::Carafe {
                name,
                input,
                kernels,
                factor,
                kernel,
            } => g.carafe(
                name,
                &value(*input),
                &value(*kernels),
                *factor,
                *kernel,
                &out,
            ),
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
    let batch = Dim::Named("batch");
    let input = value_info(
        "input",
        &[
            batch,
            Dim::Fixed(net.in_channels),
            Dim::Fixed(r),
            Dim::Fixed(r),
        ],
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
    g.into_model(&net.arch, &input, &value_info("logits", &logits), metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::proto::Message;
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
    const FCN_CASES: [(&str, &str, f64, usize, &str, usize, u64); 7] = [
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
        (
            "fcn8s_mbv2_carafe",
            "fcn8s-mobilenet-v2",
            0.35,
            32,
            "carafe",
            37,
            46,
        ),
        (
            "fcn16s_mbv2_os16_meta",
            "fcn16s-mobilenet-v2",
            0.35,
            16,
            "meta",
            35,
            47,
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
