//! Times kestrel's ROC-AUC and average precision on scores written by
//! `bench/metrics_bench.py` (which times scikit-learn on the same data):
//!
//! `cargo run --release -p kestrel-metrics --example bench_auc -- LABELS.u8 SCORES.f64 [REPEATS]`
//!
//! `LABELS.u8` holds one byte (0 or 1) per sample, `SCORES.f64` one
//! little-endian `f64` per sample. Prints one JSON line with the values and
//! the best and median wall-clock seconds of each metric.

use kestrel_metrics::{pr, roc};
use std::time::Instant;

fn time<T>(repeats: usize, mut f: impl FnMut() -> T) -> (T, f64, f64) {
    let mut times = Vec::with_capacity(repeats);
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let v = f();
        times.push(t.elapsed().as_secs_f64());
        last = Some(v);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    (last.expect("at least one run"), times[0], median)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: bench_auc LABELS.u8 SCORES.f64 [REPEATS]".into());
    }
    let labels = std::fs::read(&args[0])?;
    let raw = std::fs::read(&args[1])?;
    let repeats: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
    let scores: Vec<f64> = raw
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let y: Vec<bool> = labels.iter().map(|&b| b == 1).collect();
    let (auc, auc_min, auc_med) = time(repeats, || roc::roc_auc(&y, &scores, None));
    let (ap, ap_min, ap_med) = time(repeats, || pr::average_precision(&y, &scores, None));
    println!(
        "{{\"n\":{},\"threads\":{},\"roc_auc\":{},\"roc_auc_min_s\":{auc_min},\"roc_auc_median_s\":{auc_med},\
         \"average_precision\":{},\"ap_min_s\":{ap_min},\"ap_median_s\":{ap_med}}}",
        y.len(),
        rayon::current_num_threads(),
        auc?,
        ap?,
    );
    Ok(())
}
