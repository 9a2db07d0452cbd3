//! Cross-entropy (log-loss) of predicted class probabilities.

use crate::label::to_indices;
use crate::validate;
use crate::{MetricsError, Result};

/// Mean negative log-likelihood of the true class, as scikit-learn's
/// `log_loss(y_true, probs, labels=range(n_classes))`: probabilities are
/// clipped to `[ε, 1 − ε]` with ε = `f64::EPSILON` and the mean is weighted
/// by `sample_weight`. Rows are *not* renormalised (scikit-learn only warns
/// when they do not sum to one).
///
/// # Errors
/// Empty input, shape mismatch, a value outside `[0, 1]` or non-finite, a
/// label out of range, fewer than two classes, invalid weights, or all
/// weights zero.
pub fn log_loss<L: crate::Label>(
    y_true: &[L],
    probs: &[f64],
    n_classes: usize,
    sample_weight: Option<&[f64]>,
) -> Result<f64> {
    validate::non_empty("y_true", y_true)?;
    if n_classes < 2 {
        return Err(MetricsError::InvalidParameter {
            name: "n_classes",
            value: n_classes.to_string(),
            expected: "at least 2 classes",
        });
    }
    validate::matrix("probs", probs, y_true.len(), n_classes)?;
    validate::probabilities("probs", probs)?;
    validate::weights(sample_weight, y_true.len())?;
    let y = to_indices("y_true", y_true, n_classes)?;
    let eps = f64::EPSILON;
    let (mut sum, mut total) = (0.0f64, 0.0f64);
    for (i, (row, &t)) in probs.chunks_exact(n_classes).zip(&y).enumerate() {
        let p = row[t].clamp(eps, 1.0 - eps);
        let w = sample_weight.map_or(1.0, |w| w[i]);
        sum += -p.ln() * w;
        total += w;
    }
    if total <= 0.0 {
        return Err(MetricsError::undefined(
            "log_loss",
            "every sample weight is zero",
        ));
    }
    Ok(sum / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let p = [0.9, 0.1, 0.2, 0.8];
        let l = log_loss(&[0u8, 1], &p, 2, None).unwrap();
        assert!((l - (-(0.9f64.ln()) - 0.8f64.ln()) / 2.0).abs() < 1e-15);
        // A certain, wrong prediction is clipped, not infinite.
        let l = log_loss(&[1u8], &[1.0, 0.0], 2, None).unwrap();
        assert!((l + f64::EPSILON.ln()).abs() < 1e-12);
        assert!(log_loss(&[1u8], &[1.5, -0.5], 2, None).is_err());
        assert!(log_loss(&[0u8], &[1.0], 1, None).is_err());
    }
}
