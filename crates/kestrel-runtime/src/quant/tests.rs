//! The int8 engine against an integer reference interpreter written here from the definitions
//! (exact sums in i64, the requantisation formula of `kernels/int8_requant.rs`), on every instruction set,
//! thread count and batch split; and against the fp32 engine (quantisation noise only).

use super::table::{quantize_bias, quantize_weights};
use super::*;
use crate::kernels::reference::lcg_vec;
use crate::plan::{ConvKind, Op, Plan};
use crate::{Activation, ConvParams, Engine, EngineOptions, PlanBuilder, Shape};

/// stem 3×3 s2 (ReLU6) → expand 1×1 to 40 channels (three panels of 16; ReLU6) → depthwise 3×3 (ReLU6) → project 1×1 + stem
/// (residual) → max pool → 3×3 conv (ReLU) → add with the pool → global pool → linear.
fn network() -> Plan {
    let mut b = PlanBuilder::new(Shape::new(11, 9, 3));
    let w = |n: usize, seed: u64, s: f32| -> Vec<f32> {
        lcg_vec(n, seed).iter().map(|v| v * s).collect()
    };
    let stem = b
        .conv(
            0,
            &ConvParams::new(&w(8 * 27, 1, 0.4), Some(&w(8, 2, 0.2)), 8, 3)
                .stride(2)
                .padding(1)
                .act(Activation::Relu6),
        )
        .unwrap();
    let e = b
        .conv(
            stem,
            &ConvParams::new(&w(40 * 8, 3, 0.5), Some(&w(40, 4, 0.1)), 40, 1)
                .act(Activation::Relu6),
        )
        .unwrap();
    let d = b
        .depthwise(
            e,
            &ConvParams::new(&w(40 * 9, 5, 0.6), Some(&w(40, 6, 0.1)), 0, 3)
                .padding(1)
                .act(Activation::Relu6),
        )
        .unwrap();
    let p = b
        .conv(
            d,
            &ConvParams::new(&w(8 * 40, 7, 0.3), Some(&w(8, 8, 0.1)), 8, 1),
        )
        .unwrap();
    let p = b.add_residual(p, stem, Activation::None).unwrap();
    let m = b
        .max_pool(p, crate::geometry::ConvGeometry::square(3, 2, 1, 1))
        .unwrap();
    let c = b
        .conv(
            m,
            &ConvParams::new(&w(8 * 72, 9, 0.2), Some(&w(8, 10, 0.1)), 8, 3)
                .padding(1)
                .act(Activation::Relu),
        )
        .unwrap();
    let c = b.add_residual(c, m, Activation::Relu).unwrap();
    let gp = b.global_pool(c).unwrap();
    let out = b
        .linear(
            gp,
            &w(8 * 5, 11, 0.5),
            Some(&w(5, 12, 0.1)),
            5,
            Activation::None,
        )
        .unwrap();
    b.build(out).unwrap()
}

/// MobileNetV2's four kinds of fused block, each a band of rows at a time in the tests
/// (`BAND_BYTES` is small under `cfg(test)`): stem 3×3 s2 → depthwise → project (the stem fused
/// as the expansion); expand → depthwise s2 → project; expand → depthwise → project + residual;
/// depthwise → project (no expansion); then global pool → linear.
fn blocks_network() -> Plan {
    let mut b = PlanBuilder::new(Shape::new(19, 17, 3));
    let w = |n: usize, seed: u64, s: f32| -> Vec<f32> {
        lcg_vec(n, seed).iter().map(|v| v * s).collect()
    };
    let relu6 = Activation::Relu6;
    let conv = |b: &mut PlanBuilder, x, cin: usize, cout: usize, seed: u64, act| {
        let (wt, bias) = (w(cout * cin, seed, 0.5), w(cout, seed + 1, 0.1));
        b.conv(x, &ConvParams::new(&wt, Some(&bias), cout, 1).act(act))
            .unwrap()
    };
    let dw = |b: &mut PlanBuilder, x, c: usize, stride: usize, seed: u64| {
        let (wt, bias) = (w(c * 9, seed, 0.6), w(c, seed + 1, 0.1));
        let p = ConvParams::new(&wt, Some(&bias), 0, 3)
            .stride(stride)
            .padding(1)
            .act(relu6);
        b.depthwise(x, &p).unwrap()
    };
    let stem = b
        .conv(
            0,
            &ConvParams::new(&w(8 * 27, 1, 0.4), Some(&w(8, 2, 0.2)), 8, 3)
                .stride(2)
                .padding(1)
                .act(relu6),
        )
        .unwrap();
    let x = dw(&mut b, stem, 8, 1, 3);
    let x = conv(&mut b, x, 8, 6, 5, Activation::None);
    let x = conv(&mut b, x, 6, 24, 7, relu6);
    let x = dw(&mut b, x, 24, 2, 9);
    let skip = conv(&mut b, x, 24, 8, 11, Activation::None);
    let x = conv(&mut b, skip, 8, 36, 13, relu6);
    let x = dw(&mut b, x, 36, 1, 15);
    let x = conv(&mut b, x, 36, 8, 17, Activation::None);
    let x = b.add_residual(x, skip, Activation::None).unwrap();
    let x = dw(&mut b, x, 8, 1, 19);
    let x = conv(&mut b, x, 8, 16, 21, relu6);
    let gp = b.global_pool(x).unwrap();
    let out = b
        .linear(
            gp,
            &w(16 * 5, 23, 0.5),
            Some(&w(5, 24, 0.1)),
            5,
            Activation::None,
        )
        .unwrap();
    b.build(out).unwrap()
}

/// Min/max of every value over `images` on the fp32 engine.
fn ranges(plan: &Plan, images: &[f32], n: usize) -> Vec<(f32, f32)> {
    let mut r = vec![(f32::INFINITY, f32::NEG_INFINITY); plan.graph.values.len()];
    let opts = EngineOptions {
        threads: 1,
        fuse_blocks: false,
        ..Default::default()
    };
    let mut e = Engine::new(plan.clone(), opts).unwrap();
    e.run_observed(images, n, &mut |v, x| {
        for &x in x {
            r[v] = (r[v].0.min(x), r[v].1.max(x));
        }
    })
    .unwrap();
    r
}

fn quantized(plan: &Plan, images: &[f32], n: usize) -> QuantPlan {
    let calibration = Calibration {
        method: "minmax".into(),
        images: n,
        depthwise_per_tensor: false,
    };
    let table = build_table(plan, &ranges(plan, images, n), calibration);
    QuantPlan {
        plan: plan.clone(),
        table,
    }
}

fn images(n: usize, seed: u64) -> Vec<f32> {
    images_of(n * 11 * 9 * 3, seed)
}

fn images_of(len: usize, seed: u64) -> Vec<f32> {
    lcg_vec(len, seed).iter().map(|v| v * 2.0).collect()
}

/// The int8 network from the definitions: codes in, reals of the last op out.
fn reference(q: &QuantPlan, input: &[f32], n: usize) -> Vec<f32> {
    let (plan, t) = (&q.plan, &q.table);
    let g = &plan.graph;
    let mut codes: Vec<Vec<u8>> = vec![Vec::new(); g.values.len()];
    codes[0] = input.iter().map(|&x| t.values[0].quantize(x)).collect();
    let mut reals = Vec::new();
    for (i, op) in g.ops.iter().enumerate() {
        let o = op.output();
        let (os, yq) = (g.values[o], t.values[o]);
        let last = o == g.output;
        let mut y = vec![0u8; n * os.len()];
        match op {
            Op::Conv(_) | Op::Linear { .. } => {
                let (x, weight, bias, act, res, cout) = match op {
                    Op::Conv(c) => (c.input, c.weight, c.bias, c.act, c.residual, c.out_channels),
                    Op::Linear {
                        input,
                        weight,
                        bias,
                        act,
                        out_features,
                        ..
                    } => (*input, *weight, *bias, *act, None, *out_features),
                    _ => unreachable!(),
                };
                let (is, xq) = (g.values[x], t.values[x]);
                let sw = &t.weight_scales[i];
                let qw = quantize_weights(plan.slice(weight), sw);
                let qb = quantize_bias(plan.slice(bias), xq.scale, sw);
                let (geom, depthwise) = match op {
                    Op::Conv(c) => (c.geom, c.kind == ConvKind::Depthwise),
                    _ => (crate::geometry::ConvGeometry::square(1, 1, 0, 1), false),
                };
                let [kh, kw] = geom.kernel;
                for b in 0..n {
                    for oy in 0..os.h {
                        for ox in 0..os.w {
                            for co in 0..cout {
                                let mut sum: i64 = 0;
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let iy = (oy * geom.stride[0] + ky) as isize
                                            - geom.padding[0] as isize;
                                        let ix = (ox * geom.stride[1] + kx) as isize
                                            - geom.padding[1] as isize;
                                        if iy < 0
                                            || ix < 0
                                            || iy >= is.h as isize
                                            || ix >= is.w as isize
                                        {
                                            continue;
                                        }
                                        let px =
                                            ((b * is.h + iy as usize) * is.w + ix as usize) * is.c;
                                        let cis: Vec<usize> = if depthwise {
                                            vec![co]
                                        } else {
                                            (0..is.c).collect()
                                        };
                                        for ci in cis {
                                            let xv = codes[x][px + ci] as i64 - xq.zero as i64;
                                            let wi = if depthwise {
                                                (ky * kw + kx) * cout + co
                                            } else {
                                                ((ky * kw + kx) * is.c + ci) * cout + co
                                            };
                                            sum += xv * qw[wi] as i64;
                                        }
                                    }
                                }
                                let at = ((b * os.h + oy) * os.w + ox) * cout + co;
                                let acc = (sum + qb[co] as i64) as i32 as f32;
                                let sx_sw = xq.scale as f64 * sw[co] as f64;
                                let r = res.map(|r| (codes[r][at], t.values[r]));
                                if last {
                                    let mut v = acc * sx_sw as f32;
                                    if let Some((c, rq)) = r {
                                        v += (c as f32 - rq.zero as f32) * rq.scale;
                                    }
                                    reals.push(act.apply(v));
                                } else {
                                    let mut v = acc * (sx_sw / yq.scale as f64) as f32;
                                    if let Some((c, rq)) = r {
                                        let ratio = (rq.scale as f64 / yq.scale as f64) as f32;
                                        v += (c as f32 - rq.zero as f32) * ratio;
                                    }
                                    let (lo, hi) = yq.clamp_codes(act);
                                    let q = v.round_ties_even() + yq.zero as f32;
                                    y[at] = q.clamp(lo as f32, hi as f32) as u8;
                                }
                            }
                        }
                    }
                }
            }
            Op::MaxPool { input, geom, .. } => {
                let is = g.values[*input];
                for b in 0..n {
                    for oy in 0..os.h {
                        for ox in 0..os.w {
                            for ch in 0..is.c {
                                let mut m = 0u8;
                                for ky in 0..geom.kernel[0] {
                                    for kx in 0..geom.kernel[1] {
                                        let iy = (oy * geom.stride[0] + ky) as isize
                                            - geom.padding[0] as isize;
                                        let ix = (ox * geom.stride[1] + kx) as isize
                                            - geom.padding[1] as isize;
                                        if iy >= 0
                                            && ix >= 0
                                            && iy < is.h as isize
                                            && ix < is.w as isize
                                        {
                                            let px = ((b * is.h + iy as usize) * is.w
                                                + ix as usize)
                                                * is.c;
                                            m = m.max(codes[*input][px + ch]);
                                        }
                                    }
                                }
                                y[((b * os.h + oy) * os.w + ox) * is.c + ch] = m;
                            }
                        }
                    }
                }
            }
            Op::GlobalAvgPool { input, .. } => {
                let is = g.values[*input];
                let px = is.h * is.w;
                for b in 0..n {
                    for ch in 0..is.c {
                        let s: u64 = (0..px)
                            .map(|p| codes[*input][(b * px + p) * is.c + ch] as u64)
                            .sum();
                        // The mean rounded half to even.
                        y[b * is.c + ch] = (s as f64 / px as f64).round_ties_even() as u8;
                    }
                }
            }
            Op::Add { a, b, act, .. } => {
                let (qa, qb) = (t.values[*a], t.values[*b]);
                let ra = (qa.scale as f64 / yq.scale as f64) as f32;
                let rb = (qb.scale as f64 / yq.scale as f64) as f32;
                let (lo, hi) = yq.clamp_codes(*act);
                for (j, v) in y.iter_mut().enumerate() {
                    let r = (codes[*a][j] as f32 - qa.zero as f32) * ra
                        + (codes[*b][j] as f32 - qb.zero as f32) * rb;
                    let q = r.round_ties_even() + yq.zero as f32;
                    *v = q.clamp(lo as f32, hi as f32) as u8;
                }
            }
            other => unreachable!("{} is not in the test network", other.kind_name()),
        }
        codes[o] = y;
    }
    reals
}

/// `plan` quantised, run on every instruction set, thread count, batch split and schedule
/// (fused blocks or op by op), equals the reference interpreter.
fn equals_the_reference_everywhere(plan: &Plan) {
    let per = plan.input_shape().len();
    let calib = images_of(16 * per, 7);
    let q = quantized(plan, &calib, 16);
    let x = images_of(5 * per, 99);
    let want = reference(&q, &x, 5);
    assert_eq!(want.len(), 25);
    for path in crate::kernels::int8_gemm::Int8Path::all_available() {
        for (threads, image_parallel) in [(1, false), (2, false), (2, true), (3, true)] {
            for fuse in [false, true] {
                let opts = Int8Options {
                    threads,
                    path,
                    image_parallel,
                    micro_batch: 2,
                    fuse,
                };
                let mut e = Int8Engine::new(q.clone(), opts).unwrap();
                for batch in [5usize, 1, 2] {
                    let got = e.run(&x[..batch * per], batch).unwrap();
                    assert_eq!(
                        got,
                        &want[..batch * 5],
                        "{path:?}, {threads} threads, image-parallel {image_parallel}, fused \
                         {fuse}, batch {batch}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_path_and_split_equals_the_integer_reference() {
    equals_the_reference_everywhere(&network());
}

/// Every kind of fused block, banded (a row a band here), shared-expansion (two and three
/// threads on these small maps) and op by op, equals the reference.
#[test]
fn fused_blocks_equal_the_integer_reference() {
    let plan = blocks_network();
    let q = quantized(&plan, &images_of(4 * plan.input_shape().len(), 1), 4);
    let steps = super::block::int8_blocks(&q, &super::prepare::prepare(&q));
    let blocks = steps
        .iter()
        .filter(|s| matches!(s, crate::schedule::Step::Block { .. }))
        .count();
    assert_eq!(blocks, 4, "{steps:?}");
    equals_the_reference_everywhere(&plan);
}

#[test]
fn int8_logits_follow_the_fp32_ones() {
    let plan = network();
    let calib = images(32, 3);
    let q = quantized(&plan, &calib, 32);
    let x = images(8, 5);
    let fp = Engine::new(plan.clone(), EngineOptions::default())
        .unwrap()
        .run(&x, 8)
        .unwrap()
        .to_vec();
    let i8 = Int8Engine::new(q, Int8Options::default())
        .unwrap()
        .run(&x, 8)
        .unwrap()
        .to_vec();
    let signal: f64 = fp.iter().map(|v| (*v as f64).powi(2)).sum();
    let noise: f64 = fp
        .iter()
        .zip(&i8)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    let sqnr = 10.0 * (signal / noise).log10();
    assert!(sqnr > 25.0, "SQNR {sqnr:.1} dB");
}

#[test]
fn corrupt_scales_and_zero_points_are_refused() {
    let plan = network();
    let q = quantized(&plan, &images(4, 1), 4);
    let p = std::path::Path::new("m.int8");
    let bytes = q.to_bytes();
    assert_eq!(QuantPlan::from_bytes(&bytes, p).unwrap(), q);
    let mut bad = q.clone();
    bad.table.values[3].scale = 0.0;
    let e = QuantPlan::from_bytes(&bad.to_bytes(), p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.int8") && e.contains("value 3 has scale 0"),
        "{e}"
    );
    for (s, says) in [
        (-1.0, "op 1 (conv1x1) channel 2: weight scale -1"),
        (1e-38, "op 1 (conv1x1) channel 2: weight scale"),
        // JSON has no NaN or infinity: they are written as null, which is no scale.
        (f32::NAN, "invalid type: null, expected f32"),
        (f32::INFINITY, "invalid type: null, expected f32"),
    ] {
        let mut bad = q.clone();
        bad.table.weight_scales[1][2] = s;
        let e = QuantPlan::from_bytes(&bad.to_bytes(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{s}: {e}");
    }
    let mut bad = q.clone();
    bad.table.weight_scales[0].pop();
    assert!(QuantPlan::from_bytes(&bad.to_bytes(), p).is_err());
    // A zero point outside 0..=255 cannot be read as a code.
    let json = serde_json::to_string(&q.table).unwrap();
    let zero = format!("\"zero\":{}", q.table.values[0].zero);
    assert!(json.contains(&zero));
    let mut bad_table = json.replacen(&zero, "\"zero\":300", 1);
    let t: std::result::Result<QuantTable, _> = serde_json::from_str(&bad_table);
    assert!(t.unwrap_err().to_string().contains("300"));
    bad_table.clear();
    // A flipped byte fails the checksum.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 30;
    flipped[at] ^= 1;
    let e = QuantPlan::from_bytes(&flipped, p).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
}
