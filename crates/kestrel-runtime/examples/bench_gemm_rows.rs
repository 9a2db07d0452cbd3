//! Packed-GEMM throughput (GFLOP/s per thread) on the 1×1 convolutions of ResNet-50 and
//! MobileNetV1, with the activations in three states: warm (240 rows, everything in L2), the
//! layer's whole four-image micro-batch reused (in L3 where it fits) and eight such sets cycled
//! (from memory, as a layer at batch 32 meets them). `m k → n` with `+res` adds a residual.
//! `THREADS=2` runs the same work on two threads at once, each on its own buffers, as the engine
//! does at batch 32.
//!
//!     THREADS=2 cargo run --release -p kestrel-runtime --example bench_gemm_rows
use kestrel_runtime::kernels::packed_gemm::{gemm_packed, Epilogue, PackedB};
use kestrel_runtime::Activation;
use std::time::Instant;

/// Best time per call over three passes of each thread, as GFLOP/s per thread.
fn gflops(m: usize, k: usize, n: usize, residual: bool, sets: usize, threads: usize) -> f64 {
    let weights: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.01).collect();
    let b = PackedB::pack(&weights, k, n, n);
    let bias = vec![0.1f32; n];
    let reps = 3 * sets.max(4);
    let barrier = std::sync::Barrier::new(threads);
    let times: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (b, bias, barrier) = (&b, &bias, &barrier);
                scope.spawn(move || {
                    let a: Vec<Vec<f32>> = (0..sets)
                        .map(|s| {
                            (0..m * k)
                                .map(|i| ((i * 7 + s) % 13) as f32 * 0.01)
                                .collect()
                        })
                        .collect();
                    let res: Vec<Vec<f32>> = (0..sets).map(|_| vec![0.5f32; m * n]).collect();
                    let mut c: Vec<Vec<f32>> = (0..sets).map(|_| vec![0.0f32; m * n]).collect();
                    let mut best = f64::MAX;
                    for _ in 0..3 {
                        barrier.wait();
                        let t0 = Instant::now();
                        for i in 0..reps {
                            let s = i % sets;
                            let ep = Epilogue {
                                bias,
                                residual: residual.then_some(&res[s][..]),
                                act: Activation::Relu,
                            };
                            gemm_packed(m, &a[s], k, b, &mut c[s], n, &ep, true);
                        }
                        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
                    }
                    best
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread"))
            .collect()
    });
    let slowest = times.iter().copied().fold(0.0, f64::max);
    2.0 * (m * n * k) as f64 / slowest / 1e9
}

fn main() {
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!("{threads} thread(s); GFLOP/s per thread");
    println!("    m     k →    n       warm  micro-batch   8 batches");
    for (m, k, n, residual) in [
        (4 * 3136, 64, 256, true),
        (4 * 3136, 256, 64, false),
        (4 * 784, 128, 512, true),
        (4 * 784, 512, 128, false),
        (4 * 196, 256, 1024, true),
        (4 * 196, 1024, 256, false),
        (4 * 3136, 64, 128, false),
        (4 * 196, 512, 512, false),
        (4 * 49, 1024, 1024, false),
    ] {
        let warm = gflops(240, k, n, residual, 1, threads);
        let batch = gflops(m, k, n, residual, 1, threads);
        let cold = gflops(m, k, n, residual, 8, threads);
        let tag = if residual { "+res" } else { "    " };
        println!("{m:5} {k:5} → {n:4} {tag} {warm:6.1} {batch:12.1} {cold:11.1}");
    }
}
