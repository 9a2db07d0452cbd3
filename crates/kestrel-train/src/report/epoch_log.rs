//! Reading `metrics.jsonl` for the report: one [`EpochPoint`] per line.
//!
//! The reader is lenient where the writer may grow or lose precision: unknown fields are ignored,
//! the optional `task_weights` map is read when present, and a value written as `null` (serde_json
//! writes NaN and ±∞ that way) or as a string `"NaN"`, `"inf"`, `"-inf"` reads as non-finite, so
//! a diverged run still gets a report. A line that is not a JSON object, or lacks `epoch`, is
//! bad input naming the file and line.

use crate::error::{Result, TrainError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The numbers of one epoch, as the report reads them from `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPoint {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss per task.
    pub train_loss: BTreeMap<String, f64>,
    /// Training accuracy, when recorded.
    pub train_accuracy: Option<f64>,
    /// Validation metrics.
    pub val: BTreeMap<String, f64>,
    /// Learning rate per parameter group.
    pub lr: BTreeMap<String, f64>,
    /// Loss weight per task (multi-task runs); empty when not recorded.
    pub task_weights: BTreeMap<String, f64>,
    /// Seconds the epoch took, when recorded.
    pub seconds: Option<f64>,
}

/// A number as the writers may have stored it: a JSON number, `null` (NaN) or a string naming a
/// non-finite value. `None` for anything else.
pub(crate) fn lenient_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Null => Some(f64::NAN),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn number_map(
    line: &Value,
    key: &str,
    at: &dyn Fn(String) -> TrainError,
) -> Result<BTreeMap<String, f64>> {
    match line.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                lenient_number(v)
                    .map(|x| (k.clone(), x))
                    .ok_or_else(|| at(format!("`{key}.{k}` is {v}, expected a number")))
            })
            .collect(),
        Some(other) => Err(at(format!(
            "`{key}` is {other}, expected an object of numbers"
        ))),
    }
}

/// Parses one line of `metrics.jsonl`; `at` turns a message into an error naming the line.
fn parse_line(text: &str, at: &dyn Fn(String) -> TrainError) -> Result<EpochPoint> {
    let line: Value = serde_json::from_str(text).map_err(|e| at(format!("not JSON ({e})")))?;
    if !line.is_object() {
        return Err(at("expected a JSON object".into()));
    }
    let epoch = line
        .get("epoch")
        .and_then(Value::as_u64)
        .ok_or_else(|| at("`epoch` missing or not a non-negative integer".into()))?
        as usize;
    let optional = |key: &str| line.get(key).and_then(lenient_number);
    Ok(EpochPoint {
        epoch,
        train_loss: number_map(&line, "train_loss", at)?,
        train_accuracy: optional("train_accuracy"),
        val: number_map(&line, "val", at)?,
        lr: number_map(&line, "lr", at)?,
        task_weights: number_map(&line, "task_weights", at)?,
        seconds: optional("seconds"),
    })
}

/// Parses the text of a `metrics.jsonl`; `path` names the file in errors. Blank lines are skipped.
pub fn parse_epochs(text: &str, path: &Path) -> Result<Vec<EpochPoint>> {
    parse_jsonl(text, path, parse_line)
}

/// Parses each non-blank line of a JSON-lines `text` with `parse`, whose errors it gets told to
/// prefix with `path` and the line number.
pub(crate) fn parse_jsonl<T>(
    text: &str,
    path: &Path,
    parse: fn(&str, &dyn Fn(String) -> TrainError) -> Result<T>,
) -> Result<Vec<T>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let at =
                |m: String| TrainError::BadInput(format!("{} line {}: {m}", path.display(), i + 1));
            parse(l, &at)
        })
        .collect()
}

/// Reads `<run>/metrics.jsonl`.
///
/// # Errors
/// Bad input naming the file when it cannot be read or a line is malformed.
pub fn read_epochs(run: &Path) -> Result<Vec<EpochPoint>> {
    let path = run.join(crate::driver::run_dir::METRICS);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        TrainError::BadInput(format!(
            "{}: {e}; expected the metrics log of a run folder from `kestrel train`",
            path.display()
        ))
    })?;
    parse_epochs(&text, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::run_dir::EpochRecord;

    #[test]
    fn reads_what_the_trainer_writes() {
        // A record serialised by the trainer's own type must read back unchanged. (Built from
        // JSON so that fields other helpers add with defaults do not break this test.)
        let record: EpochRecord = serde_json::from_value(serde_json::json!({
            "epoch": 3,
            "train_loss": {"classify": 0.75},
            "train_accuracy": 0.5,
            "val": {"accuracy": 0.625, "macro_f1": 0.5},
            "lr": {"default": 3e-4},
            "seconds": 1.5
        }))
        .unwrap();
        let text = serde_json::to_string(&record).unwrap();
        let p = parse_epochs(&text, Path::new("m.jsonl")).unwrap();
        assert_eq!(
            p,
            vec![EpochPoint {
                epoch: 3,
                train_loss: record.train_loss.clone(),
                train_accuracy: Some(0.5),
                val: record.val.clone(),
                lr: record.lr.clone(),
                task_weights: BTreeMap::new(),
                seconds: Some(1.5),
            }]
        );
    }

    #[test]
    fn task_weights_and_non_finite_values_are_read() {
        let text = r#"{"epoch":1,"train_loss":{"classify":null,"segment":"inf"},"val":{},"lr":{"head":0.1},"task_weights":{"classify":0.25,"segment":0.75},"extra":true}

{"epoch":2,"train_loss":{"classify":"NaN"}}"#;
        let p = parse_epochs(text, Path::new("m.jsonl")).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].train_loss["classify"].is_nan());
        assert_eq!(p[0].train_loss["segment"], f64::INFINITY);
        assert_eq!(p[0].task_weights["segment"], 0.75);
        assert_eq!(p[0].train_accuracy, None);
        assert!(p[1].train_loss["classify"].is_nan());
    }

    #[test]
    fn malformed_lines_name_the_file_line_and_field() {
        let cases = [
            ("{\"epoch\":1}\nnot json", "line 2"),
            ("[1,2]", "JSON object"),
            ("{\"val\":{}}", "`epoch`"),
            (
                "{\"epoch\":1,\"lr\":{\"default\":\"fast\"}}",
                "`lr.default`",
            ),
            ("{\"epoch\":1,\"val\":3}", "`val` is 3"),
        ];
        for (text, needle) in cases {
            let e = parse_epochs(text, Path::new("runs/x/metrics.jsonl"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("runs/x/metrics.jsonl") && e.contains(needle),
                "{e}"
            );
        }
    }

    #[test]
    fn a_missing_log_is_bad_input_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_epochs(dir.path()).unwrap_err();
        assert!(matches!(e, TrainError::BadInput(ref m) if m.contains("metrics.jsonl")));
    }
}
