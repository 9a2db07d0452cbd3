//! The upsamplers against PyTorch: outputs and the gradients of sum(y · g) for a random probe g,
//! from `tools/upsample_fixtures.py` (F.interpolate, F.conv_transpose2d, F.pixel_shuffle /
//! F.pixel_unshuffle within 1e-5; CARAFE and Meta-Upscale references written in that script
//! from the papers' equations, within 1e-4).

use super::*;
use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

/// The fixture's cases; there must be `n` of them.
fn load(text: &str, n: usize) -> Vec<Value> {
    let v: Value = serde_json::from_str(text).expect("fixture JSON");
    let cases = v["cases"].as_array().expect("cases").clone();
    assert_eq!(cases.len(), n);
    cases
}

fn floats(v: &Value, key: &str) -> Vec<f32> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("fixture field {key}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn usizes<const N: usize>(v: &Value, key: &str) -> [usize; N] {
    let a: Vec<usize> = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("fixture field {key}"))
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    a.try_into().unwrap()
}

fn num(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("fixture field {key}")) as usize
}

fn tensor<const D: usize>(v: &Value, key: &str, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(floats(v, key), shape), device)
}

fn param<const D: usize>(
    v: &Value,
    key: &str,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(tensor(v, key, shape, device))
}

/// Max |a − b| / (1 + |b|) must stay below `tol`.
fn assert_close<const D: usize>(got: Tensor<D>, want: &[f32], tol: f32, what: &str) {
    let g: Vec<f32> = got.into_data().convert::<f32>().try_to_vec().unwrap();
    assert_eq!(g.len(), want.len(), "{what}: length");
    let mut worst = (0.0f32, 0);
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        let e = (a - b).abs() / (1.0 + b.abs());
        if e > worst.0 || e.is_nan() {
            worst = (e, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{what}: error {} at {} (got {}, want {})",
        worst.0,
        worst.1,
        g[worst.1],
        want[worst.1]
    );
}

/// A parameter's gradient `g` against the case's `key` (`grad_…`) within `tol`.
fn assert_grad<const D: usize>(
    g: Option<Tensor<D>>,
    case: &Value,
    key: &str,
    tol: f32,
    what: &str,
) {
    let g = g.unwrap_or_else(|| panic!("{what}: no gradient for {key}"));
    assert_close(g, &floats(case, key), tol, &format!("{what} {key}"));
}

/// Runs `f` on the case's x (autodiff), returns y and checks y and dL/dx for L = sum(y · g).
fn check_io(
    case: &Value,
    tol: f32,
    what: &str,
    f: impl FnOnce(Tensor<4>) -> Tensor<4>,
) -> burn::tensor::Gradients {
    let device = Device::flex().autodiff();
    let xs: [usize; 4] = usizes(case, "x_shape");
    let ys: [usize; 4] = usizes(case, "y_shape");
    let x = tensor(case, "x", xs, &device).require_grad();
    let y = f(x.clone());
    assert_eq!(y.dims(), ys, "{what}: output shape");
    let g = tensor(case, "g", ys, &device);
    let grads = (y.clone() * g).sum().backward();
    assert_close(y, &floats(case, "y"), tol, &format!("{what}: y"));
    let gx = x.grad(&grads).expect("input gradient");
    assert_close(gx, &floats(case, "grad_x"), tol, &format!("{what}: grad x"));
    grads
}

#[test]
fn interpolate_matches_torch() {
    let cases = load(include_str!("fixtures/interp.json"), 20);
    for case in &cases {
        let mode = case["mode"].as_str().unwrap();
        let ac = case["align_corners"].as_bool().unwrap();
        let resize = match case.get("scale") {
            Some(s) => ResizeTo::Scale([s.as_f64().unwrap(); 2]),
            None => ResizeTo::Size(usizes(case, "size")),
        };
        let what = format!("{mode} align_corners={ac} {resize:?}");
        let mode = match mode {
            "nearest" => InterpMode::Nearest,
            "bilinear" => InterpMode::Bilinear,
            "bicubic" => InterpMode::Bicubic,
            other => panic!("mode {other}"),
        };
        check_io(case, 1e-5, &what, |x| {
            InterpolateConfig::new(mode)
                .with_resize(resize)
                .with_align_corners(ac)
                .init()
                .unwrap()
                .forward(x)
        });
    }
}

#[test]
fn conv_transpose_matches_torch() {
    let cases = load(include_str!("fixtures/conv_transpose.json"), 6);
    for case in &cases {
        let device = Device::flex().autodiff();
        let (cin, cout, groups) = (
            num(case, "in_channels"),
            num(case, "out_channels"),
            num(case, "groups"),
        );
        let kernel: [usize; 2] = usizes(case, "kernel");
        let cfg = TransposedConfig::new(cin, cout)
            .with_groups(groups)
            .with_kernel(kernel)
            .with_stride(usizes(case, "stride"))
            .with_padding(usizes(case, "padding"))
            .with_output_padding(usizes(case, "output_padding"))
            .with_dilation(usizes(case, "dilation"));
        let mut m = cfg.init(&device).unwrap();
        let ws = [cin, cout / groups, kernel[0], kernel[1]];
        m.conv.weight = param(case, "weight", ws, &device);
        m.conv.bias = Some(param(case, "bias", [cout], &device));
        let what = format!("{cfg:?}");
        let xs: [usize; 4] = usizes(case, "x_shape");
        assert_eq!(
            cfg.output_size([xs[2], xs[3]]),
            Some(usizes::<4>(case, "y_shape")[2..].try_into().unwrap())
        );
        let grads = check_io(case, 1e-5, &what, |x| m.forward(x));
        let bias = m.conv.bias.as_ref().unwrap();
        assert_grad(m.conv.weight.grad(&grads), case, "grad_weight", 1e-5, &what);
        assert_grad(bias.grad(&grads), case, "grad_bias", 1e-5, &what);
    }
}

#[test]
fn pixel_shuffle_matches_torch() {
    let cases = load(include_str!("fixtures/pixel_shuffle.json"), 3);
    for case in &cases {
        let r = num(case, "factor");
        let op = case["op"].as_str().unwrap().to_string();
        check_io(case, 1e-5, &op, |x| {
            if op == "shuffle" {
                let c = x.dims()[1];
                let m = PixelShuffleConfig::new(c)
                    .with_factor(r)
                    .init(&x.device())
                    .unwrap();
                m.forward(x)
            } else {
                PixelUnshuffleConfig::new()
                    .with_factor(r)
                    .init()
                    .unwrap()
                    .forward(x)
                    .unwrap()
            }
        });
    }
}

/// A CARAFE case's (channels, compressed channels, factor, encoder kernel, reassembly kernel).
fn carafe_sizes(case: &Value) -> (usize, usize, usize, usize, usize) {
    (
        num(case, "channels"),
        num(case, "compressed"),
        num(case, "factor"),
        num(case, "k_enc"),
        num(case, "k_up"),
    )
}

#[test]
fn carafe_matches_paper_reference() {
    let cases = load(include_str!("fixtures/carafe.json"), 2);
    for case in &cases {
        let device = Device::flex().autodiff();
        let (c, cm, s, ke, ku) = carafe_sizes(case);
        let cfg = CarafeConfig::new(c)
            .with_compressed_channels(cm)
            .with_factor(s)
            .with_encoder_kernel(ke)
            .with_up_kernel(ku);
        let mut m = cfg.init(&device).unwrap();
        let e = s * s * ku * ku;
        m.compressor.weight = param(case, "comp_w", [cm, c, 1, 1], &device);
        m.compressor.bias = Some(param(case, "comp_b", [cm], &device));
        m.encoder.weight = param(case, "enc_w", [e, cm, ke, ke], &device);
        m.encoder.bias = Some(param(case, "enc_b", [e], &device));
        let what = format!("{cfg:?}");
        let grads = check_io(case, 1e-4, &what, |x| m.forward(x));
        let (comp_b, enc_b) = (
            m.compressor.bias.as_ref().unwrap(),
            m.encoder.bias.as_ref().unwrap(),
        );
        assert_grad(
            m.compressor.weight.grad(&grads),
            case,
            "grad_comp_w",
            1e-4,
            &what,
        );
        assert_grad(
            m.encoder.weight.grad(&grads),
            case,
            "grad_enc_w",
            1e-4,
            &what,
        );
        assert_grad(comp_b.grad(&grads), case, "grad_comp_b", 1e-4, &what);
        assert_grad(enc_b.grad(&grads), case, "grad_enc_b", 1e-4, &what);
    }
}

/// kestrel-runtime's CARAFE (the compressor and encoder convolutions, then the fused shuffle,
/// softmax and reassembly) against the same PyTorch reference, on its NHWC layout.
#[test]
fn runtime_carafe_matches_paper_reference() {
    use crate::export::layout::{nchw_to_nhwc, nhwc_to_nchw};
    use kestrel_runtime::{ConvParams, Engine, EngineOptions, PlanBuilder, Shape};
    for case in &load(include_str!("fixtures/carafe.json"), 2) {
        let (c, cm, s, ke, ku) = carafe_sizes(case);
        let [n, _, h, w] = usizes(case, "x_shape");
        let e = s * s * ku * ku;
        let (cw, cb, ew, eb) = (
            floats(case, "comp_w"),
            floats(case, "comp_b"),
            floats(case, "enc_w"),
            floats(case, "enc_b"),
        );
        let mut b = PlanBuilder::new(Shape::new(h, w, c));
        let comp = b.conv(0, &ConvParams::new(&cw, Some(&cb), cm, 1)).unwrap();
        let enc = ConvParams::new(&ew, Some(&eb), e, ke).padding(ke / 2);
        let logits = b.conv(comp, &enc).unwrap();
        let out = b.carafe(0, logits, s, ku).unwrap();
        let plan = b.build(out).unwrap();
        for threads in [1, 2] {
            let opts = EngineOptions {
                threads,
                ..Default::default()
            };
            let mut engine = Engine::new(plan.clone(), opts).unwrap();
            let x = nchw_to_nhwc(&floats(case, "x"), n, c, h * w);
            let y = engine.run(&x, n).unwrap();
            let got = nhwc_to_nchw(y, n, c, h * s * w * s);
            let want = floats(case, "y");
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "σ {s} k {ku}, {threads} threads: {worst}");
        }
    }
}

#[test]
fn meta_upscale_matches_paper_reference() {
    let cases = load(include_str!("fixtures/meta.json"), 3);
    for case in &cases {
        let device = Device::flex().autodiff();
        let (cin, cout, k, hidden) = (
            num(case, "in_channels"),
            num(case, "out_channels"),
            num(case, "kernel"),
            num(case, "hidden"),
        );
        let r = case["scale"].as_f64().unwrap();
        let cfg = MetaUpscaleConfig::new(cin, cout)
            .with_kernel(k)
            .with_hidden(hidden)
            .with_scale(r);
        let mut m = cfg.init(&device).unwrap();
        let f = cout * cin * k * k;
        // PyTorch stores Linear weights (out, in); Burn (in, out).
        let w1 = tensor::<2>(case, "w1", [hidden, 3], &device).transpose();
        let w2 = tensor::<2>(case, "w2", [f, hidden], &device).transpose();
        m.fc1.weight = Param::from_tensor(w1);
        m.fc1.bias = Some(param(case, "b1", [hidden], &device));
        m.fc2.weight = Param::from_tensor(w2);
        m.fc2.bias = Some(param(case, "b2", [f], &device));
        let what = format!("{cfg:?}");
        let grads = check_io(case, 1e-4, &what, |x| m.forward(x));
        // PyTorch stores Linear weights (out, in); Burn (in, out).
        let (w1, w2) = (m.fc1.weight.grad(&grads), m.fc2.weight.grad(&grads));
        let (b1, b2) = (m.fc1.bias.as_ref().unwrap(), m.fc2.bias.as_ref().unwrap());
        assert_grad(w1.map(|g| g.transpose()), case, "grad_w1", 1e-4, &what);
        assert_grad(w2.map(|g| g.transpose()), case, "grad_w2", 1e-4, &what);
        assert_grad(b1.grad(&grads), case, "grad_b1", 1e-4, &what);
        assert_grad(b2.grad(&grads), case, "grad_b2", 1e-4, &what);
    }
}
