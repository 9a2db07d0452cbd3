//! Multiclass ROC-AUC, one class against the rest.

use crate::curve::Ranked;
use crate::label::to_indices;
use crate::roc::roc_auc_ranked;
use crate::validate;
use crate::Result;
use serde::Serialize;

/// One-vs-rest ROC-AUC of every class and their averages.
///
/// A class with no sample, or with every sample, has no AUC (`None`, where
/// scikit-learn returns NaN with a warning); the averages are then `None` too,
/// as NaN propagates through scikit-learn's averages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OvrAuc {
    /// AUC of class `c` (its probability column against `y_true == c`).
    pub per_class: Vec<Option<f64>>,
    /// Unweighted mean of the class AUCs.
    pub macro_avg: Option<f64>,
    /// Mean of the class AUCs weighted by class support (weighted by
    /// `sample_weight` when given).
    pub weighted_avg: Option<f64>,
}

/// One-vs-rest ROC-AUC, as scikit-learn's
/// `roc_auc_score(y_true, probs, multi_class="ovr", labels=range(n_classes))`
/// with `average="macro"` and `average="weighted"`.
///
/// `probs` is row-major, `y_true.len() × n_classes`; like scikit-learn, each
/// row must sum to one (`|sum − 1| <= 1e-8 + 1e-5·|sum|`).
///
/// # Errors
/// Empty input, shape mismatch, non-finite values, a label out of range,
/// a row that does not sum to one, or invalid weights.
pub fn roc_auc_ovr<L: crate::Label>(
    y_true: &[L],
    probs: &[f64],
    n_classes: usize,
    sample_weight: Option<&[f64]>,
) -> Result<OvrAuc> {
    validate::non_empty("y_true", y_true)?;
    validate::matrix("probs", probs, y_true.len(), n_classes)?;
    validate::finite("probs", probs)?;
    validate::weights(sample_weight, y_true.len())?;
    let y = to_indices("y_true", y_true, n_classes)?;
    validate::rows_sum_to_one(probs, n_classes)?;
    let mut per_class = Vec::with_capacity(n_classes);
    let mut support = vec![0.0f64; n_classes];
    for (i, &t) in y.iter().enumerate() {
        support[t] += sample_weight.map_or(1.0, |w| w[i]);
    }
    let mut column = vec![0.0f64; y.len()];
    let mut is_class = vec![false; y.len()];
    for c in 0..n_classes {
        for (i, row) in probs.chunks_exact(n_classes).enumerate() {
            column[i] = row[c];
            is_class[i] = y[i] == c;
        }
        let auc =
            match Ranked::new(&is_class, &column, sample_weight).and_then(|r| roc_auc_ranked(&r)) {
                Ok(a) => Some(a),
                Err(e) if e.is_undefined() => None,
                Err(e) => return Err(e),
            };
        per_class.push(auc);
    }
    let all: Option<Vec<f64>> = per_class.iter().copied().collect();
    let (macro_avg, weighted_avg) = match all {
        Some(a) => {
            let m = a.iter().sum::<f64>() / n_classes as f64;
            let wsum: f64 = support.iter().sum();
            let w = a.iter().zip(&support).map(|(x, s)| x * s).sum::<f64>() / wsum;
            (Some(m), Some(w))
        }
        None => (None, None),
    };
    Ok(OvrAuc {
        per_class,
        macro_avg,
        weighted_avg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_classes() {
        let y = [0u8, 1, 2, 2];
        let p = [
            0.8, 0.1, 0.1, //
            0.2, 0.7, 0.1, //
            0.1, 0.2, 0.7, //
            0.5, 0.2, 0.3,
        ];
        let r = roc_auc_ovr(&y, &p, 3, None).unwrap();
        assert_eq!(r.per_class, vec![Some(1.0), Some(1.0), Some(1.0)]);
        assert_eq!(r.macro_avg, Some(1.0));
        // Missing class: undefined, not an error.
        let r = roc_auc_ovr(&[0u8, 1, 1, 1], &p, 3, None).unwrap();
        assert_eq!(r.per_class[2], None);
        assert_eq!(r.macro_avg, None);
        // Rows must be probabilities.
        let mut bad = p;
        bad[0] = 0.9;
        assert!(roc_auc_ovr(&y, &bad, 3, None).is_err());
    }
}
