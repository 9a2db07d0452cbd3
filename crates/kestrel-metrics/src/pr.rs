//! Precision–recall: the PR curve, average precision (step-wise) and PR-AUC
//! (trapezoid).
//!
//! Average precision is `Σ (R_n − R_{n−1}) · P_n` over the thresholds, with no
//! interpolation, as scikit-learn's `average_precision_score`. PR-AUC is the
//! trapezoid area under the same points plus the `(recall 0, precision 1)`
//! end point, as scikit-learn's `auc(recall, precision)`; the two differ, and
//! the trapezoid is optimistic when precision zig-zags.

use crate::curve::{BinaryCurve, Ranked};
use crate::{MetricsError, Result};

/// A precision–recall curve in scikit-learn's layout: thresholds increasing;
/// `precision` and `recall` have one more entry than `thresholds`, the last
/// being `(precision 1, recall 0)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrCurve {
    /// Precision at each point.
    pub precision: Vec<f64>,
    /// Recall at each point (decreasing).
    pub recall: Vec<f64>,
    /// Distinct score thresholds, increasing.
    pub thresholds: Vec<f64>,
}

fn need_positives(metric: &'static str, positives: f64) -> Result<()> {
    if positives <= 0.0 {
        Err(MetricsError::undefined(
            metric,
            "y_true has no positive sample, so recall is undefined",
        ))
    } else {
        Ok(())
    }
}

#[inline]
fn precision(tp: f64, fp: f64) -> f64 {
    let ps = tp + fp;
    if ps > 0.0 {
        tp / ps
    } else {
        0.0
    }
}

impl PrCurve {
    /// Derives the PR curve from the cumulative curve (every threshold kept).
    ///
    /// # Errors
    /// [`MetricsError::Undefined`] when there is no positive sample
    /// (scikit-learn warns and sets recall to 1).
    pub fn from_curve(curve: &BinaryCurve) -> Result<Self> {
        let p = curve.positives();
        need_positives("precision_recall_curve", p)?;
        let m = curve.len();
        let mut out = PrCurve {
            precision: Vec::with_capacity(m + 1),
            recall: Vec::with_capacity(m + 1),
            thresholds: Vec::with_capacity(m),
        };
        for i in (0..m).rev() {
            let (tp, fp) = (curve.tps()[i], curve.fps()[i]);
            out.precision.push(precision(tp, fp));
            out.recall.push(tp / p);
            out.thresholds.push(curve.thresholds()[i]);
        }
        out.precision.push(1.0);
        out.recall.push(0.0);
        Ok(out)
    }
}

/// The precision–recall curve of binary scores, as scikit-learn's
/// `precision_recall_curve` (with `drop_intermediate=False`).
///
/// # Errors
/// Invalid input (see [`BinaryCurve::new`]) or no positive sample.
pub fn precision_recall_curve(
    y_true: &[bool],
    scores: &[f64],
    sample_weight: Option<&[f64]>,
) -> Result<PrCurve> {
    PrCurve::from_curve(&BinaryCurve::new(y_true, scores, sample_weight)?)
}

/// Average precision, `Σ (R_n − R_{n−1}) · P_n` (step-wise, no interpolation),
/// as scikit-learn's `average_precision_score` for binary input.
///
/// # Errors
/// Invalid input, or [`MetricsError::Undefined`] with no positive sample
/// (scikit-learn warns and returns a meaningless value).
pub fn average_precision(
    y_true: &[bool],
    scores: &[f64],
    sample_weight: Option<&[f64]>,
) -> Result<f64> {
    average_precision_ranked(&Ranked::new(y_true, scores, sample_weight)?)
}

/// [`average_precision`] of scores already validated and sorted.
pub(crate) fn average_precision_ranked(ranked: &Ranked) -> Result<f64> {
    let p = ranked.positives();
    need_positives("average_precision", p)?;
    let (mut prev_tp, mut sum) = (0.0f64, 0.0f64);
    ranked.walk(|_, tp, fp| {
        sum += (tp - prev_tp) * precision(tp, fp);
        prev_tp = tp;
    });
    Ok((sum / p).max(0.0))
}

/// Trapezoid area under the precision–recall curve, as scikit-learn's
/// `auc(recall, precision)` on `precision_recall_curve`'s output.
///
/// # Errors
/// Invalid input, or [`MetricsError::Undefined`] with no positive sample.
pub fn pr_auc(y_true: &[bool], scores: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    pr_auc_ranked(&Ranked::new(y_true, scores, sample_weight)?)
}

/// [`pr_auc`] of scores already validated and sorted.
pub(crate) fn pr_auc_ranked(ranked: &Ranked) -> Result<f64> {
    let p = ranked.positives();
    need_positives("pr_auc", p)?;
    let (mut prev_r, mut prev_p, mut area) = (0.0f64, 1.0f64, 0.0f64);
    ranked.walk(|_, tp, fp| {
        let (r, pr) = (tp / p, precision(tp, fp));
        area += (r - prev_r) * (pr + prev_p) / 2.0;
        prev_r = r;
        prev_p = pr;
    });
    Ok(area)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example() {
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        let c = precision_recall_curve(&y, &s, None).unwrap();
        assert_eq!(c.precision, vec![0.5, 2.0 / 3.0, 0.5, 1.0, 1.0]);
        assert_eq!(c.recall, vec![1.0, 1.0, 0.5, 0.5, 0.0]);
        assert_eq!(c.thresholds, vec![0.1, 0.35, 0.4, 0.8]);
        let ap = average_precision(&y, &s, None).unwrap();
        assert!((ap - (0.5 * 1.0 + 0.5 * 2.0 / 3.0)).abs() < 1e-15);
        let area = pr_auc(&y, &s, None).unwrap();
        let direct = crate::trapezoid::auc(&c.recall, &c.precision).unwrap();
        assert!((area - direct).abs() < 1e-15);
    }

    #[test]
    fn no_positive_is_undefined() {
        assert!(average_precision(&[false, false], &[0.1, 0.2], None)
            .unwrap_err()
            .is_undefined());
        assert!(pr_auc(&[false], &[0.1], None).unwrap_err().is_undefined());
    }

    #[test]
    fn no_negative_is_perfect() {
        assert_eq!(
            average_precision(&[true, true], &[0.1, 0.2], None).unwrap(),
            1.0
        );
    }
}
