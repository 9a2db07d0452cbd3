//! Receiver operating characteristic: the ROC curve and ROC-AUC.

use crate::curve::{BinaryCurve, Ranked};
use crate::{MetricsError, Result};

/// A ROC curve in scikit-learn's layout: it starts at `(0, 0)` with threshold
/// `+inf`, then one point per kept threshold, in decreasing threshold order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RocCurve {
    /// False-positive rate at each point.
    pub fpr: Vec<f64>,
    /// True-positive rate at each point.
    pub tpr: Vec<f64>,
    /// Score threshold at each point (`thresholds[0]` is `+inf`).
    pub thresholds: Vec<f64>,
}

fn need_both_classes(metric: &'static str, positives: f64, negatives: f64) -> Result<()> {
    if positives <= 0.0 {
        return Err(MetricsError::undefined(
            metric,
            "y_true has no positive sample (only one class present)",
        ));
    }
    if negatives <= 0.0 {
        return Err(MetricsError::undefined(
            metric,
            "y_true has no negative sample (only one class present)",
        ));
    }
    Ok(())
}

impl RocCurve {
    /// Derives the ROC curve from the cumulative curve. With
    /// `drop_intermediate`, points that lie on a straight line between their
    /// neighbours are dropped (scikit-learn's default); the area is unchanged.
    ///
    /// # Errors
    /// [`MetricsError::Undefined`] when there are no positives or no negatives.
    pub fn from_curve(curve: &BinaryCurve, drop_intermediate: bool) -> Result<Self> {
        let (p, n) = (curve.positives(), curve.negatives());
        need_both_classes("roc_curve", p, n)?;
        let (tps, fps, th) = (curve.tps(), curve.fps(), curve.thresholds());
        let m = tps.len();
        let keep = |i: usize| -> bool {
            if !drop_intermediate || m <= 2 || i == 0 || i + 1 == m {
                return true;
            }
            let d2 = |v: &[f64]| (v[i + 1] - v[i]) - (v[i] - v[i - 1]);
            d2(fps) != 0.0 || d2(tps) != 0.0
        };
        let mut out = RocCurve {
            fpr: vec![0.0],
            tpr: vec![0.0],
            thresholds: vec![f64::INFINITY],
        };
        for i in (0..m).filter(|&i| keep(i)) {
            out.fpr.push(fps[i] / n);
            out.tpr.push(tps[i] / p);
            out.thresholds.push(th[i]);
        }
        Ok(out)
    }
}

/// The ROC curve of binary scores (`y_true[i]` true for positives), as
/// scikit-learn's `roc_curve`.
///
/// # Errors
/// Invalid input (see [`BinaryCurve::new`]) or a single class.
pub fn roc_curve(
    y_true: &[bool],
    scores: &[f64],
    sample_weight: Option<&[f64]>,
    drop_intermediate: bool,
) -> Result<RocCurve> {
    RocCurve::from_curve(
        &BinaryCurve::new(y_true, scores, sample_weight)?,
        drop_intermediate,
    )
}

/// Area under the ROC curve by the trapezoid rule, as scikit-learn's
/// `roc_auc_score` for binary input. Tied scores count one half, so this is
/// the Mann–Whitney U statistic divided by `P·N`.
///
/// The scores are sorted as integer keys (positives and negatives in
/// parallel for large inputs); nothing but the sorted keys is stored.
///
/// # Errors
/// Invalid input (see [`BinaryCurve::new`]), or [`MetricsError::Undefined`]
/// when only one class is present (scikit-learn warns and returns NaN).
pub fn roc_auc(y_true: &[bool], scores: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    roc_auc_ranked(&Ranked::new(y_true, scores, sample_weight)?)
}

/// [`roc_auc`] of scores already validated and sorted.
pub(crate) fn roc_auc_ranked(ranked: &Ranked) -> Result<f64> {
    let (p, n) = (ranked.positives(), ranked.negatives());
    need_both_classes("roc_auc", p, n)?;
    let (mut prev_tp, mut prev_fp, mut area) = (0.0f64, 0.0f64, 0.0f64);
    ranked.walk(|_, tp, fp| {
        area += (fp - prev_fp) * (tp + prev_tp);
        prev_tp = tp;
        prev_fp = fp;
    });
    Ok(area / 2.0 / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example() {
        // scikit-learn's documented example: y = [1, 1, 2, 2] with pos_label 2.
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        let r = roc_curve(&y, &s, None, true).unwrap();
        assert_eq!(r.fpr, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(r.tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(r.thresholds[1..], [0.8, 0.4, 0.35, 0.1]);
        assert!(r.thresholds[0].is_infinite());
        assert_eq!(roc_auc(&y, &s, None).unwrap(), 0.75);
    }

    #[test]
    fn collinear_points_are_dropped() {
        let y = [true, true, true, false, false, false];
        let s = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1];
        let r = roc_curve(&y, &s, None, true).unwrap();
        assert_eq!(r.fpr, vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(r.tpr, vec![0.0, 1.0 / 3.0, 1.0, 1.0]);
        let full = roc_curve(&y, &s, None, false).unwrap();
        assert_eq!(full.fpr.len(), 7);
        assert_eq!(roc_auc(&y, &s, None).unwrap(), 1.0);
    }

    #[test]
    fn one_class_is_undefined() {
        let e = roc_auc(&[true, true], &[0.1, 0.2], None).unwrap_err();
        assert!(e.is_undefined(), "{e}");
        assert!(roc_curve(&[false, false], &[0.1, 0.2], None, true)
            .unwrap_err()
            .is_undefined());
    }

    #[test]
    fn all_tied_is_one_half() {
        let y = [true, false, true, false, false];
        assert_eq!(roc_auc(&y, &[0.3; 5], None).unwrap(), 0.5);
    }
}
