//! Single-thread 3×3 depthwise throughput (GFLOP/s) on MobileNetV2's shapes, with the input and
//! output starting on a cache line (as the engine's buffers do) and 16 bytes past one (as a plain
//! `Vec<f32>` from the system allocator may):
//!
//!     cargo run --release -p kestrel-runtime --example bench_dw
use kestrel_runtime::kernels::depthwise::{depthwise_rows, Depthwise};
use kestrel_runtime::kernels::ConvGeometry;
use kestrel_runtime::Activation;
use std::time::Instant;

/// `len` floats of `buf` starting `shift` floats past a 64-byte boundary.
fn at_shift(buf: &mut [f32], len: usize, shift: usize) -> &mut [f32] {
    let off = (16 - (buf.as_ptr() as usize / 4) % 16) % 16 + shift;
    &mut buf[off..off + len]
}

fn main() {
    let shapes = [
        (112, 32, 1),
        (112, 96, 2),
        (56, 144, 1),
        (56, 144, 2),
        (28, 192, 1),
        (14, 384, 1),
        (7, 960, 1),
    ];
    println!("shape               aligned GFLOP/s   +16 B GFLOP/s");
    for (hw, c, s) in shapes {
        let geom = ConvGeometry::square(3, s, 1, 1);
        let (oh, ow) = geom.output_hw(hw, hw).expect("valid geometry");
        let wt: Vec<f32> = (0..9 * c).map(|i| ((i * 5) % 11) as f32 * 0.1).collect();
        let b = vec![0.1f32; c];
        let p = Depthwise {
            hwc: [hw, hw, c],
            geom,
            weight: &wt,
            bias: &b,
            act: Activation::Relu6,
        };
        let mut rates = Vec::new();
        for shift in [0, 4] {
            let mut xs = vec![0.0f32; hw * hw * c + 32];
            let x = at_shift(&mut xs, hw * hw * c, shift);
            for (i, v) in x.iter_mut().enumerate() {
                *v = ((i * 7) % 13) as f32 * 0.1;
            }
            let x: &[f32] = x;
            let mut outs = vec![0.0f32; oh * ow * c + 32];
            let out = at_shift(&mut outs, oh * ow * c, shift);
            let reps = (2e8 as usize / (oh * ow * c * 9)).max(10);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps {
                    depthwise_rows(&p, x, 0, 0, oh, out, true);
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            rates.push(2.0 * (oh * ow * c * 9) as f64 / best / 1e9);
        }
        println!(
            "{hw:3}x{hw:<3} c{c:<4} s{s}   {:14.1}   {:13.1}",
            rates[0], rates[1]
        );
    }
}
