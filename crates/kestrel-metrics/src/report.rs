//! The report behind `kestrel metrics`: every score of a predictions file in
//! one serialisable value, plus a human-readable rendering.

use crate::class_metrics::{class_rows, ClassMetrics};
use crate::classification::{averaged_scores, class_rates, Average};
use crate::confusion::ConfusionMatrix;
use crate::curve::Ranked;
use crate::ovr::roc_auc_ovr;
use crate::pr::{average_precision_ranked, pr_auc_ranked};
use crate::predictions::{Predictions, Scores};
use crate::roc::roc_auc_ranked;
use crate::{MetricsError, Result};
use serde::Serialize;
use std::fmt::Write as _;

/// Below this fraction of positives the report leads with PR-AUC and AP.
pub const LOW_PREVALENCE: f64 = 0.10;

/// Every score of a set of predictions. Serialises to exactly the JSON
/// fields of `kestrel metrics --json`; binary-only fields (`tpr`, `fpr`,
/// `roc_auc`, `average_precision`, `pr_auc`) are `null` for multiclass input
/// and the one-vs-rest fields are `null` for binary input. A value that is
/// undefined for the data (e.g. ROC-AUC with one class present) is `null`
/// with an entry in [`Report::warnings`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Number of samples.
    pub n: usize,
    /// Class names ("0", "1" for binary input).
    pub classes: Vec<String>,
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Binary: precision of class 1; multiclass: macro average.
    pub precision: f64,
    /// Binary: recall of class 1; multiclass: macro average.
    pub recall: f64,
    /// Binary: F1 of class 1; multiclass: macro average.
    pub f1: f64,
    /// True-positive rate (= recall of class 1); binary only.
    pub tpr: Option<f64>,
    /// False-positive rate at the threshold; binary only.
    pub fpr: Option<f64>,
    /// Area under the ROC curve; binary only.
    pub roc_auc: Option<f64>,
    /// Average precision, step-wise; binary only.
    pub average_precision: Option<f64>,
    /// Trapezoid area under the PR curve; binary only.
    pub pr_auc: Option<f64>,
    /// Row per true class, column per predicted class.
    pub confusion: Vec<Vec<u64>>,
    /// Precision, recall, F1, support of each class.
    pub per_class: Vec<ClassMetrics>,
    /// Macro one-vs-rest ROC-AUC; multiclass only.
    pub roc_auc_ovr_macro: Option<f64>,
    /// Support-weighted one-vs-rest ROC-AUC; multiclass only.
    pub roc_auc_ovr_weighted: Option<f64>,
    /// Decision threshold used (binary); not serialised.
    #[serde(skip)]
    pub threshold: Option<f64>,
    /// Fraction of samples of class 1 (binary); not serialised.
    #[serde(skip)]
    pub positive_fraction: Option<f64>,
    /// Undefined values, zero divisions and the low-prevalence caution; not
    /// serialised (the CLI prints them on stderr).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `Ok(Some)`, or `None` plus a warning when the metric is undefined.
fn or_null(r: Result<f64>, warnings: &mut Vec<String>) -> Result<Option<f64>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_undefined() => {
            warnings.push(format!("{e}; reported as null"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Report {
    /// Scores a set of predictions. Binary input predicts class 1 when
    /// `score >= threshold`; multiclass input uses the argmax (lowest index
    /// wins ties) and ignores `threshold`.
    ///
    /// # Errors
    /// A non-finite threshold (binary input). Undefined metrics are not
    /// errors: they are `None` with a warning.
    pub fn from_predictions(p: &Predictions, threshold: f64) -> Result<Report> {
        if p.is_binary() && !threshold.is_finite() {
            return Err(MetricsError::InvalidParameter {
                name: "threshold",
                value: threshold.to_string(),
                expected: "a finite number",
            });
        }
        let k = p.n_classes();
        let pred = p.predicted(threshold);
        let cm = ConfusionMatrix::from_labels(p.y_true(), &pred, k, None)?;
        let (per_class, mut warnings) = class_rows(&cm, p.classes())?;
        let mut report = Report {
            n: p.len(),
            classes: p.classes().to_vec(),
            accuracy: cm.accuracy().unwrap_or(0.0),
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
            tpr: None,
            fpr: None,
            roc_auc: None,
            average_precision: None,
            pr_auc: None,
            confusion: cm.counts().unwrap_or_default(),
            per_class,
            roc_auc_ovr_macro: None,
            roc_auc_ovr_weighted: None,
            threshold: None,
            positive_fraction: None,
            warnings: Vec::new(),
        };
        match p.scores() {
            Scores::Binary(scores) => {
                report.threshold = Some(threshold);
                let avg = averaged_scores(&cm, 1.0, Average::Binary { positive: 1 })?;
                report.precision = avg.precision;
                report.recall = avg.recall;
                report.f1 = avg.f_score;
                report.tpr = Some(avg.recall);
                report.fpr = class_rates(&cm, 1)?.fpr;
                if report.fpr.is_none() {
                    warnings.push("fpr is undefined: no negative sample; reported as null".into());
                }
                let ranked = Ranked::new(&p.is_class(1), scores, None)?;
                report.roc_auc = or_null(roc_auc_ranked(&ranked), &mut warnings)?;
                report.average_precision =
                    or_null(average_precision_ranked(&ranked), &mut warnings)?;
                report.pr_auc = or_null(pr_auc_ranked(&ranked), &mut warnings)?;
                let frac = ranked.positives() / p.len() as f64;
                report.positive_fraction = Some(frac);
                if frac > 0.0 && frac < LOW_PREVALENCE {
                    warnings.insert(
                        0,
                        format!(
                            "only {:.2} % of samples are positive: ROC-AUC can look good while precision is poor; \
                             read average precision and PR-AUC first",
                            100.0 * frac
                        ),
                    );
                }
            }
            Scores::Probabilities(probs) => {
                let avg = averaged_scores(&cm, 1.0, Average::Macro)?;
                report.precision = avg.precision;
                report.recall = avg.recall;
                report.f1 = avg.f_score;
                match roc_auc_ovr(p.y_true(), probs, k, None) {
                    Ok(o) => {
                        for (c, a) in o.per_class.iter().enumerate() {
                            if a.is_none() {
                                warnings.push(format!(
                                    "one-vs-rest ROC-AUC of class {} is undefined (it has no sample, or every sample); \
                                     roc_auc_ovr_macro and roc_auc_ovr_weighted are null",
                                    p.classes()[c]
                                ));
                            }
                        }
                        report.roc_auc_ovr_macro = o.macro_avg;
                        report.roc_auc_ovr_weighted = o.weighted_avg;
                    }
                    Err(e @ MetricsError::RowSumNotOne { .. }) => {
                        warnings.push(format!("{e}; roc_auc_ovr_* reported as null"));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        report.warnings = warnings;
        Ok(report)
    }

    /// Human-readable report. Binary input with under 10 % positives leads
    /// with average precision and PR-AUC and says why.
    pub fn to_text(&self) -> String {
        let f = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.4}"));
        let mut s = String::new();
        let binary = self.threshold.is_some();
        if binary {
            let pos = self.positive_fraction.unwrap_or(0.0);
            let _ = writeln!(
                s,
                "{} samples, binary (class 1 positive, predicted when score >= {}), {:.2} % positive",
                self.n,
                self.threshold.unwrap_or(0.5),
                100.0 * pos
            );
            let _ = writeln!(s);
            let low = pos > 0.0 && pos < LOW_PREVALENCE;
            let ranking = [
                ("ROC-AUC", self.roc_auc),
                ("average precision", self.average_precision),
                ("PR-AUC (trapezoid)", self.pr_auc),
            ];
            if low {
                let _ = writeln!(
                    s,
                    "Imbalanced data ({:.2} % positive): ROC-AUC can look good while precision is poor,",
                    100.0 * pos
                );
                let _ = writeln!(s, "because false positives grow with the many negatives. Read AP and PR-AUC first.");
                for &(name, v) in ranking[1..].iter().chain(&ranking[..1]) {
                    let _ = writeln!(s, "  {name:<20} {}", f(v));
                }
            } else {
                for &(name, v) in &ranking {
                    let _ = writeln!(s, "  {name:<20} {}", f(v));
                }
            }
            let _ = writeln!(s);
            let _ = writeln!(s, "At the threshold:");
            for (name, v) in [
                ("accuracy", Some(self.accuracy)),
                ("precision", Some(self.precision)),
                ("recall (TPR)", self.tpr),
                ("F1", Some(self.f1)),
                ("FPR", self.fpr),
            ] {
                let _ = writeln!(s, "  {name:<20} {}", f(v));
            }
        } else {
            let _ = writeln!(
                s,
                "{} samples, {} classes (prediction = argmax)",
                self.n,
                self.classes.len()
            );
            let _ = writeln!(s);
            for (name, v) in [
                ("accuracy", Some(self.accuracy)),
                ("macro precision", Some(self.precision)),
                ("macro recall", Some(self.recall)),
                ("macro F1", Some(self.f1)),
                ("ROC-AUC OvR macro", self.roc_auc_ovr_macro),
                ("ROC-AUC OvR weighted", self.roc_auc_ovr_weighted),
            ] {
                let _ = writeln!(s, "  {name:<20} {}", f(v));
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Confusion matrix (rows: true class, columns: predicted class):"
        );
        let width = self
            .confusion
            .iter()
            .flatten()
            .map(|c| c.to_string().len())
            .chain(self.classes.iter().map(|c| c.len()))
            .max()
            .unwrap_or(1)
            .max(4);
        let label = self
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(1)
            .max(4);
        let _ = write!(s, "  {:>label$}", "");
        for c in &self.classes {
            let _ = write!(s, " {c:>width$}");
        }
        let _ = writeln!(s);
        for (c, row) in self.classes.iter().zip(&self.confusion) {
            let _ = write!(s, "  {c:>label$}");
            for v in row {
                let _ = write!(s, " {v:>width$}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:>label$} {:>9} {:>9} {:>9} {:>9}",
            "class", "precision", "recall", "f1", "support"
        );
        for r in &self.per_class {
            let _ = writeln!(
                s,
                "  {:>label$} {:>9.4} {:>9.4} {:>9.4} {:>9}",
                r.class, r.precision, r.recall, r.f1, r.support
            );
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "Warnings:");
            for w in &self.warnings {
                let _ = writeln!(s, "  - {w}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_are_the_contract() {
        let p = Predictions::binary(&[0u8, 1, 1, 0], vec![0.1, 0.8, 0.4, 0.6]).unwrap();
        let r = Report::from_predictions(&p, 0.5).unwrap();
        let text = serde_json::to_string(&r).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            crate::class_metrics::top_level_keys(&text),
            [
                "n",
                "classes",
                "accuracy",
                "precision",
                "recall",
                "f1",
                "tpr",
                "fpr",
                "roc_auc",
                "average_precision",
                "pr_auc",
                "confusion",
                "per_class",
                "roc_auc_ovr_macro",
                "roc_auc_ovr_weighted"
            ]
        );
        assert_eq!(v["confusion"], serde_json::json!([[1, 1], [1, 1]]));
        assert_eq!(v["roc_auc"], serde_json::json!(0.75));
        assert!(v["roc_auc_ovr_macro"].is_null());
        assert_eq!(r.fpr, Some(0.5));
        assert!(r.to_text().contains("ROC-AUC"));
    }

    #[test]
    fn one_class_gives_null_and_warning() {
        let p = Predictions::binary(&[1u8, 1], vec![0.1, 0.8]).unwrap();
        let r = Report::from_predictions(&p, 0.5).unwrap();
        assert_eq!(r.roc_auc, None);
        assert_eq!(r.fpr, None);
        assert_eq!(r.average_precision, Some(1.0));
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("roc_auc is undefined")));
        assert!(Report::from_predictions(&p, f64::NAN).is_err());
    }

    #[test]
    fn low_prevalence_leads_with_pr() {
        let mut y = vec![0u8; 95];
        y.extend([1u8; 5]);
        let s: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let r = Report::from_predictions(&Predictions::binary(&y, s).unwrap(), 0.5).unwrap();
        assert!(r.warnings[0].contains("ROC-AUC can look good while precision is poor"));
        let text = r.to_text();
        let ap = text.find("average precision").unwrap();
        let roc = text.find("ROC-AUC  ").unwrap();
        assert!(ap < roc, "{text}");
        assert!(text.contains("Imbalanced"));
    }

    #[test]
    fn multiclass_nulls_binary_fields() {
        let names = vec!["a".to_string(), "b".into(), "c".into()];
        let p = Predictions::multiclass(
            names,
            &[0u8, 1, 2, 2],
            vec![0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.1, 0.2, 0.7, 0.4, 0.4, 0.2],
        )
        .unwrap();
        let r = Report::from_predictions(&p, 0.5).unwrap();
        assert_eq!(r.roc_auc, None);
        assert_eq!(r.tpr, None);
        assert_eq!(r.roc_auc_ovr_macro, Some(1.0));
        assert_eq!(r.accuracy, 0.75);
        assert!(r.to_text().contains("OvR macro"));
        // Rows that are not probabilities: null and a warning, not an error.
        let p = Predictions::multiclass(
            vec!["a".into(), "b".into()],
            &[0u8, 1],
            vec![0.5, 0.1, 0.2, 0.7],
        )
        .unwrap();
        let r = Report::from_predictions(&p, 0.5).unwrap();
        assert_eq!(r.roc_auc_ovr_macro, None);
        assert!(r.warnings.iter().any(|w| w.contains("sums to")));
    }
}
