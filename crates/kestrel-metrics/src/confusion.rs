//! The confusion matrix: rows are true classes, columns predicted classes, as
//! scikit-learn's `confusion_matrix` with `labels = 0..n_classes`.

use crate::label::{checked_index, Label};
use crate::validate;
use crate::{MetricsError, Result};

/// The largest count an `f64` holds exactly together with every count below it: 2⁵³.
const MAX_EXACT_COUNT: u64 = 1 << 53;

/// A square confusion matrix of (weighted) counts. Cell `(t, p)` holds the
/// weight of samples of true class `t` predicted as class `p`.
///
/// Unweighted counts are exact integers (an `f64` holds every integer up to
/// 2⁵³), so merging partial matrices gives exactly the one-pass result.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    n_classes: usize,
    cells: Vec<f64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `n_classes` classes (at least one).
    pub fn new(n_classes: usize) -> Result<Self> {
        if n_classes == 0 {
            return Err(MetricsError::InvalidParameter {
                name: "n_classes",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        let cells =
            n_classes
                .checked_mul(n_classes)
                .ok_or_else(|| MetricsError::InvalidParameter {
                    name: "n_classes",
                    value: n_classes.to_string(),
                    expected: "a class count whose square fits in memory addresses",
                })?;
        Ok(Self {
            n_classes,
            cells: vec![0.0; cells],
        })
    }

    /// Builds the matrix from true and predicted labels with optional
    /// non-negative sample weights.
    ///
    /// # Errors
    /// Length mismatch, a label outside `0..n_classes`, or an invalid weight.
    pub fn from_labels<L: Label>(
        y_true: &[L],
        y_pred: &[L],
        n_classes: usize,
        sample_weight: Option<&[f64]>,
    ) -> Result<Self> {
        let mut m = Self::new(n_classes)?;
        m.update(y_true, y_pred, sample_weight)?;
        Ok(m)
    }

    /// Adds a batch of samples. On error the matrix is left unchanged.
    ///
    /// # Errors
    /// Length mismatch, a label outside `0..n_classes`, or an invalid weight.
    pub fn update<L: Label>(
        &mut self,
        y_true: &[L],
        y_pred: &[L],
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        validate::same_len("y_pred", y_true.len(), y_pred.len())?;
        validate::weights(sample_weight, y_true.len())?;
        let k = self.n_classes;
        match sample_weight {
            None => {
                let mut counts = vec![0u64; k * k];
                for (i, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
                    let t = checked_index("y_true", i, t, k)?;
                    let p = checked_index("y_pred", i, p, k)?;
                    counts[t * k + p] += 1;
                }
                self.add_counts(&counts);
            }
            Some(w) => {
                let mut idx = Vec::with_capacity(y_true.len());
                for (i, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
                    let t = checked_index("y_true", i, t, k)?;
                    let p = checked_index("y_pred", i, p, k)?;
                    idx.push(t * k + p);
                }
                for (c, w) in idx.into_iter().zip(w) {
                    self.cells[c] += w;
                }
            }
        }
        Ok(())
    }

    /// Adds a batch of unweighted samples, skipping those whose *true* label
    /// equals `ignore_index` (e.g. 255 in segmentation masks). On error the
    /// matrix is left unchanged.
    ///
    /// # Errors
    /// Length mismatch or a label (other than an ignored one) outside
    /// `0..n_classes`.
    pub fn update_ignoring<L: Label>(
        &mut self,
        y_true: &[L],
        y_pred: &[L],
        ignore_index: u64,
    ) -> Result<()> {
        validate::same_len("y_pred", y_true.len(), y_pred.len())?;
        let k = self.n_classes;
        let mut counts = vec![0u64; k * k];
        for (i, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
            if t.to_index() == Some(ignore_index) {
                continue;
            }
            let t = checked_index("y_true", i, t, k)?;
            let p = checked_index("y_pred", i, p, k)?;
            counts[t * k + p] += 1;
        }
        self.add_counts(&counts);
        Ok(())
    }

    fn add_counts(&mut self, counts: &[u64]) {
        for (c, &n) in self.cells.iter_mut().zip(counts) {
            *c += n as f64;
        }
    }

    /// Adds one sample of weight `weight` (no validation beyond the bounds).
    ///
    /// # Errors
    /// A class outside `0..n_classes`, or an invalid weight.
    pub fn add(&mut self, true_class: usize, pred_class: usize, weight: f64) -> Result<()> {
        let k = self.n_classes;
        checked_index("true_class", 0, true_class, k)?;
        checked_index("pred_class", 0, pred_class, k)?;
        validate::weights(Some(&[weight]), 1)?;
        self.cells[true_class * k + pred_class] += weight;
        Ok(())
    }

    /// Adds another matrix of the same size (data-parallel evaluation).
    ///
    /// # Errors
    /// [`MetricsError::IncompatibleMerge`] when the class counts differ.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if other.n_classes != self.n_classes {
            return Err(MetricsError::IncompatibleMerge {
                reason: format!(
                    "{} classes against {} classes",
                    self.n_classes, other.n_classes
                ),
            });
        }
        for (a, b) in self.cells.iter_mut().zip(&other.cells) {
            *a += b;
        }
        Ok(())
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The cell for true class `t` and predicted class `p` (0 when out of range).
    pub fn get(&self, t: usize, p: usize) -> f64 {
        if t < self.n_classes && p < self.n_classes {
            self.cells[t * self.n_classes + p]
        } else {
            0.0
        }
    }

    /// The matrix as rows (one per true class).
    pub fn rows(&self) -> Vec<Vec<f64>> {
        self.cells
            .chunks_exact(self.n_classes)
            .map(|r| r.to_vec())
            .collect()
    }

    /// The matrix as integer counts, or `None` if a cell is not a whole
    /// number (weighted input).
    pub fn counts(&self) -> Option<Vec<Vec<u64>>> {
        if self
            .cells
            .iter()
            .all(|&c| c >= 0.0 && c.fract() == 0.0 && c <= MAX_EXACT_COUNT as f64)
        {
            Some(
                self.cells
                    .chunks_exact(self.n_classes)
                    .map(|r| r.iter().map(|&c| c as u64).collect())
                    .collect(),
            )
        } else {
            None
        }
    }

    /// A matrix of whole counts, one row per true class (the inverse of
    /// [`ConfusionMatrix::counts`]), as the accumulators' serialised form holds it.
    ///
    /// # Errors
    /// No rows, a row whose length is not the number of rows, or a count past
    /// 2⁵³ (not exact in an `f64`).
    pub(crate) fn from_counts(rows: &[Vec<u64>]) -> Result<Self> {
        // Every row is checked before the k × k matrix is allocated: a short file of k empty
        // rows must not ask for k² cells.
        for row in rows {
            validate::same_len("confusion row", rows.len(), row.len())?;
            if let Some(&c) = row.iter().find(|&&c| c > MAX_EXACT_COUNT) {
                return Err(MetricsError::InvalidParameter {
                    name: "confusion count",
                    value: c.to_string(),
                    expected: "at most 2^53",
                });
            }
        }
        let mut m = Self::new(rows.len())?;
        let flat: Vec<u64> = rows.concat();
        m.add_counts(&flat);
        Ok(m)
    }

    /// Total weight of all samples.
    pub fn total(&self) -> f64 {
        self.cells.iter().sum()
    }

    /// Weight of samples whose true class is `class` (row sum).
    pub fn support(&self, class: usize) -> f64 {
        (0..self.n_classes).map(|p| self.get(class, p)).sum()
    }

    /// Weight of samples predicted as `class` (column sum).
    pub fn predicted(&self, class: usize) -> f64 {
        (0..self.n_classes).map(|t| self.get(t, class)).sum()
    }

    /// Weight of correctly classified samples of `class` (diagonal cell).
    pub fn true_positives(&self, class: usize) -> f64 {
        self.get(class, class)
    }

    /// Fraction of correctly classified weight, `None` for an empty matrix.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        if total > 0.0 {
            Some((0..self.n_classes).map(|c| self.get(c, c)).sum::<f64>() / total)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_true_columns_predicted() {
        let m =
            ConfusionMatrix::from_labels(&[0u8, 0, 1, 2, 2], &[0, 1, 1, 2, 0], 3, None).unwrap();
        assert_eq!(
            m.counts().unwrap(),
            vec![vec![1, 1, 0], vec![0, 1, 0], vec![1, 0, 1]]
        );
        assert_eq!(m.support(0), 2.0);
        assert_eq!(m.predicted(0), 2.0);
        assert_eq!(m.accuracy(), Some(0.6));
    }

    #[test]
    fn errors_leave_the_matrix_unchanged() {
        let mut m = ConfusionMatrix::new(2).unwrap();
        assert!(m.update(&[0i32, 1], &[0, 2], None).is_err());
        assert!(m.update(&[0i32, -1], &[0, 1], None).is_err());
        assert!(m.update(&[0i32, 1], &[0], None).is_err());
        assert!(m
            .update(&[0i32, 1], &[0, 1], Some(&[1.0, f64::NAN]))
            .is_err());
        assert_eq!(m.total(), 0.0);
        assert_eq!(m.accuracy(), None);
        assert!(ConfusionMatrix::new(0).is_err());
        // k² past usize: refused, not wrapped round to a small buffer.
        let e = ConfusionMatrix::new(1 << 33).unwrap_err().to_string();
        assert!(e.contains("invalid n_classes = 8589934592"), "{e}");
    }

    #[test]
    fn weights_and_merge() {
        let mut a = ConfusionMatrix::from_labels(&[0u8, 1], &[1, 1], 2, Some(&[0.5, 2.0])).unwrap();
        assert_eq!(a.rows(), vec![vec![0.0, 0.5], vec![0.0, 2.0]]);
        assert!(a.counts().is_none());
        let b = ConfusionMatrix::from_labels(&[0u8], &[0], 2, None).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.get(0, 0), 1.0);
        assert!(a.merge(&ConfusionMatrix::new(3).unwrap()).is_err());
    }

    #[test]
    fn ignore_index() {
        let mut m = ConfusionMatrix::new(2).unwrap();
        m.update_ignoring(&[0u8, 255, 1, 255], &[0, 1, 0, 7], 255)
            .unwrap();
        assert_eq!(m.counts().unwrap(), vec![vec![1, 0], vec![1, 0]]);
        assert!(m.update_ignoring(&[0u8], &[255], 255).is_err());
    }

    /// A million empty rows (a few megabytes of JSON) are refused before anything of size 10¹²
    /// is allocated; a square matrix reads back.
    #[test]
    fn counts_are_checked_before_the_matrix_is_allocated() {
        let rows = vec![Vec::new(); 1_000_000];
        assert!(ConfusionMatrix::from_counts(&rows).is_err());
        let m = ConfusionMatrix::from_counts(&[vec![1, 2], vec![0, 3]]).unwrap();
        assert_eq!(m.counts().unwrap(), vec![vec![1, 2], vec![0, 3]]);
    }
}
