//! Post-training static quantisation of an fp32 plan: calibrate every activation's range on
//! sample images, build the [`QuantTable`](super::QuantTable), and measure each value's
//! signal-to-quantisation-noise ratio on the same images so the user sees where accuracy goes.

use super::build::build_table;
use super::calibrate::{Method, Observer};
use super::engine::{Int8Engine, Int8Options};
use super::table::Calibration;
use super::QuantPlan;
use crate::error::{Result, RuntimeError};
use crate::plan::Plan;
use crate::{Engine, EngineOptions, Shape};
use serde::Serialize;

/// How to quantise.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// Range estimator.
    pub method: Method,
    /// Name of the method, recorded in the plan (`minmax`, `percentile`, `entropy`).
    pub method_name: String,
    /// One weight scale per depthwise layer instead of per channel (the ablation).
    pub depthwise_per_tensor: bool,
    /// Threads (0: all cores).
    pub threads: usize,
}

/// One value of the quantised network: what produced it, its range and how much it lost.
#[derive(Debug, Clone, Serialize)]
pub struct ValueReport {
    /// Value index (0 is the input).
    pub value: usize,
    /// The op that writes it (`input` for value 0).
    pub op: &'static str,
    /// Per-image shape `h×w×c`.
    pub shape: String,
    /// The calibrated range.
    pub range: [f32; 2],
    /// Scale of its codes.
    pub scale: f32,
    /// Zero point.
    pub zero_point: u8,
    /// `10·log10(Σ x² / Σ (x − x̂)²)` over the calibration images, `x` the fp32 network's value
    /// and `x̂` the int8 network's (errors of earlier layers included); `None` for an all-zero
    /// value.
    pub sqnr_db: Option<f64>,
}

/// Images per run during calibration and during the noise measurement (which holds every value
/// of a batch at once).
const CALIB_BATCH: usize = 16;
const NOISE_BATCH: usize = 2;

/// Quantises `plan` with `n` NHWC images `images` and reports every value.
pub fn quantize(
    plan: Plan,
    images: &[f32],
    n: usize,
    opts: &QuantizeOptions,
) -> Result<(QuantPlan, Vec<ValueReport>)> {
    super::table::check_int8_ops(&plan)?;
    let is: Shape = plan.input_shape();
    if n == 0 || images.len() != n * is.len() {
        return Err(RuntimeError::Input(format!(
            "calibration: got {} floats for {n} images of {is}",
            images.len()
        )));
    }
    let eopts = EngineOptions {
        threads: opts.threads,
        fuse_blocks: false,
        ..Default::default()
    };
    let mut fp = Engine::new(plan.clone(), eopts)?;
    let nv = plan.graph.values.len();
    let mut obs: Vec<Observer> = (0..nv).map(|_| Observer::new(opts.method)).collect();
    for pass in 0..obs[0].passes() {
        for chunk in images.chunks(CALIB_BATCH * is.len()) {
            fp.run_observed(chunk, chunk.len() / is.len(), &mut |v, x| {
                obs[v].observe(pass, x)
            })?;
        }
    }
    let ranges: Vec<(f32, f32)> = obs.iter().map(Observer::range).collect();
    let calibration = Calibration {
        method: opts.method_name.clone(),
        images: n,
        depthwise_per_tensor: opts.depthwise_per_tensor,
    };
    let table = build_table(&plan, &ranges, calibration);
    let q = QuantPlan { plan, table };
    let mut i8 = Int8Engine::new(
        q.clone(),
        Int8Options {
            threads: opts.threads,
            ..Default::default()
        },
    )?;
    let (mut signal, mut noise) = (vec![0f64; nv], vec![0f64; nv]);
    let mut want: Vec<Vec<f32>> = vec![Vec::new(); nv];
    for chunk in images.chunks(NOISE_BATCH * is.len()) {
        let b = chunk.len() / is.len();
        fp.run_observed(chunk, b, &mut |v, x| {
            want[v].clear();
            want[v].extend_from_slice(x);
        })?;
        i8.run_observed(chunk, b, &mut |v, x| {
            for (a, b) in want[v].iter().zip(x) {
                signal[v] += (*a as f64).powi(2);
                noise[v] += (*a as f64 - *b as f64).powi(2);
            }
        })?;
    }
    let g = &q.plan.graph;
    let mut writer = vec!["input"; nv];
    for op in &g.ops {
        writer[op.output()] = op.kind_name();
    }
    let report = (0..nv)
        .map(|v| {
            let a = q.table.values[v];
            ValueReport {
                value: v,
                op: writer[v],
                shape: g.values[v].to_string(),
                range: [ranges[v].0, ranges[v].1],
                scale: a.scale,
                zero_point: a.zero,
                sqnr_db: (signal[v] > 0.0).then(|| {
                    if noise[v] > 0.0 {
                        10.0 * (signal[v] / noise[v]).log10()
                    } else {
                        f64::INFINITY
                    }
                }),
            }
        })
        .collect();
    Ok((q, report))
}
