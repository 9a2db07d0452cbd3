//! Input checks shared by the metric functions.

use crate::{MetricsError, Result};

/// Checks that `got` equals `expected`.
pub(crate) fn same_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Checks that a slice is not empty.
pub(crate) fn non_empty<T>(what: &'static str, v: &[T]) -> Result<()> {
    if v.is_empty() {
        Err(MetricsError::Empty { what })
    } else {
        Ok(())
    }
}

/// Checks that every value is finite.
pub(crate) fn finite(what: &'static str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(MetricsError::NonFinite {
            what,
            index,
            value: v[index],
        }),
    }
}

/// Checks optional sample weights: right length, finite, non-negative.
pub(crate) fn weights(w: Option<&[f64]>, n: usize) -> Result<()> {
    if let Some(w) = w {
        same_len("sample_weight", n, w.len())?;
        if let Some(index) = w.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(MetricsError::InvalidWeight {
                index,
                value: w[index],
            });
        }
    }
    Ok(())
}

/// Checks that every value is a probability in `[0, 1]`.
pub(crate) fn probabilities(what: &'static str, v: &[f64]) -> Result<()> {
    finite(what, v)?;
    match v.iter().position(|x| !(0.0..=1.0).contains(x)) {
        None => Ok(()),
        Some(index) => Err(MetricsError::NotAProbability {
            what,
            index,
            value: v[index],
        }),
    }
}

/// Checks that a row-major score matrix has `n_rows * n_classes` entries.
pub(crate) fn matrix(what: &'static str, v: &[f64], n_rows: usize, n_classes: usize) -> Result<()> {
    if n_classes == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "n_classes",
            value: "0".into(),
            expected: "at least 1",
        });
    }
    same_len(what, n_rows * n_classes, v.len())
}

/// scikit-learn's `np.allclose(1, row.sum())` for every row.
pub(crate) fn rows_sum_to_one(probs: &[f64], n_classes: usize) -> Result<()> {
    for (row, r) in probs.chunks_exact(n_classes).enumerate() {
        let sum: f64 = r.iter().sum();
        let close = (sum - 1.0).abs() <= 1e-8 + 1e-5 * sum.abs();
        if !close {
            return Err(MetricsError::RowSumNotOne { row, sum });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(same_len("a", 2, 2).is_ok());
        assert!(non_empty::<f64>("a", &[]).is_err());
        assert!(finite("s", &[1.0, f64::NAN]).is_err());
        assert!(finite("s", &[1.0, f64::NEG_INFINITY]).is_err());
        assert!(weights(Some(&[1.0, -0.5]), 2).is_err());
        assert!(weights(Some(&[1.0]), 2).is_err());
        assert!(weights(Some(&[1.0, 0.0]), 2).is_ok());
        assert!(probabilities("p", &[0.0, 1.0, 1.5]).is_err());
        assert!(matrix("p", &[0.0; 6], 2, 3).is_ok());
        assert!(matrix("p", &[0.0; 6], 2, 0).is_err());
        assert!(rows_sum_to_one(&[0.2, 0.8, 0.5, 0.5], 2).is_ok());
        assert!(rows_sum_to_one(&[0.2, 0.7, 0.5, 0.5], 2).is_err());
    }
}
