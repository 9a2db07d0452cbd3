//! Whole networks through the engine, compared with PyTorch (float64) outputs computed by
//! `tools/runtime_fixtures.py` from the same synthetic weights and inputs.

mod support;

use kestrel_runtime::kernels::ConvGeometry;
use kestrel_runtime::{
    Activation, ConvParams, Engine, EngineOptions, GemmBackend, KernelPath, OpProfile, Plan,
    PlanBuilder, Shape,
};
use support::mobilenet_v2::{self, MobileNetV2Config};
use support::synthetic::uniform;

struct Fixture {
    batch: usize,
    resolution: usize,
    input_seed: u64,
    weight_seed: u64,
    logits: Vec<Vec<f64>>,
}

fn fixture(name: &str) -> Fixture {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Fixture {
        batch: v["batch"].as_u64().unwrap() as usize,
        resolution: v["resolution"].as_u64().unwrap() as usize,
        input_seed: v["input_seed"].as_u64().unwrap(),
        weight_seed: v["weight_seed"].as_u64().unwrap(),
        logits: serde_json::from_value(v["logits"].clone()).unwrap(),
    }
}

/// The fixture's NCHW input, converted to NHWC.
fn input_nhwc(f: &Fixture) -> Vec<f32> {
    let (n, r) = (f.batch, f.resolution);
    let nchw = uniform(f.input_seed, 60000, n * 3 * r * r, 1.0);
    let mut out = vec![0.0; nchw.len()];
    for b in 0..n {
        for c in 0..3 {
            for p in 0..r * r {
                out[(b * r * r + p) * 3 + c] = nchw[(b * 3 + c) * r * r + p];
            }
        }
    }
    out
}

fn assert_logits(got: &[f32], want: &[Vec<f64>], tol: f64) {
    let classes = want[0].len();
    let scale = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    for (b, row) in want.iter().enumerate() {
        for (k, &w) in row.iter().enumerate() {
            let g = got[b * classes + k] as f64;
            assert!(
                (g - w).abs() <= tol * scale,
                "image {b} class {k}: got {g}, PyTorch {w}"
            );
        }
    }
}

/// Every combination of threads (1; 2 = one image per thread for batch 2; 3 = ops split across
/// threads), kernel path, GEMM backend, image parallelism on/off, fused blocks on/off.
fn all_options() -> Vec<EngineOptions> {
    let mut v = Vec::new();
    for threads in [1, 2, 3] {
        for kernel_path in [KernelPath::Auto, KernelPath::Scalar] {
            for gemm in [GemmBackend::Packed, GemmBackend::GemmCrate] {
                for image_parallel in [true, false] {
                    for fuse_blocks in [true, false] {
                        v.push(EngineOptions {
                            threads,
                            kernel_path,
                            gemm,
                            image_parallel,
                            micro_batch: 4,
                            fuse_blocks,
                            profile: false,
                            // Both ways, without doubling the cases.
                            winograd: fuse_blocks,
                        });
                    }
                }
            }
        }
    }
    v
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    let f = fixture("mobilenet_v2_w1_r35.json");
    let cfg = MobileNetV2Config {
        width: 1.0,
        resolution: f.resolution,
        num_classes: 10,
    };
    let plan =
        mobilenet_v2::build(&cfg, &mobilenet_v2::synthetic_weights(&cfg, f.weight_seed)).unwrap();
    let x = input_nhwc(&f);
    for opts in all_options() {
        let mut e = Engine::new(plan.clone(), opts).unwrap();
        let y = e.run(&x, f.batch).unwrap().to_vec();
        assert_logits(&y, &f.logits, 1e-4);
        // one image at a time gives the same answer as the batch
        let per = x.len() / f.batch;
        for b in 0..f.batch {
            let yb = e.run(&x[b * per..(b + 1) * per], 1).unwrap();
            assert_logits(yb, &f.logits[b..b + 1], 1e-4);
        }
    }
}

/// The layers of `TinyResNet` in tools/runtime_fixtures.py, built with the plan builder.
fn tiny_resnet(seed: u64, res: usize) -> Plan {
    // (out, in/groups, kernel) of each layer in module order, for the synthetic weights.
    let dims = [
        (8, 3, 7),
        (8, 8, 3),
        (8, 8, 3),
        (16, 8, 1),
        (16, 8, 3),
        (16, 16, 3),
        (16, 8, 3),
        (16, 1, 3),
        (5, 16, 1),
    ];
    let w: Vec<(Vec<f32>, Vec<f32>)> = dims
        .iter()
        .enumerate()
        .map(|(l, &(o, i, k))| {
            let scale = (6.0 / (i * k * k) as f64).sqrt() as f32;
            (
                uniform(seed, 2 * l as u64, o * i * k * k, scale),
                uniform(seed, 2 * l as u64 + 1, o, 0.1),
            )
        })
        .collect();
    let p = |l: usize, k: usize| ConvParams::new(&w[l].0, Some(&w[l].1), dims[l].0, k);
    let mut b = PlanBuilder::new(Shape {
        h: res,
        w: res,
        c: 3,
    });
    let x = b
        .conv(0, &p(0, 7).stride(2).padding(3).act(Activation::Relu))
        .unwrap();
    let x = b.max_pool(x, ConvGeometry::square(3, 2, 1, 1)).unwrap();
    let y = b
        .conv(x, &p(1, 3).padding(1).act(Activation::Relu))
        .unwrap();
    let y = b.conv(y, &p(2, 3).padding(1)).unwrap();
    let x = b.add_residual(y, x, Activation::Relu).unwrap();
    let down = b.conv(x, &p(3, 1).stride(2)).unwrap();
    let y = b
        .conv(x, &p(4, 3).stride(2).padding(1).act(Activation::Relu))
        .unwrap();
    let y = b.conv(y, &p(5, 3).padding(1)).unwrap();
    let x = b.add_residual(y, down, Activation::Relu).unwrap();
    let x = b
        .conv(x, &p(6, 3).padding(1).groups(2).act(Activation::Relu))
        .unwrap();
    let x = b
        .depthwise(x, &p(7, 3).padding(2).dilation(2).act(Activation::Relu6))
        .unwrap();
    let x = b.global_pool(x).unwrap();
    let x = b
        .linear(x, &w[8].0, Some(&w[8].1), 5, Activation::None)
        .unwrap();
    b.build(x).unwrap()
}

#[test]
fn tiny_resnet_matches_pytorch() {
    let f = fixture("tiny_resnet_r37.json");
    let plan = tiny_resnet(f.weight_seed, f.resolution);
    let kinds: Vec<_> = plan.graph.ops.iter().map(|o| o.kind_name()).collect();
    assert!(
        kinds.contains(&"max_pool")
            && kinds.contains(&"conv_im2col")
            && kinds.contains(&"depthwise")
    );
    let x = input_nhwc(&f);
    for opts in all_options() {
        let mut e = Engine::new(plan.clone(), opts).unwrap();
        assert_logits(e.run(&x, f.batch).unwrap(), &f.logits, 1e-4);
    }
}

#[test]
fn saved_plan_runs_identically_and_buffers_are_reused() {
    let cfg = MobileNetV2Config {
        width: 0.5,
        resolution: 33,
        num_classes: 7,
    };
    let plan = mobilenet_v2::build(&cfg, &mobilenet_v2::synthetic_weights(&cfg, 3)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mbv2.plan");
    plan.save(&path).unwrap();
    let loaded = Plan::load(&path).unwrap();
    let x = uniform(1, 2, 3 * 33 * 33 * 3, 1.0);
    let mut a = Engine::new(
        plan,
        EngineOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut b = Engine::new(
        loaded,
        EngineOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let ya = a.run(&x, 3).unwrap().to_vec();
    assert_eq!(ya, b.run(&x, 3).unwrap());
    // Liveness keeps a handful of buffers for ~60 values (block input, expand, depthwise, ...).
    assert!(a.buffer_count() <= 4, "{}", a.buffer_count());
    // A second call (smaller batch) reuses the buffers; GEMM blocking depends on the row count, so
    // the first image agrees to rounding only.
    let y1 = a.run(&x[..33 * 33 * 3], 1).unwrap().to_vec();
    for (p, q) in ya[..7].iter().zip(&y1) {
        assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
    }
    // Micro-batches of 1 and 3 images per worker agree with the default (2 images on worker 0).
    for micro_batch in [1, 3] {
        let opts = EngineOptions {
            threads: 2,
            micro_batch,
            ..Default::default()
        };
        let mut m = Engine::new(a.plan().clone(), opts).unwrap();
        for (p, q) in ya.iter().zip(m.run(&x, 3).unwrap()) {
            assert!(
                (p - q).abs() <= 1e-5 * p.abs().max(1.0),
                "micro {micro_batch}: {p} vs {q}"
            );
        }
    }
    // The same batch again gives bit-identical results.
    assert_eq!(ya, a.run(&x, 3).unwrap());
}

#[test]
fn bad_input_is_reported() {
    let cfg = MobileNetV2Config {
        width: 0.35,
        resolution: 32,
        num_classes: 3,
    };
    let plan = mobilenet_v2::build(&cfg, &mobilenet_v2::synthetic_weights(&cfg, 0)).unwrap();
    let mut e = Engine::new(
        plan,
        EngineOptions {
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let msg = e.run(&[0.0; 10], 1).unwrap_err().to_string();
    assert!(
        msg.contains("expected 3072") && msg.contains("32x32x3"),
        "{msg}"
    );
    assert!(e.run(&[], 0).unwrap_err().to_string().contains("batch"));
}

/// How many times the profile saw ops of kind `kind`.
fn calls(prof: &[OpProfile], kind: &str) -> u64 {
    prof.iter()
        .find(|p| p.kind == kind)
        .map(|p| p.calls)
        .unwrap_or(0)
}

#[test]
fn profile_counts_every_op() {
    let cfg = MobileNetV2Config {
        width: 0.35,
        resolution: 32,
        num_classes: 3,
    };
    let plan = mobilenet_v2::build(&cfg, &mobilenet_v2::synthetic_weights(&cfg, 0)).unwrap();
    let ops = plan.graph.ops.len() as u64;
    let mut e = Engine::new(
        plan.clone(),
        EngineOptions {
            threads: 1,
            profile: true,
            fuse_blocks: false,
            ..Default::default()
        },
    )
    .unwrap();
    e.run(&vec![0.5; 32 * 32 * 3], 1).unwrap();
    let prof = e.profile();
    assert_eq!(prof.iter().map(|p| p.calls).sum::<u64>(), ops);
    let count = |k: &str| calls(&prof, k);
    // 17 depthwise, 1 stem (im2col), 16 expand + 17 project + last conv (1x1), classifier
    assert_eq!(
        (
            count("depthwise"),
            count("conv_im2col"),
            count("conv1x1"),
            count("linear")
        ),
        (17, 1, 34, 1)
    );
    // Fused: each of the 17 blocks becomes one step, the stem computed inside the first; the last
    // 1x1, pool and classifier stay.
    let mut f = Engine::new(
        plan,
        EngineOptions {
            threads: 1,
            profile: true,
            ..Default::default()
        },
    )
    .unwrap();
    f.run(&vec![0.5; 32 * 32 * 3], 1).unwrap();
    let prof = f.profile();
    let count = |k: &str| calls(&prof, k);
    assert_eq!(
        (
            count("inverted_residual"),
            count("depthwise"),
            count("conv_im2col"),
            count("conv1x1")
        ),
        (17, 0, 0, 1)
    );
    assert!(f.buffer_count() <= 3, "{}", f.buffer_count());
}
