//! Single-thread packed-GEMM throughput (GFLOP/s) on MobileNetV2's 1×1 shapes and ResNet-18's
//! im2col blocks (m × k → n, with
//! the bias + ReLU6 epilogue), operands starting on cache lines as in the engine:
//!
//!     cargo run --release -p kestrel-runtime --example bench_gemm
use kestrel_runtime::kernels::packed_gemm::{gemm_packed, Epilogue, PackedB};
use kestrel_runtime::Activation;
use std::time::Instant;

fn aligned(buf: &mut [f32], len: usize) -> &mut [f32] {
    let off = (16 - (buf.as_ptr() as usize / 4) % 16) % 16;
    &mut buf[off..off + len]
}

fn main() {
    let shapes = [
        (12544, 16, 96),
        (3136, 24, 144),
        (3136, 144, 24),
        (784, 32, 192),
        (784, 192, 32),
        (196, 64, 384),
        (196, 384, 64),
        (196, 96, 576),
        (196, 576, 96),
        (49, 160, 960),
        (49, 960, 160),
        (49, 320, 1280),
        // ResNet-18's 3×3 convolutions as im2col blocks of 72 output pixels
        (72, 576, 64),
        (72, 1152, 128),
        (72, 2304, 256),
        (49, 4608, 512),
    ];
    println!("    m     k     n   GFLOP/s");
    for (m, k, n) in shapes {
        let mut ab = vec![0.0f32; m * k + 16];
        let a = aligned(&mut ab, m * k);
        for (i, v) in a.iter_mut().enumerate() {
            *v = ((i * 7) % 13) as f32 * 0.01;
        }
        let a: &[f32] = a;
        let bm: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.01).collect();
        let b = PackedB::pack(&bm, k, n, n);
        let bias = vec![0.1f32; n];
        let ep = Epilogue {
            bias: &bias,
            residual: None,
            act: Activation::Relu6,
        };
        let mut cb = vec![0.0f32; m * n + 16];
        let c = aligned(&mut cb, m * n);
        let reps = (3e8 as usize / (m * n * k)).max(10);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                gemm_packed(m, a, k, &b, c, n, &ep, true);
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        let gf = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!("{m:5} {k:5} {n:5}   {gf:7.1}");
    }
}
