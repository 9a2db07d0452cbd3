//! Single-thread int8 3×3 depthwise throughput (GMAC/s, requantised to codes) on MobileNetV2's
//! shapes, on the fastest path:
//!
//!     cargo run --release -p kestrel-runtime --example bench_dw8
use kestrel_runtime::kernels::int8_depthwise::{depthwise_u8i8_requant, DepthwiseI8};
use kestrel_runtime::kernels::int8_gemm::Int8Path;
use kestrel_runtime::kernels::int8_requant::Requant;
use kestrel_runtime::kernels::ConvGeometry;
use std::time::Instant;

fn main() {
    let shapes = [
        (112, 32, 1),
        (112, 96, 2),
        (56, 144, 1),
        (56, 144, 2),
        (28, 192, 1),
        (14, 384, 1),
        (14, 576, 2),
        (7, 960, 1),
    ];
    println!("shape               GMAC/s");
    let mut total = 0.0;
    for (hw, c, s) in shapes {
        let geom = ConvGeometry::square(3, s, 1, 1);
        let (oh, ow) = geom.output_hw(hw, hw).expect("valid geometry");
        let weight: Vec<i8> = (0..9 * c).map(|i| (i * 37 % 255) as u8 as i8).collect();
        let input: Vec<u8> = (0..hw * hw * c).map(|i| (i * 91 % 256) as u8).collect();
        let op = DepthwiseI8 {
            hwc: [hw, hw, c],
            geom,
            zero: 3,
            weight: &weight,
        };
        let (corr, mult) = (vec![100i32; c], vec![1e-3f32; c]);
        let rq = Requant {
            corr: &corr,
            mult: &mult,
            residual: None,
            zero: 0,
            lo: 0,
            hi: 255,
        };
        let mut out = vec![0u8; oh * ow * c];
        let mut scratch = Vec::new();
        let path = Int8Path::best();
        let mut run = || {
            depthwise_u8i8_requant(
                path,
                &op,
                &input,
                0,
                0..oh,
                &rq,
                None,
                &mut out,
                &mut scratch,
            )
        };
        for _ in 0..20 {
            run();
        }
        let reps = (20_000_000 / (oh * ow * c * 9)).max(20);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                run();
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        total += best;
        let macs = (oh * ow * c * 9) as f64;
        println!(
            "{hw:>3}x{hw:<3} c{c:<4} s{s}   {:>7.1}   {:>6.1} us",
            macs / best / 1e9,
            best * 1e6
        );
    }
    println!("sum of one of each: {:.1} us", total * 1e6);
}
