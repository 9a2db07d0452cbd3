//! MobileNetV2-1.0 at 224×224 with synthetic weights: latency and throughput of the engine.
//!
//! `cargo run --release -p kestrel-runtime --example bench_mbv2 -- [--batch 1,32] [--threads 1,2]
//! [--runs 10] [--profile] [--scalar] [--gemm-crate] [--no-image-parallel] [--no-fuse]
//! [--micro N]`
//!
//! Prints min and median of `runs` timed runs after two warm-up runs, for every batch × threads,
//! the process CPU time per run (a better guide than wall time on a busy machine), and with
//! `--profile` the time per op kind.

#[path = "../tests/support/mod.rs"]
mod support;

use kestrel_runtime::{Engine, EngineOptions, GemmBackend, KernelPath};
use std::time::Instant;
use support::mobilenet_v2::{self, MobileNetV2Config};
use support::synthetic::uniform;

/// CPU seconds (user + system) this process has used, from /proc/self/stat (Linux; 0 elsewhere).
/// On a busy machine, CPU time per run of a single-threaded engine approximates its latency on an
/// idle one better than wall time does.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn list(v: &str) -> Vec<usize> {
    v.split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("a comma-separated list of integers")
        })
        .collect()
}

fn main() {
    let mut batches = vec![1, 32];
    let mut threads = vec![1, 2];
    let mut runs = 10;
    let mut profile = false;
    let mut path = KernelPath::Auto;
    let mut gemm = GemmBackend::Packed;
    let mut image_parallel = true;
    let mut fuse_blocks = true;
    let mut micro_batch = EngineOptions::default().micro_batch;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batch" => batches = list(&args.next().expect("--batch LIST")),
            "--threads" => threads = list(&args.next().expect("--threads LIST")),
            "--runs" => runs = args.next().expect("--runs N").parse().expect("--runs N"),
            "--profile" => profile = true,
            "--scalar" => path = KernelPath::Scalar,
            "--gemm-crate" => gemm = GemmBackend::GemmCrate,
            "--no-image-parallel" => image_parallel = false,
            "--no-fuse" => fuse_blocks = false,
            "--micro" => micro_batch = args.next().expect("--micro N").parse().expect("--micro N"),
            other => {
                eprintln!("unknown argument {other}; see the doc comment of bench_mbv2.rs");
                std::process::exit(2);
            }
        }
    }
    let cfg = MobileNetV2Config::default();
    let plan = mobilenet_v2::build(&cfg, &mobilenet_v2::synthetic_weights(&cfg, 0)).expect("plan");
    let macs = plan.macs();
    println!(
        "MobileNetV2-1.0 224x224: {} ops, {:.1} M multiply-adds per image, kernels {:?}, gemm {:?}, image-parallel {} (micro-batch {}), fused blocks {}, simd available {}",
        plan.graph.ops.len(),
        macs as f64 / 1e6,
        path,
        gemm,
        image_parallel,
        micro_batch,
        fuse_blocks,
        kestrel_runtime::kernels::simd_available()
    );
    println!(
        "{:>5} {:>7} {:>9} {:>9} {:>9} {:>8} {:>11}",
        "batch", "threads", "min_ms", "median_ms", "images/s", "GFLOP/s", "cpu_ms/run"
    );
    for &b in &batches {
        let x = uniform(1, 60000, b * 224 * 224 * 3, 1.0);
        for &t in &threads {
            let options = |profile| EngineOptions {
                threads: t,
                kernel_path: path,
                gemm,
                image_parallel,
                micro_batch,
                fuse_blocks,
                profile,
                winograd: true,
            };
            let mut e = Engine::new(plan.clone(), options(false)).expect("engine");
            for _ in 0..2 {
                e.run(&x, b).expect("run");
            }
            let cpu0 = cpu_seconds();
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let t0 = Instant::now();
                    std::hint::black_box(e.run(&x, b).expect("run"));
                    t0.elapsed().as_secs_f64()
                })
                .collect();
            let cpu = (cpu_seconds() - cpu0) / runs as f64;
            times.sort_by(f64::total_cmp);
            let (min, med) = (times[0], times[times.len() / 2]);
            println!(
                "{:>5} {:>7} {:>9.2} {:>9.2} {:>9.1} {:>8.1} {:>11.2}",
                b,
                t,
                min * 1e3,
                med * 1e3,
                b as f64 / med,
                2.0 * macs as f64 * b as f64 / min / 1e9,
                cpu * 1e3
            );
            if profile {
                let mut p = Engine::new(plan.clone(), options(true)).expect("engine");
                p.run(&x, b).expect("run");
                let prof_runs = runs.max(1);
                for _ in 0..prof_runs {
                    p.run(&x, b).expect("run");
                }
                let total: f64 = p.profile().iter().map(|o| o.seconds).sum();
                for o in p.profile() {
                    println!(
                        "        {:<16} {:>4} calls/run {:>8.2} ms/run {:>5.1}%",
                        o.kind,
                        o.calls / (prof_runs as u64 + 1),
                        o.seconds * 1e3 / (prof_runs + 1) as f64,
                        100.0 * o.seconds / total
                    );
                }
            }
        }
    }
}
