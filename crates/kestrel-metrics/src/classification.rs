//! Precision, recall, F-scores and rates from a confusion matrix, with
//! scikit-learn's averages and its `classification_report`.
//!
//! # Zero division
//! kestrel follows scikit-learn's default `zero_division="warn"`: a ratio whose
//! denominator is zero (precision of a class never predicted, recall of a
//! class with no support, F-score when both are zero) is **0**, and the case
//! is recorded in the result's `zero_division` list so that callers can warn.
//! Averages include such zeros. Classes are always `0..n_classes`, as if
//! scikit-learn were called with `labels=range(n_classes)`.
//!
//! The rates without a scikit-learn counterpart (TNR/specificity, FPR, FNR) are
//! `None` when undefined instead.

use crate::confusion::ConfusionMatrix;
use crate::{MetricsError, Result};
use serde::Serialize;
use std::fmt;

/// How per-class scores are combined, as scikit-learn's `average`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    /// Only the scores of class `positive`.
    Binary {
        /// The positive class.
        positive: usize,
    },
    /// Global counts: precision = recall = F = accuracy for single-label data.
    Micro,
    /// Unweighted mean over classes.
    Macro,
    /// Mean over classes weighted by support (true-class weight).
    Weighted,
}

/// A ratio that had a zero denominator and was set to 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZeroDivision {
    /// `"precision"`, `"recall"` or `"f-score"`.
    pub metric: &'static str,
    /// The class, or `None` for a micro average.
    pub class: Option<usize>,
}

impl fmt::Display for ZeroDivision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.metric {
            "precision" => "no sample was predicted as",
            "recall" => "no sample truly belongs to",
            _ => "no sample truly belongs to or was predicted as",
        };
        match self.class {
            Some(c) => write!(f, "{} of class {c} set to 0: {why} it", self.metric),
            None => write!(f, "micro-averaged {} set to 0: no samples", self.metric),
        }
    }
}

/// Precision, recall, F-score and support of every class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerClassScores {
    /// Precision per class.
    pub precision: Vec<f64>,
    /// Recall (TPR) per class.
    pub recall: Vec<f64>,
    /// F-beta per class.
    pub f_score: Vec<f64>,
    /// Support (true-class weight) per class.
    pub support: Vec<f64>,
    /// Ratios set to 0 because of a zero denominator.
    pub zero_division: Vec<ZeroDivision>,
}

/// One averaged precision/recall/F triple.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AveragedScores {
    /// Averaged precision.
    pub precision: f64,
    /// Averaged recall.
    pub recall: f64,
    /// Averaged F-beta.
    pub f_score: f64,
    /// Ratios set to 0 because of a zero denominator.
    pub zero_division: Vec<ZeroDivision>,
}

fn check_beta(beta: f64) -> Result<()> {
    if beta >= 0.0 && !beta.is_nan() {
        Ok(())
    } else {
        Err(MetricsError::InvalidParameter {
            name: "beta",
            value: beta.to_string(),
            expected: "beta >= 0 (0 gives precision, +inf gives recall)",
        })
    }
}

fn check_not_empty(cm: &ConfusionMatrix) -> Result<()> {
    if cm.total() > 0.0 {
        Ok(())
    } else {
        Err(MetricsError::Empty {
            what: "confusion matrix",
        })
    }
}

/// The scores of one set of counts. Returns (precision, recall, f) and pushes
/// zero divisions.
fn prf(
    tp: f64,
    pred: f64,
    truth: f64,
    beta: f64,
    class: Option<usize>,
    zd: &mut Vec<ZeroDivision>,
) -> (f64, f64, f64) {
    let mut div = |num: f64, den: f64, metric: &'static str| {
        if den == 0.0 {
            zd.push(ZeroDivision { metric, class });
            0.0
        } else {
            num / den
        }
    };
    let p = div(tp, pred, "precision");
    let r = div(tp, truth, "recall");
    let f = if beta.is_infinite() {
        r
    } else if beta == 0.0 {
        p
    } else {
        let b2 = beta * beta;
        div((1.0 + b2) * tp, b2 * truth + pred, "f-score")
    };
    (p, r, f)
}

/// Per-class precision, recall, F-beta and support, as scikit-learn's
/// `precision_recall_fscore_support(average=None)`.
///
/// # Errors
/// An empty matrix, or `beta` negative or NaN.
pub fn per_class_scores(cm: &ConfusionMatrix, beta: f64) -> Result<PerClassScores> {
    check_beta(beta)?;
    check_not_empty(cm)?;
    let k = cm.n_classes();
    let mut out = PerClassScores {
        precision: Vec::with_capacity(k),
        recall: Vec::with_capacity(k),
        f_score: Vec::with_capacity(k),
        support: Vec::with_capacity(k),
        zero_division: Vec::new(),
    };
    for c in 0..k {
        let support = cm.support(c);
        let (p, r, f) = prf(
            cm.true_positives(c),
            cm.predicted(c),
            support,
            beta,
            Some(c),
            &mut out.zero_division,
        );
        out.precision.push(p);
        out.recall.push(r);
        out.f_score.push(f);
        out.support.push(support);
    }
    Ok(out)
}

/// Averaged precision, recall and F-beta, as scikit-learn's
/// `precision_recall_fscore_support(average=...)`.
///
/// # Errors
/// An empty matrix, an invalid `beta`, or a positive class out of range.
pub fn averaged_scores(
    cm: &ConfusionMatrix,
    beta: f64,
    average: Average,
) -> Result<AveragedScores> {
    check_beta(beta)?;
    check_not_empty(cm)?;
    let k = cm.n_classes();
    match average {
        Average::Binary { positive } => {
            if positive >= k {
                return Err(MetricsError::InvalidParameter {
                    name: "positive",
                    value: positive.to_string(),
                    expected: "a class index below n_classes",
                });
            }
            let mut zd = Vec::new();
            let (p, r, f) = prf(
                cm.true_positives(positive),
                cm.predicted(positive),
                cm.support(positive),
                beta,
                Some(positive),
                &mut zd,
            );
            Ok(AveragedScores {
                precision: p,
                recall: r,
                f_score: f,
                zero_division: zd,
            })
        }
        Average::Micro => {
            let tp: f64 = (0..k).map(|c| cm.true_positives(c)).sum();
            let pred: f64 = (0..k).map(|c| cm.predicted(c)).sum();
            let truth: f64 = (0..k).map(|c| cm.support(c)).sum();
            let mut zd = Vec::new();
            let (p, r, f) = prf(tp, pred, truth, beta, None, &mut zd);
            Ok(AveragedScores {
                precision: p,
                recall: r,
                f_score: f,
                zero_division: zd,
            })
        }
        Average::Macro | Average::Weighted => {
            let s = per_class_scores(cm, beta)?;
            let weights: Vec<f64> = if average == Average::Macro {
                vec![1.0; k]
            } else {
                s.support.clone()
            };
            let wsum: f64 = weights.iter().sum();
            let mean = |v: &[f64]| v.iter().zip(&weights).map(|(x, w)| x * w).sum::<f64>() / wsum;
            Ok(AveragedScores {
                precision: mean(&s.precision),
                recall: mean(&s.recall),
                f_score: mean(&s.f_score),
                zero_division: s.zero_division,
            })
        }
    }
}

/// Averaged precision (see [`averaged_scores`]).
///
/// # Errors
/// As [`averaged_scores`].
pub fn precision(cm: &ConfusionMatrix, average: Average) -> Result<f64> {
    Ok(averaged_scores(cm, 1.0, average)?.precision)
}

/// Averaged recall, i.e. true-positive rate (see [`averaged_scores`]).
///
/// # Errors
/// As [`averaged_scores`].
pub fn recall(cm: &ConfusionMatrix, average: Average) -> Result<f64> {
    Ok(averaged_scores(cm, 1.0, average)?.recall)
}

/// Averaged F1 (see [`averaged_scores`]).
///
/// # Errors
/// As [`averaged_scores`].
pub fn f1(cm: &ConfusionMatrix, average: Average) -> Result<f64> {
    Ok(averaged_scores(cm, 1.0, average)?.f_score)
}

/// Averaged F-beta (see [`averaged_scores`]).
///
/// # Errors
/// As [`averaged_scores`].
pub fn fbeta(cm: &ConfusionMatrix, beta: f64, average: Average) -> Result<f64> {
    Ok(averaged_scores(cm, beta, average)?.f_score)
}

/// One-vs-rest rates of one class; `None` where the denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassRates {
    /// True-positive rate (recall, sensitivity): TP / (TP + FN).
    pub tpr: Option<f64>,
    /// True-negative rate (specificity): TN / (TN + FP).
    pub tnr: Option<f64>,
    /// False-positive rate: FP / (FP + TN).
    pub fpr: Option<f64>,
    /// False-negative rate: FN / (FN + TP).
    pub fnr: Option<f64>,
}

/// TPR, TNR (specificity), FPR and FNR of `class` against the rest.
///
/// # Errors
/// `class` out of range.
pub fn class_rates(cm: &ConfusionMatrix, class: usize) -> Result<ClassRates> {
    if class >= cm.n_classes() {
        return Err(MetricsError::InvalidParameter {
            name: "class",
            value: class.to_string(),
            expected: "a class index below n_classes",
        });
    }
    let tp = cm.true_positives(class);
    let fn_ = cm.support(class) - tp;
    let fp = cm.predicted(class) - tp;
    let tn = cm.total() - tp - fn_ - fp;
    let ratio = |a: f64, b: f64| if a + b > 0.0 { Some(a / (a + b)) } else { None };
    Ok(ClassRates {
        tpr: ratio(tp, fn_),
        tnr: ratio(tn, fp),
        fpr: ratio(fp, tn),
        fnr: ratio(fn_, tp),
    })
}

/// One line of a classification report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportLine {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Support (true-class weight; for the averages, the total).
    pub support: f64,
}

/// The numbers of scikit-learn's `classification_report(output_dict=True)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// One line per class.
    pub per_class: Vec<ReportLine>,
    /// Accuracy (= micro-averaged F1).
    pub accuracy: f64,
    /// Macro average.
    pub macro_avg: ReportLine,
    /// Support-weighted average.
    pub weighted_avg: ReportLine,
    /// Ratios set to 0 because of a zero denominator.
    pub zero_division: Vec<ZeroDivision>,
}

/// Builds the classification report of a confusion matrix.
///
/// # Errors
/// An empty matrix.
pub fn classification_report(cm: &ConfusionMatrix) -> Result<ClassificationReport> {
    let s = per_class_scores(cm, 1.0)?;
    let total = cm.total();
    let per_class = (0..cm.n_classes())
        .map(|c| ReportLine {
            precision: s.precision[c],
            recall: s.recall[c],
            f1: s.f_score[c],
            support: s.support[c],
        })
        .collect();
    let line = |a: AveragedScores| ReportLine {
        precision: a.precision,
        recall: a.recall,
        f1: a.f_score,
        support: total,
    };
    Ok(ClassificationReport {
        per_class,
        accuracy: cm.accuracy().unwrap_or(0.0),
        macro_avg: line(averaged_scores(cm, 1.0, Average::Macro)?),
        weighted_avg: line(averaged_scores(cm, 1.0, Average::Weighted)?),
        zero_division: s.zero_division,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> ConfusionMatrix {
        // true:  0 0 0 1 1 2
        // pred:  0 0 1 1 0 0
        ConfusionMatrix::from_labels(&[0u8, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 0, 0], 3, None).unwrap()
    }

    #[test]
    fn per_class_and_zero_division() {
        let s = per_class_scores(&cm(), 1.0).unwrap();
        assert_eq!(s.precision, vec![0.5, 0.5, 0.0]);
        assert_eq!(s.recall, vec![2.0 / 3.0, 0.5, 0.0]);
        assert_eq!(s.support, vec![3.0, 2.0, 1.0]);
        assert!((s.f_score[0] - 4.0 / 7.0).abs() < 1e-15);
        // Class 2 is never predicted: precision 0/0; its F is 0/(1) = 0, defined.
        assert_eq!(
            s.zero_division,
            vec![ZeroDivision {
                metric: "precision",
                class: Some(2)
            }]
        );
        assert_eq!(
            s.zero_division[0].to_string(),
            "precision of class 2 set to 0: no sample was predicted as it"
        );
    }

    #[test]
    fn averages() {
        let m = cm();
        let micro = averaged_scores(&m, 1.0, Average::Micro).unwrap();
        assert_eq!(micro.precision, 0.5);
        assert_eq!(micro.f_score, 0.5);
        let mac = precision(&m, Average::Macro).unwrap();
        assert!((mac - 1.0 / 3.0).abs() < 1e-15);
        let w = recall(&m, Average::Weighted).unwrap();
        assert!((w - 0.5).abs() < 1e-15); // weighted recall = accuracy
        assert_eq!(f1(&m, Average::Binary { positive: 1 }).unwrap(), 0.5);
        assert_eq!(
            fbeta(&m, 0.0, Average::Binary { positive: 0 }).unwrap(),
            0.5
        );
        assert_eq!(
            fbeta(&m, f64::INFINITY, Average::Binary { positive: 0 }).unwrap(),
            2.0 / 3.0
        );
        assert!(fbeta(&m, -1.0, Average::Macro).is_err());
        assert!(f1(&m, Average::Binary { positive: 3 }).is_err());
        assert!(f1(&ConfusionMatrix::new(2).unwrap(), Average::Macro).is_err());
    }

    #[test]
    fn rates() {
        let r = class_rates(&cm(), 0).unwrap();
        assert_eq!(r.tpr, Some(2.0 / 3.0));
        assert_eq!(r.fnr, Some(1.0 / 3.0));
        assert_eq!(r.fpr, Some(2.0 / 3.0));
        assert_eq!(r.tnr, Some(1.0 / 3.0));
        let single = ConfusionMatrix::from_labels(&[0u8], &[0], 2, None).unwrap();
        let r = class_rates(&single, 0).unwrap();
        assert_eq!(r.fpr, None);
        assert_eq!(r.tpr, Some(1.0));
    }

    #[test]
    fn report() {
        let r = classification_report(&cm()).unwrap();
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.macro_avg.support, 6.0);
        assert_eq!(r.per_class.len(), 3);
    }
}
