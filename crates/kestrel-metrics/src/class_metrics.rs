//! The per-class rows shared by `kestrel metrics` and `kestrel eval` output.

use crate::classification::per_class_scores;
use crate::confusion::ConfusionMatrix;
use crate::Result;
use serde::Serialize;

/// Precision, recall, F1 and support of one class, serialised with the field
/// names of the CLI's `per_class` entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class name (its index as text when the classes have no names).
    pub class: String,
    /// Precision (0 when the class is never predicted).
    pub precision: f64,
    /// Recall (0 when the class has no sample).
    pub recall: f64,
    /// F1 (0 when both are 0).
    pub f1: f64,
    /// Number of samples of this class.
    pub support: u64,
}

/// One [`ClassMetrics`] per class, plus warning texts for zero divisions.
///
/// # Errors
/// An empty matrix.
pub(crate) fn class_rows(
    cm: &ConfusionMatrix,
    names: &[String],
) -> Result<(Vec<ClassMetrics>, Vec<String>)> {
    let s = per_class_scores(cm, 1.0)?;
    let rows = (0..cm.n_classes())
        .map(|c| ClassMetrics {
            class: names.get(c).cloned().unwrap_or_else(|| c.to_string()),
            precision: s.precision[c],
            recall: s.recall[c],
            f1: s.f_score[c],
            support: s.support[c].max(0.0).round() as u64,
        })
        .collect();
    let warnings = s.zero_division.iter().map(|z| z.to_string()).collect();
    Ok((rows, warnings))
}

/// Default class names: "0", "1", ...
pub(crate) fn index_names(n: usize) -> Vec<String> {
    (0..n).map(|c| c.to_string()).collect()
}

/// The top-level keys of a serialised JSON object, in order (for tests of the
/// JSON contract; `serde_json::Value` would sort them).
#[cfg(test)]
pub(crate) fn top_level_keys(json: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut in_str, mut esc, mut start) = (0i32, false, false, None);
    for (i, ch) in json.char_indices() {
        if in_str {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_str = false;
                if let Some(s) = start.take() {
                    if json[i + 1..].starts_with(':') {
                        keys.push(json[s..i].to_string());
                    }
                }
            }
            continue;
        }
        match ch {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                in_str = true;
                if depth == 1 {
                    start = Some(i + 1);
                }
            }
            _ => {}
        }
    }
    keys
}
