//! Reading `steps.jsonl` for the report: one [`StepPoint`] per optimiser step, read as leniently
//! as `metrics.jsonl` (see [`super::epoch_log`]). Runs written before the file existed have none.

use super::epoch_log::{lenient_number, parse_jsonl};
use crate::error::{Result, TrainError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One optimiser step: its training loss and learning rates.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPoint {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Optimiser step, 0-based.
    pub step: usize,
    /// The batch's training loss (NaN when not finite).
    pub loss: f64,
    /// Learning rate per parameter group.
    pub lr: BTreeMap<String, f64>,
}

fn parse_line(text: &str, at: &dyn Fn(String) -> TrainError) -> Result<StepPoint> {
    let line: Value = serde_json::from_str(text).map_err(|e| at(format!("not JSON ({e})")))?;
    let count = |key: &str| {
        line.get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| at(format!("`{key}` missing or not a non-negative integer")))
    };
    let loss = line
        .get("loss")
        .and_then(lenient_number)
        .ok_or_else(|| at("`loss` missing or not a number".into()))?;
    let mut lr = BTreeMap::new();
    if let Some(Value::Object(m)) = line.get("lr") {
        for (k, v) in m {
            let x = lenient_number(v)
                .ok_or_else(|| at(format!("`lr.{k}` is {v}, expected a number")))?;
            lr.insert(k.clone(), x);
        }
    }
    Ok(StepPoint {
        epoch: count("epoch")?,
        step: count("step")?,
        loss,
        lr,
    })
}

/// Reads `<run>/steps.jsonl`; empty when the run has none.
///
/// # Errors
/// Bad input naming the file and line when a line is malformed.
pub fn read_steps(run: &Path) -> Result<Vec<StepPoint>> {
    let path = run.join(crate::driver::run_dir::STEPS);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_jsonl(&text, &path, parse_line),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(TrainError::BadInput(format!("{}: {e}", path.display()))),
    }
}

/// Each step's position in epochs: step `i` of an epoch of `n` steps sits at `epoch − 1 +
/// (i + 1) / n`, so that the end of epoch e is at e, where its validation point is.
pub fn epoch_positions(steps: &[StepPoint]) -> Vec<f64> {
    let mut per_epoch: BTreeMap<usize, usize> = BTreeMap::new();
    for s in steps {
        *per_epoch.entry(s.epoch).or_default() += 1;
    }
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    steps
        .iter()
        .map(|s| {
            let i = seen.entry(s.epoch).or_default();
            *i += 1;
            (s.epoch as f64 - 1.0) + *i as f64 / per_epoch[&s.epoch] as f64
        })
        .collect()
}

/// The exponential moving average TensorBoard draws as a smoothed curve, debiased so that it
/// starts at the first value: with weight `w`, `m_t = w·m_{t−1} + (1 − w)·x_t` over the finite
/// values, divided by `1 − w^t`. A non-finite value gives NaN there and is skipped by the average.
pub fn smoothed(values: &[f64], w: f64) -> Vec<f64> {
    let (mut m, mut t) = (0.0, 0i32);
    values
        .iter()
        .map(|&x| {
            if !x.is_finite() {
                return f64::NAN;
            }
            m = w * m + (1.0 - w) * x;
            t += 1;
            m / (1.0 - w.powi(t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_sit_within_their_epoch_and_smoothing_starts_at_the_first_value() {
        let text = "{\"epoch\":1,\"step\":0,\"loss\":2.0,\"lr\":{\"default\":0.001}}\n\
                    {\"epoch\":1,\"step\":1,\"loss\":null,\"lr\":{\"default\":0.002}}\n\
                    {\"epoch\":2,\"step\":2,\"loss\":1.0,\"lr\":{\"default\":0.001}}\n";
        let steps = parse_jsonl(text, Path::new("steps.jsonl"), parse_line).unwrap();
        assert!(steps[1].loss.is_nan());
        assert_eq!(epoch_positions(&steps), [0.5, 1.0, 2.0]);
        let s = smoothed(&[2.0, f64::NAN, 1.0], 0.5);
        assert_eq!(s[0], 2.0);
        assert!(s[1].is_nan());
        // (0.5·(0.5·2) + 0.5·1) / (1 − 0.25) = 1.0 / 0.75.
        assert!((s[2] - 1.0 / 0.75).abs() < 1e-12);
        let e = parse_jsonl("{\"epoch\":1}", Path::new("steps.jsonl"), parse_line).unwrap_err();
        assert!(e.to_string().contains("steps.jsonl line 1: `loss`"), "{e}");
    }
}
