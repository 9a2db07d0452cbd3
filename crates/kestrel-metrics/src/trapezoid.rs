//! Area under a piecewise-linear curve by the trapezoid rule.

use crate::validate;
use crate::{MetricsError, Result};

/// Area under the curve through the points `(x[i], y[i])`, by the trapezoid
/// rule, as scikit-learn's `auc(x, y)`: `x` must be monotonic (either
/// direction); a decreasing `x` gives the same, positive, area as the
/// reversed curve.
///
/// # Errors
/// Fewer than two points, different lengths, non-finite values, or an `x`
/// that is not monotonic.
pub fn auc(x: &[f64], y: &[f64]) -> Result<f64> {
    validate::same_len("y", x.len(), y.len())?;
    if x.len() < 2 {
        return Err(MetricsError::InvalidParameter {
            name: "x",
            value: format!("{} point(s)", x.len()),
            expected: "at least 2 points",
        });
    }
    validate::finite("x", x)?;
    validate::finite("y", y)?;
    let increasing = x.windows(2).all(|w| w[1] >= w[0]);
    let decreasing = x.windows(2).all(|w| w[1] <= w[0]);
    if !increasing && !decreasing {
        return Err(MetricsError::InvalidParameter {
            name: "x",
            value: "a non-monotonic sequence".into(),
            expected: "monotonic x values",
        });
    }
    let area: f64 = x
        .windows(2)
        .zip(y.windows(2))
        .map(|(xs, ys)| (xs[1] - xs[0]) * (ys[1] + ys[0]) / 2.0)
        .sum();
    Ok(if increasing { area } else { -area })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas() {
        assert_eq!(auc(&[0.0, 1.0], &[0.0, 1.0]).unwrap(), 0.5);
        assert_eq!(auc(&[1.0, 0.5, 0.0], &[1.0, 1.0, 1.0]).unwrap(), 1.0);
        assert!(auc(&[0.0, 1.0, 0.5], &[0.0, 1.0, 1.0]).is_err());
        assert!(auc(&[0.0], &[0.0]).is_err());
        assert!(auc(&[0.0, 1.0], &[0.0]).is_err());
    }
}
