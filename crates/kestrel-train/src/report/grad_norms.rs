//! Reading `grad_norms.jsonl`, the per-layer gradient norms the training loop samples: one JSON
//! object per line, `{"epoch": e, "step": s, "layers": [{"name": "<param path>", "norm": x}, ...]}`.
//!
//! A norm written as `null` (serde_json's NaN and ±∞) or as a string `"NaN"`, `"inf"` reads as
//! non-finite: those are exactly the samples the heat map must show. The file is optional: a run
//! without it has no heat map.

use super::epoch_log::{lenient_number, parse_jsonl};
use crate::driver::run_dir::GRAD_NORMS;
use crate::error::{Result, TrainError};
use serde_json::Value;
use std::path::Path;

/// The gradient norms of every sampled parameter at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct GradSample {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Optimiser step.
    pub step: usize,
    /// `(parameter path, L2 norm)` in the order written.
    pub layers: Vec<(String, f64)>,
}

fn parse_line(text: &str, at: &dyn Fn(String) -> TrainError) -> Result<GradSample> {
    let v: Value = serde_json::from_str(text).map_err(|e| at(format!("not JSON ({e})")))?;
    let int = |key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .ok_or_else(|| at(format!("`{key}` missing or not a non-negative integer")))
    };
    let (epoch, step) = (int("epoch")?, int("step")?);
    let layers = v
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| at("`layers` missing or not a list".into()))?;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let name = l
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| at(format!("`layers[{i}].name` missing or not a string")))?;
            let norm = l
                .get("norm")
                .and_then(lenient_number)
                .ok_or_else(|| at(format!("`layers[{i}].norm` missing or not a number")))?;
            Ok((name.to_string(), norm))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GradSample {
        epoch,
        step,
        layers,
    })
}

/// Parses the text of a `grad_norms.jsonl`; `path` names the file in errors.
pub fn parse_grad_norms(text: &str, path: &Path) -> Result<Vec<GradSample>> {
    parse_jsonl(text, path, parse_line)
}

/// Reads `<run>/grad_norms.jsonl`; no file means no samples.
///
/// # Errors
/// Bad input naming the file and line when a line is malformed; a runtime error when the file
/// exists but cannot be read.
pub fn read_grad_norms(run: &Path) -> Result<Vec<GradSample>> {
    let path = run.join(GRAD_NORMS);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_grad_norms(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(TrainError::Runtime(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_loop_format_with_non_finite_norms() {
        let text = r#"{"epoch":1,"step":10,"layers":[{"name":"features.0.0.weight","norm":0.5},{"name":"classifier.1.bias","norm":null}]}
{"epoch":1,"step":20,"layers":[{"name":"features.0.0.weight","norm":"inf"},{"name":"classifier.1.bias","norm":0}]}"#;
        let s = parse_grad_norms(text, Path::new("g.jsonl")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].step, 10);
        assert_eq!(s[0].layers[0], ("features.0.0.weight".to_string(), 0.5));
        assert!(s[0].layers[1].1.is_nan());
        assert_eq!(s[1].layers[0].1, f64::INFINITY);
        assert_eq!(s[1].layers[1].1, 0.0);
    }

    #[test]
    fn malformed_lines_name_file_line_and_field() {
        for (text, needle) in [
            (r#"{"epoch":1,"layers":[]}"#, "`step`"),
            (r#"{"epoch":1,"step":2}"#, "`layers`"),
            (
                r#"{"epoch":1,"step":2,"layers":[{"norm":1}]}"#,
                "`layers[0].name`",
            ),
            (
                r#"{"epoch":1,"step":2,"layers":[{"name":"a","norm":"big"}]}"#,
                "`layers[0].norm`",
            ),
            ("{", "not JSON"),
        ] {
            let e = parse_grad_norms(text, Path::new("run/grad_norms.jsonl"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("run/grad_norms.jsonl line 1") && e.contains(needle),
                "{e}"
            );
        }
    }

    #[test]
    fn a_run_without_the_file_has_no_samples() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_grad_norms(dir.path()).unwrap().is_empty());
    }
}
