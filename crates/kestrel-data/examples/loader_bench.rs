//! Throughput of the training loader (images/s): `shapes` items rendered, augmented (`standard`
//! or none), resized and normalised on 1, 2 and 4 worker threads, batches of 32.
//!
//!     cargo run --release -p kestrel-data --example loader_bench [-- N [RESOLUTION]]
//!
//! N (default 2000) is the number of images, RESOLUTION (default 48) the output side. Each row
//! is the best of three passes over all N images; the checksum proves every configuration
//! produced the same values.

use kestrel_data::loader::{chunk_plan, plan_samples, Loader, LoaderOptions};
use kestrel_data::rng::Rng;
use kestrel_data::{standard_augment, Dataset, DecodeSource, Normalize, Shapes, ShapesConfig};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let resolution: u32 = args.next().map_or(Ok(48), |a| a.parse())?;
    let ds: Arc<dyn Dataset> = Arc::new(Shapes::new(ShapesConfig {
        n,
        ..ShapesConfig::default()
    })?);
    let mut rng = Rng::new(0);
    let mut order: Vec<usize> = (0..ds.len()).collect();
    rng.shuffle(&mut order);
    let plan = chunk_plan(&plan_samples(order, &mut rng), 32, false);
    println!(
        "{n} shapes images of 64 px -> {resolution} px, batches of 32 (timings are noisy when the machine is busy)"
    );
    println!("augment   workers  prefetch  images/s  checksum");
    for (name, aug) in [
        ("none", None),
        ("standard", Some(standard_augment(resolution))),
    ] {
        let source = Arc::new(DecodeSource::new(
            ds.clone(),
            resolution,
            Normalize::IMAGENET,
            aug,
        )?);
        for workers in [1, 2, 4] {
            let options = LoaderOptions {
                workers,
                prefetch: 2 * workers,
            };
            let mut best = f64::INFINITY;
            let mut checksum = 0.0f64;
            for _ in 0..3 {
                let start = Instant::now();
                checksum = 0.0;
                for batch in Loader::spawn(source.clone(), plan.clone(), options) {
                    let b = batch?;
                    checksum += b.values.iter().map(|&v| v as f64).sum::<f64>();
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            println!(
                "{name:<9} {workers:>7}  {:>8}  {:>8.0}  {checksum:.3}",
                options.prefetch,
                n as f64 / best
            );
        }
    }
    Ok(())
}
