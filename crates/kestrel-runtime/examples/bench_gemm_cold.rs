//! Single-thread packed-GEMM throughput on ResNet-18's deep im2col shapes with the weights warm
//! (one copy, reused: in L2/L3) and cold (a different copy each call, 80 MB in all: from memory,
//! as a network's weights are at batch 1). On the 2-core EPYC: 49 × 4608 → 512 at 110 GFLOP/s
//! warm, 73 cold.
//!
//!     cargo run --release -p kestrel-runtime --example bench_gemm_cold
use kestrel_runtime::kernels::packed_gemm::{gemm_packed, Epilogue, PackedB};
use kestrel_runtime::Activation;
use std::time::Instant;

fn main() {
    for (m, k, n) in [
        (72usize, 2304usize, 256usize),
        (49, 4608, 512),
        (196, 2304, 256),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
        let copies = (80_000_000 / (k * n * 4)).max(2);
        let bs: Vec<PackedB> = (0..copies)
            .map(|j| {
                let bm: Vec<f32> = (0..k * n)
                    .map(|i| ((i * 5 + j) % 11) as f32 * 0.01)
                    .collect();
                PackedB::pack(&bm, k, n, n)
            })
            .collect();
        let bias = vec![0.1f32; n];
        let ep = Epilogue {
            bias: &bias,
            residual: None,
            act: Activation::Relu6,
        };
        let mut c = vec![0.0f32; m * n];
        for (label, cold) in [("warm", false), ("cold", true)] {
            let reps = 40;
            let t = Instant::now();
            for r in 0..reps {
                let b = if cold { &bs[r % copies] } else { &bs[0] };
                gemm_packed(m, &a, k, b, &mut c, n, &ep, true);
            }
            let dt = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{m} {k} {n} {label}: {:.1} GFLOP/s ({} B copies)",
                2.0 * (m * n * k) as f64 / dt / 1e9,
                copies
            );
        }
    }
}
