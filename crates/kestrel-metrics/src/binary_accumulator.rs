//! Exact streaming of binary ranking metrics (ROC, PR, AUC, AP).

use crate::curve::{BinaryCurve, Ranked};
use crate::pr::{average_precision_ranked, pr_auc_ranked, PrCurve};
use crate::roc::{roc_auc_ranked, RocCurve};
use crate::validate;
use crate::Result;

/// Collects binary labels and scores batch by batch; partial accumulators
/// (one per data-parallel worker) merge by concatenation. Nothing is binned:
/// the metrics are computed on the exact scores, and an accumulator fed in
/// batches, or merged from parts in order, gives bit-for-bit the result of
/// one pass over the concatenated data.
#[derive(Debug, Clone, Default)]
pub struct BinaryAccumulator {
    y_true: Vec<bool>,
    scores: Vec<f64>,
    weights: Option<Vec<f64>>,
}

impl BinaryAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a batch of unweighted samples. On error nothing is added.
    ///
    /// # Errors
    /// Length mismatch or a non-finite score.
    pub fn update(&mut self, y_true: &[bool], scores: &[f64]) -> Result<()> {
        validate::same_len("scores", y_true.len(), scores.len())?;
        validate::finite("scores", scores)?;
        if let Some(w) = &mut self.weights {
            w.extend(std::iter::repeat_n(1.0, y_true.len()));
        }
        self.y_true.extend_from_slice(y_true);
        self.scores.extend_from_slice(scores);
        Ok(())
    }

    /// Adds a batch of weighted samples. On error nothing is added.
    ///
    /// # Errors
    /// Length mismatch, a non-finite score or an invalid weight.
    pub fn update_weighted(
        &mut self,
        y_true: &[bool],
        scores: &[f64],
        weights: &[f64],
    ) -> Result<()> {
        validate::same_len("scores", y_true.len(), scores.len())?;
        validate::finite("scores", scores)?;
        validate::weights(Some(weights), y_true.len())?;
        let n = self.y_true.len();
        self.weights
            .get_or_insert_with(|| vec![1.0; n])
            .extend_from_slice(weights);
        self.y_true.extend_from_slice(y_true);
        self.scores.extend_from_slice(scores);
        Ok(())
    }

    /// Appends another accumulator's samples after this one's.
    pub fn merge(&mut self, other: &Self) {
        match (&mut self.weights, &other.weights) {
            (Some(w), Some(o)) => w.extend_from_slice(o),
            (Some(w), None) => w.extend(std::iter::repeat_n(1.0, other.len())),
            (None, Some(o)) => {
                let mut w = vec![1.0; self.len()];
                w.extend_from_slice(o);
                self.weights = Some(w);
            }
            (None, None) => {}
        }
        self.y_true.extend_from_slice(&other.y_true);
        self.scores.extend_from_slice(&other.scores);
    }

    /// Number of samples seen.
    pub fn len(&self) -> usize {
        self.y_true.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.y_true.is_empty()
    }

    fn ranked(&self) -> Result<Ranked> {
        Ranked::new(&self.y_true, &self.scores, self.weights.as_deref())
    }

    /// The cumulative curve of everything seen.
    ///
    /// # Errors
    /// As [`BinaryCurve::new`].
    pub fn curve(&self) -> Result<BinaryCurve> {
        BinaryCurve::new(&self.y_true, &self.scores, self.weights.as_deref())
    }

    /// ROC-AUC (see [`crate::roc::roc_auc`]).
    ///
    /// # Errors
    /// As [`crate::roc::roc_auc`].
    pub fn roc_auc(&self) -> Result<f64> {
        roc_auc_ranked(&self.ranked()?)
    }

    /// Average precision (see [`crate::pr::average_precision`]).
    ///
    /// # Errors
    /// As [`crate::pr::average_precision`].
    pub fn average_precision(&self) -> Result<f64> {
        average_precision_ranked(&self.ranked()?)
    }

    /// Trapezoid PR-AUC (see [`crate::pr::pr_auc`]).
    ///
    /// # Errors
    /// As [`crate::pr::pr_auc`].
    pub fn pr_auc(&self) -> Result<f64> {
        pr_auc_ranked(&self.ranked()?)
    }

    /// ROC curve (see [`crate::roc::roc_curve`]).
    ///
    /// # Errors
    /// As [`crate::roc::roc_curve`].
    pub fn roc_curve(&self, drop_intermediate: bool) -> Result<RocCurve> {
        RocCurve::from_curve(&self.curve()?, drop_intermediate)
    }

    /// PR curve (see [`crate::pr::precision_recall_curve`]).
    ///
    /// # Errors
    /// As [`crate::pr::precision_recall_curve`].
    pub fn pr_curve(&self) -> Result<PrCurve> {
        PrCurve::from_curve(&self.curve()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_equal_one_pass() {
        let y = [true, false, true, false, false, true];
        let s = [0.3, 0.3, 0.9, 0.1, 0.5, 0.5];
        let mut a = BinaryAccumulator::new();
        a.update(&y[..2], &s[..2]).unwrap();
        let mut b = BinaryAccumulator::new();
        b.update(&y[2..], &s[2..]).unwrap();
        a.merge(&b);
        let auc = crate::roc::roc_auc(&y, &s, None).unwrap();
        assert_eq!(a.roc_auc().unwrap(), auc);
        assert!(a.update(&[true], &[f64::NAN]).is_err());
        assert_eq!(a.len(), 6);
        let mut w = BinaryAccumulator::new();
        w.update(&y[..3], &s[..3]).unwrap();
        w.update_weighted(&y[3..], &s[3..], &[1.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(w.roc_auc().unwrap(), auc);
        assert!(BinaryAccumulator::new().roc_auc().is_err());
    }
}
