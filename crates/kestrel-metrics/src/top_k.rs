//! Top-k accuracy of class scores.

use crate::label::to_indices;
use crate::validate;
use crate::{MetricsError, Result};

/// Fraction (weighted) of samples whose true class is among the `k` highest
/// scores, as scikit-learn's `top_k_accuracy_score` with
/// `labels = 0..n_classes`.
///
/// `scores` is row-major, `y_true.len() × n_classes`. Ties follow
/// scikit-learn: among equal scores the *higher* class index ranks first (so
/// with k = 1 a tie can differ from [`crate::argmax`], where the lowest index
/// wins). `k >= n_classes` gives 1.
///
/// # Errors
/// Empty input, shape mismatch, non-finite scores, a label out of range,
/// `k == 0`, invalid weights, or all weights zero.
pub fn top_k_accuracy<L: crate::Label>(
    y_true: &[L],
    scores: &[f64],
    n_classes: usize,
    k: usize,
    sample_weight: Option<&[f64]>,
) -> Result<f64> {
    validate::non_empty("y_true", y_true)?;
    validate::matrix("scores", scores, y_true.len(), n_classes)?;
    validate::finite("scores", scores)?;
    validate::weights(sample_weight, y_true.len())?;
    if k == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "k",
            value: "0".into(),
            expected: "k >= 1",
        });
    }
    let y = to_indices("y_true", y_true, n_classes)?;
    let (mut hit, mut total) = (0.0f64, 0.0f64);
    for (i, (row, &t)) in scores.chunks_exact(n_classes).zip(&y).enumerate() {
        let st = row[t];
        // Classes ranked above the true one: strictly higher score, or equal
        // score with a higher index.
        let above = row
            .iter()
            .enumerate()
            .filter(|&(j, &s)| s > st || (s == st && j > t))
            .count();
        let w = sample_weight.map_or(1.0, |w| w[i]);
        if above < k {
            hit += w;
        }
        total += w;
    }
    if total <= 0.0 {
        return Err(MetricsError::undefined(
            "top_k_accuracy",
            "every sample weight is zero",
        ));
    }
    Ok(hit / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_ties() {
        let s = [0.5, 0.3, 0.2, 0.1, 0.6, 0.3, 0.4, 0.4, 0.2];
        assert_eq!(
            top_k_accuracy(&[0u8, 2, 0], &s, 3, 1, None).unwrap(),
            1.0 / 3.0
        );
        assert_eq!(top_k_accuracy(&[0u8, 2, 0], &s, 3, 2, None).unwrap(), 1.0);
        // Third row: classes 0 and 1 tie; class 1 ranks first.
        assert_eq!(top_k_accuracy(&[1u8], &s[6..], 3, 1, None).unwrap(), 1.0);
        assert_eq!(top_k_accuracy(&[1u8], &s[6..], 3, 5, None).unwrap(), 1.0);
        assert!(top_k_accuracy(&[1u8], &s[6..], 3, 0, None).is_err());
        assert!(top_k_accuracy(&[3u8], &s[6..], 3, 1, None).is_err());
        assert!(top_k_accuracy(&[1u8], &s[5..], 3, 1, None).is_err());
    }
}
