use super::*;
use crate::export::layout::nchw_to_nhwc;
use crate::export::proto::{decode, Field};
use crate::export::synthetic::{input_nchw, rel_err};
use kestrel_data::rng::Rng;
use kestrel_runtime::kernels::ConvGeometry;
use kestrel_runtime::quant::table::weight_scales;
use kestrel_runtime::quant::{ActQuant, Calibration, Int8Engine, Int8Options};
use kestrel_runtime::{ConvParams, Engine, EngineOptions, PlanBuilder, ResizeMode, Shape};
use std::collections::HashMap;

/// A node as read back: op type, name, inputs, outputs, integer(-list) attributes.
#[derive(Debug)]
struct NodeView {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    ints: HashMap<String, Vec<i64>>,
}

/// An initializer as read back: element type, dims, raw bytes.
#[derive(Debug)]
struct TensorView {
    dtype: i64,
    dims: Vec<usize>,
    raw: Vec<u8>,
}

impl TensorView {
    fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.dtype, 1);
        let c = self.raw.chunks_exact(4);
        c.map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
    fn i32s(&self) -> Vec<i32> {
        assert_eq!(self.dtype, 6);
        let c = self.raw.chunks_exact(4);
        c.map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
    fn i8s(&self) -> Vec<i8> {
        assert_eq!(self.dtype, 3);
        self.raw.iter().map(|&b| b as i8).collect()
    }
}

/// The parts of a written model the tests look at.
struct ModelView {
    opset: u64,
    nodes: Vec<NodeView>,
    inits: HashMap<String, TensorView>,
    /// Input and output: name and dims (`0` for a symbolic one).
    io: Vec<(String, Vec<u64>)>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn bytes_of(f: Field<'_>) -> &[u8] {
    match f {
        Field::Bytes(b) => b,
        other => panic!("expected bytes, got {other:?}"),
    }
}

fn varint(f: Field<'_>) -> u64 {
    match f {
        Field::Varint(v) => v,
        other => panic!("expected a varint, got {other:?}"),
    }
}

/// Reads a `ModelProto` (field numbers from `onnx.proto`).
fn view(model: &[u8]) -> ModelView {
    let top = decode(model);
    let graph = top.iter().find(|(f, _)| *f == 7).map(|(_, g)| *g).unwrap();
    let opset = top.iter().find(|(f, _)| *f == 8).map(|(_, o)| *o).unwrap();
    let opset = decode(bytes_of(opset))
        .into_iter()
        .find(|(f, _)| *f == 2)
        .map(|(_, v)| varint(v))
        .unwrap();
    let (mut nodes, mut inits, mut io) = (vec![], HashMap::new(), vec![]);
    for (f, v) in decode(bytes_of(graph)) {
        if !matches!(f, 1 | 5 | 11 | 12) {
            continue;
        }
        let fields = decode(bytes_of(v));
        match f {
            1 => {
                let mut n = NodeView {
                    op: String::new(),
                    inputs: vec![],
                    outputs: vec![],
                    ints: HashMap::new(),
                };
                for (f, v) in fields {
                    match f {
                        1 => n.inputs.push(text(bytes_of(v))),
                        2 => n.outputs.push(text(bytes_of(v))),
                        4 => n.op = text(bytes_of(v)),
                        5 => {
                            let a = decode(bytes_of(v));
                            let name = text(bytes_of(a[0].1));
                            let ints = a.iter().filter(|(f, _)| matches!(f, 3 | 8));
                            let ints = ints.map(|(_, v)| varint(*v) as i64).collect();
                            n.ints.insert(name, ints);
                        }
                        _ => {}
                    }
                }
                nodes.push(n);
            }
            5 => {
                let (mut dims, mut dtype, mut name, mut raw) = (vec![], 0, String::new(), vec![]);
                for (f, v) in fields {
                    match f {
                        1 => dims.push(varint(v) as usize),
                        2 => dtype = varint(v) as i64,
                        8 => name = text(bytes_of(v)),
                        9 => raw = bytes_of(v).to_vec(),
                        _ => {}
                    }
                }
                inits.insert(name, TensorView { dtype, dims, raw });
            }
            11 | 12 => {
                let name = text(bytes_of(fields[0].1));
                // type → tensor_type → shape → dims
                let ty = decode(bytes_of(fields[1].1));
                let tt = decode(bytes_of(ty[0].1));
                let shape = decode(bytes_of(tt[1].1));
                let dims = shape.iter().map(|(_, d)| match decode(bytes_of(*d))[0] {
                    (1, v) => varint(v),
                    _ => 0,
                });
                io.push((name, dims.collect()));
            }
            _ => {}
        }
    }
    ModelView {
        opset,
        nodes,
        inits,
        io,
    }
}

/// `n` values uniform in `[-a, a)`.
fn draw(rng: &mut Rng, n: usize, a: f64) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-a, a) as f32).collect()
}

/// The test network's PyTorch-layout weights: (OIHW weight, bias) of the 3×3 stride-2 conv
/// (3 → 8), the depthwise 3×3, the 1×1 (8 → 8) and the linear layer (`[out][in]`, 8 → 5).
fn weights() -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut rng = Rng::new(7);
    [(8 * 3 * 9, 8), (8 * 9, 8), (8 * 8, 8), (5 * 8, 5)]
        .into_iter()
        .map(|(w, b)| (draw(&mut rng, w, 0.5), draw(&mut rng, b, 0.2)))
        .collect()
}

/// 8×8×3 input → conv 3×3 stride 2 ReLU6 → depthwise 3×3 ReLU → 1×1 + residual (the first
/// conv's output) ReLU → global average pool → linear 8 → 5.
fn test_plan() -> Plan {
    let w = weights();
    let mut b = PlanBuilder::new(Shape::new(8, 8, 3));
    let p = ConvParams::new(&w[0].0, Some(&w[0].1), 8, 3);
    let x1 = b
        .conv(0, &p.stride(2).padding(1).act(Activation::Relu6))
        .unwrap();
    let p = ConvParams::new(&w[1].0, Some(&w[1].1), 8, 3).padding(1);
    let x2 = b.depthwise(x1, &p.act(Activation::Relu)).unwrap();
    let x3 = b
        .conv(x2, &ConvParams::new(&w[2].0, Some(&w[2].1), 8, 1))
        .unwrap();
    let x3 = b.add_residual(x3, x1, Activation::Relu).unwrap();
    let x4 = b.global_pool(x3).unwrap();
    let x5 = b
        .linear(x4, &w[3].0, Some(&w[3].1), 5, Activation::None)
        .unwrap();
    b.build(x5).unwrap()
}

/// Per-value ranges of the test plan, generous round numbers around what the fp32 plan gives
/// on [`input_nchw`] (value 4, the pool, keeps value 3's; value 5, the output, is never
/// quantised but has an entry like every value).
const RANGES: [(f32, f32); 6] = [
    (-2.0, 2.0),
    (0.0, 6.0),
    (0.0, 3.0),
    (0.0, 6.0),
    (0.0, 6.0),
    (-4.0, 4.0),
];

/// Per-channel weight scales of every op of `plan` with int8 weights, none for the others.
fn per_channel_scales(plan: &Plan) -> Vec<Vec<f32>> {
    let scales = |op: &Op| match (op, int8_out_channels(op)) {
        (Op::Conv(c), Some(n)) => weight_scales(plan.slice(c.weight), n, false),
        (Op::Linear { weight, .. }, Some(n)) => weight_scales(plan.slice(*weight), n, false),
        _ => vec![],
    };
    plan.graph.ops.iter().map(scales).collect()
}

fn test_quant_plan() -> QuantPlan {
    let plan = test_plan();
    let weight_scales = per_channel_scales(&plan);
    let values = RANGES.map(|(lo, hi)| ActQuant::from_range(lo, hi)).to_vec();
    let calibration = Calibration {
        method: "minmax".into(),
        images: 2,
        depthwise_per_tensor: false,
    };
    let table = QuantTable {
        values,
        weight_scales,
        calibration,
    };
    let q = QuantPlan { plan, table };
    q.validate().unwrap();
    q
}

/// The element types of `onnx.proto`'s `TensorProto.DataType`.
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT8: i64 = 3;
const INT32: i64 = 6;

#[test]
fn the_qdq_graph_quantises_values_and_weights_as_the_int8_engine_does() {
    let q = test_quant_plan();
    let m = view(&quant_plan_to_onnx(&q, &[]).unwrap());
    assert_eq!(m.opset, 17);
    let ops: Vec<&str> = m.nodes.iter().map(|n| n.op.as_str()).collect();
    let (qz, dq) = ("QuantizeLinear", "DequantizeLinear");
    #[rustfmt::skip]
    let want = [
        qz, // the input
        dq, dq, dq, "Conv", "Clip", qz, // weight, bias, input; ReLU6
        dq, dq, dq, "Conv", "Relu", qz, // depthwise
        dq, dq, dq, "Conv", dq, "Add", "Relu", qz, // 1×1 with the residual
        dq, "GlobalAveragePool", qz,
        dq, dq, "Flatten", dq, "Gemm", // the output: not quantised
    ];
    assert_eq!(ops, want);
    let last = m.nodes.last().unwrap();
    assert_eq!(last.outputs, ["logits"]);
    assert_eq!(last.ints["transB"], [1]);
    assert_eq!(
        m.io,
        [
            ("input".to_string(), vec![0, 3, 8, 8]),
            ("logits".to_string(), vec![0, 5])
        ]
    );

    // Values: one scalar scale and uint8 zero point each, the table's.
    for (v, a) in q.table.values.iter().enumerate().take(5) {
        let (s, z) = (
            &m.inits[&format!("v{v}.scale")],
            &m.inits[&format!("v{v}.zero")],
        );
        assert_eq!((s.dims.len(), z.dims.len(), z.dtype), (0, 0, UINT8), "{v}");
        assert_eq!((s.f32s(), z.raw.clone()), (vec![a.scale], vec![a.zero]));
    }
    assert!(!m.inits.contains_key("v5.scale"), "the output is float");
    assert_eq!(
        m.inits["v1.zero"].raw,
        [0],
        "ReLU6 output range starts at 0"
    );

    // Weights: int8 in ONNX's layout, round(w / s) with s = max |w| / 127 over the output
    // channel, computed here from the PyTorch-layout weights the plan was built from.
    let w = weights();
    let dims = [
        vec![8, 3, 3, 3],
        vec![8, 1, 3, 3],
        vec![8, 8, 1, 1],
        vec![5, 8],
    ];
    let sx: Vec<f32> = [0, 1, 2, 4].map(|v| q.table.values[v].scale).to_vec();
    for (i, ((oihw, bias), dims)) in w.iter().zip(dims).enumerate() {
        let op = [0, 1, 2, 4][i];
        let per = oihw.len() / bias.len();
        let t = &m.inits[&format!("op{op}.weight.q")];
        assert_eq!((t.dtype, &t.dims), (INT8, &dims), "op {op}");
        let scales = m.inits[&format!("op{op}.weight.scale")].f32s();
        assert_eq!(scales, q.table.weight_scales[op], "op {op}");
        for (o, s) in scales.iter().enumerate() {
            let amax = oihw[o * per..(o + 1) * per]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(*s, amax / 127.0, "op {op} channel {o}");
        }
        let want: Vec<i8> = oihw
            .iter()
            .enumerate()
            .map(|(k, w)| (w / scales[k / per]).round() as i8)
            .collect();
        assert_eq!(t.i8s(), want, "op {op}");
        let zero = &m.inits[&format!("op{op}.weight.zero")];
        assert_eq!((zero.dtype, zero.i8s()), (INT8, vec![0; bias.len()]));
        // Bias: int32 in units of input scale × weight scale.
        let b = &m.inits[&format!("op{op}.bias.q")];
        let bs = m.inits[&format!("op{op}.bias.scale")].f32s();
        assert_eq!((b.dtype, &b.dims), (INT32, &vec![bias.len()]));
        for (c, (&s, &bq)) in bs.iter().zip(&b.i32s()).enumerate() {
            assert_eq!(s, sx[i] * scales[c]);
            assert_eq!(bq, (bias[c] as f64 / s as f64).round() as i32, "op {op}");
        }
        assert_eq!(
            m.inits[&format!("op{op}.bias.zero")].i32s(),
            vec![0; bias.len()]
        );
    }
    // Per-axis dequantisation of weights and biases, per-tensor of values.
    for n in m.nodes.iter().filter(|n| n.op == dq) {
        let per_channel = n.inputs[0].starts_with("op");
        assert_eq!(n.ints.get("axis"), per_channel.then_some(&vec![0]), "{n:?}");
    }
    // The conv geometry: stride 2, padding 1 on every side; the depthwise one group per channel.
    let convs: Vec<_> = m.nodes.iter().filter(|n| n.op == "Conv").collect();
    assert_eq!(convs[0].ints["strides"], [2, 2]);
    assert_eq!(convs[0].ints["pads"], [1, 1, 1, 1]);
    assert_eq!(convs[1].ints["group"], [8]);
}

#[test]
fn an_fp32_plan_gives_the_same_graph_without_quantisation() {
    let m = view(&plan_to_onnx(&test_plan(), &[]).unwrap());
    let ops: Vec<&str> = m.nodes.iter().map(|n| n.op.as_str()).collect();
    #[rustfmt::skip]
    let want = [
        "Conv", "Clip", "Conv", "Relu", "Conv", "Add", "Relu", "GlobalAveragePool", "Flatten",
        "Gemm",
    ];
    assert_eq!(ops, want);
    let w = weights();
    for (i, op) in [0, 1, 2, 4].into_iter().enumerate() {
        let t = &m.inits[&format!("op{op}.weight")];
        assert_eq!(t.dtype, FLOAT);
        assert_eq!(t.f32s(), w[i].0, "op {op}: PyTorch's layout again");
        assert_eq!(m.inits[&format!("op{op}.bias")].f32s(), w[i].1);
    }
}

#[test]
fn bad_tables_and_unrepresentable_resizes_are_errors() {
    let mut q = test_quant_plan();
    q.table.weight_scales[0].pop();
    let e = quant_plan_to_onnx(&q, &[]).unwrap_err().to_string();
    assert!(e.contains("op 0") && e.contains("weight scales"), "{e}");
    // Scale 1.5 of 3 pixels gives 4, not the plan's 5.
    let mut b = PlanBuilder::new(Shape::new(3, 3, 2));
    let r = b
        .resize(0, ResizeMode::Linear, false, Some([1.5, 1.5]), [5, 5])
        .unwrap();
    let e = plan_to_onnx(&b.build(r).unwrap(), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("op 0 (resize_linear)") && e.contains("5x5"),
        "{e}"
    );
}

/// Every other plan op kind, a convolution without int8 weights (grouped) and a value read
/// twice (`Add(x, x)`), all values quantised to `[0, 8]` (the input to `[-2, 8]`).
fn all_ops_plan() -> QuantPlan {
    use kestrel_runtime::ConvTransposeParams;
    let mut rng = Rng::new(9);
    let mut b = PlanBuilder::new(Shape::new(6, 6, 4));
    let w = draw(&mut rng, 4 * 2 * 9, 0.4);
    // Grouped 3×3: float weights in the int8 engine.
    let g = ConvParams::new(&w, None, 4, 3).padding(1).groups(2);
    let x1 = b.conv(0, &g.act(Activation::Relu)).unwrap();
    let x2 = b.max_pool(x1, ConvGeometry::square(2, 2, 0, 1)).unwrap();
    let x3 = b.add_residual(x2, x2, Activation::Relu6).unwrap();
    let x4 = b.clip(x3, 0.5, 4.0).unwrap();
    let x5 = b
        .resize(x4, ResizeMode::Cubic, false, Some([2.0, 2.0]), [6, 6])
        .unwrap();
    let x6 = b
        .resize(x5, ResizeMode::Nearest, false, None, [7, 7])
        .unwrap();
    let wt = draw(&mut rng, 4 * 4 * 4, 0.4);
    let ct = ConvTransposeParams {
        weight: &wt,
        bias: None,
        out_channels: 4,
        geom: ConvGeometry::square(2, 2, 1, 1),
        output_padding: [1, 1],
        groups: 1,
        act: Activation::Relu,
    };
    let x7 = b.conv_transpose(x6, &ct).unwrap();
    let x8 = b.pixel_shuffle(x7, 2).unwrap();
    let x9 = b.crop(x8, [20, 19]).unwrap();
    let plan = b.build(x9).unwrap();
    let values = (0..plan.graph.values.len())
        .map(|v| ActQuant::from_range(if v == 0 { -2.0 } else { 0.0 }, 8.0))
        .collect();
    let weight_scales = plan.graph.ops.iter().map(|_| vec![]).collect();
    let table = QuantTable {
        values,
        weight_scales,
        calibration: test_quant_plan().table.calibration,
    };
    QuantPlan { plan, table }
}

/// Global pool, then two linear layers (the first with ReLU): a quantised `batch × C` value
/// reshaped back to NCHW and flattened again for the next `Gemm`.
fn mlp_plan() -> QuantPlan {
    let mut rng = Rng::new(10);
    let mut b = PlanBuilder::new(Shape::new(4, 4, 3));
    let x = b.global_pool(0).unwrap();
    let (w1, b1) = (draw(&mut rng, 6 * 3, 1.0), draw(&mut rng, 6, 0.3));
    let x = b.linear(x, &w1, Some(&b1), 6, Activation::Relu).unwrap();
    let (w2, b2) = (draw(&mut rng, 4 * 6, 1.0), draw(&mut rng, 4, 0.3));
    let x = b.linear(x, &w2, Some(&b2), 4, Activation::None).unwrap();
    let plan = b.build(x).unwrap();
    let ranges = [(-2.0, 2.0), (-2.0, 2.0), (0.0, 3.0), (-3.0, 3.0)];
    let table = QuantTable {
        values: ranges.map(|(lo, hi)| ActQuant::from_range(lo, hi)).to_vec(),
        weight_scales: per_channel_scales(&plan),
        calibration: test_quant_plan().table.calibration,
    };
    QuantPlan { plan, table }
}

/// The cases of `tools/check_qdq.py fixture`: (name, plan, QDQ or fp32, batch).
fn cases() -> Vec<(&'static str, QuantPlan, bool, usize)> {
    vec![
        ("classifier_fp32", test_quant_plan(), false, 2),
        ("classifier_qdq", test_quant_plan(), true, 2),
        ("all_ops_qdq", all_ops_plan(), true, 1),
        ("mlp_fp32", mlp_plan(), false, 3),
        ("mlp_qdq", mlp_plan(), true, 3),
    ]
}

fn case_bytes(q: &QuantPlan, qdq: bool) -> Vec<u8> {
    match qdq {
        true => quant_plan_to_onnx(q, &[]).unwrap(),
        false => plan_to_onnx(&q.plan, &[]).unwrap(),
    }
}

/// Writes each case's ONNX file, NCHW input and description into `$KESTREL_ONNX_OUT` for
/// `tools/check_qdq.py fixture`.
#[test]
#[ignore = "run by tools/check_qdq.py fixture"]
fn write_qdq_reference_inputs() {
    let dir = std::path::PathBuf::from(std::env::var("KESTREL_ONNX_OUT").unwrap());
    for (name, q, qdq, batch) in cases() {
        let s = q.plan.input_shape();
        let x: Vec<u8> = input_nchw(batch, s.h, s.c)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.join(format!("{name}.onnx")), case_bytes(&q, qdq)).unwrap();
        std::fs::write(dir.join(format!("{name}.input.f32")), x).unwrap();
        let meta = serde_json::json!({
            "name": name, "batch": batch, "input": [s.c, s.h, s.w], "qdq": qdq,
        });
        std::fs::write(dir.join(format!("{name}.json")), meta.to_string()).unwrap();
    }
}

/// What `tools/check_qdq.py fixture` recorded of ONNX Runtime on the exported bytes: for an
/// fp32 export the output is the runtime engine's on the same plan; for a QDQ export ORT's
/// integer kernels (`output`) and its plain float QDQ arithmetic with graph optimisations off
/// (`output_unoptimized`) stay within a few output steps of each other and near fp32. (When the
/// int8 engine lands it must give `output_unoptimized` up to the requantisation's rounding.)
#[test]
fn onnx_runtime_runs_the_exports() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/qdq_ort.json"
    )))
    .unwrap();
    let recorded = fixture["cases"].as_array().unwrap();
    assert_eq!(recorded.len(), cases().len());
    for (name, q, qdq, batch) in cases() {
        let c = recorded.iter().find(|c| c["name"] == name).unwrap();
        let bytes = case_bytes(&q, qdq);
        let fnv = format!("{:016x}", kestrel_runtime::format::fnv1a(&bytes));
        assert_eq!(
            fnv,
            c["fnv1a64"].as_str().unwrap(),
            "{name}: rerun tools/check_qdq.py fixture"
        );
        let floats = |key: &str| -> Vec<f32> {
            let v = c[key].as_array().unwrap();
            v.iter().map(|v| v.as_f64().unwrap() as f32).collect()
        };
        let s = q.plan.input_shape();
        let x = nchw_to_nhwc(&input_nchw(batch, s.h, s.c), batch, s.c, s.h * s.w);
        let mut engine = Engine::new(q.plan.clone(), EngineOptions::default()).unwrap();
        let fp32 = engine.run(&x, batch).unwrap().to_vec();
        let o = q.plan.output_shape();
        let ort = crate::export::layout::nchw_to_nhwc(&floats("output"), batch, o.c, o.h * o.w);
        let e = rel_err(&ort, &fp32);
        if !qdq {
            assert!(e < 1e-5, "{name}: {e}\n{ort:?}\n{fp32:?}");
            continue;
        }
        // Quantised, so not fp32's output, but within 5 % of its largest value.
        assert!(e > 0.0 && e < 0.05, "{name}: {e}\n{ort:?}\n{fp32:?}");
        // ORT's integer kernels round some requantisations differently from the float QDQ
        // arithmetic: a few steps of the last quantised value.
        let last = q.plan.graph.ops.last().unwrap();
        let step = q.table.values[last.inputs()[0]].scale;
        let plain = nchw_to_nhwc(&floats("output_unoptimized"), batch, o.c, o.h * o.w);
        let d = ort
            .iter()
            .zip(&plain)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            d <= 3.0 * step,
            "{name}: integer vs float QDQ differ by {d}, step {step}"
        );
        // kestrel's int8 engine computes the graph's float QDQ semantics in integers: every code
        // the same (measured: outputs within 1.2e-7, float rounding of the last op), so the same
        // top class for every image.
        let mut i8 = Int8Engine::new(q.clone(), Int8Options::default()).unwrap();
        let ours = i8.run(&x, batch).unwrap().to_vec();
        let d = ours
            .iter()
            .zip(&plain)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            d <= 0.01 * step,
            "{name}: kestrel int8 vs float QDQ differ by {d}, step {step}"
        );
        eprintln!("{name}: kestrel int8 vs ORT float QDQ: max difference {d} (step {step})");
        if o.h * o.w == 1 {
            let top = |v: &[f32]| -> Vec<usize> {
                v.chunks_exact(o.c)
                    .map(|r| (0..o.c).fold(0, |b, j| if r[j] > r[b] { j } else { b }))
                    .collect()
            };
            assert_eq!(
                top(&ours),
                top(&plain),
                "{name}: top-1 of kestrel int8 and ORT QDQ"
            );
        }
    }
}
