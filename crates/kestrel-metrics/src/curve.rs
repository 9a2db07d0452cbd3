//! The core of every ranking metric: cumulative true and false positives at
//! each distinct score, from the highest score down.
//!
//! Samples that share a score move together: the curve has one point per
//! distinct score value (a threshold), so ties are counted as scikit-learn's
//! `confusion_matrix_at_thresholds` (formerly `_binary_clf_curve`) counts them.
//! Zero-weight samples are dropped first, as scikit-learn does. Sums are in
//! `f64` and follow the same order as scikit-learn (descending score, ties in
//! input order), so weighted sums agree to the last bit.
//!
//! ROC and PR curves, ROC-AUC, average precision and PR-AUC all derive from
//! this walk ([`crate::roc`], [`crate::pr`]); the fast scalar metrics fold the
//! walk without storing the curve.

use crate::sort::{descending_key, from_descending_key};
use crate::validate;
use crate::{MetricsError, Result};

/// From this many samples on, the two classes are sorted in parallel.
const PARALLEL_MIN: usize = 1 << 16;

/// One sorted sample: its descending-order key and its weight.
trait Entry: Copy {
    fn key(&self) -> u64;
    fn weight(&self) -> f64;
}

impl Entry for u64 {
    #[inline]
    fn key(&self) -> u64 {
        *self
    }
    #[inline]
    fn weight(&self) -> f64 {
        1.0
    }
}

impl Entry for (u64, f64) {
    #[inline]
    fn key(&self) -> u64 {
        self.0
    }
    #[inline]
    fn weight(&self) -> f64 {
        self.1
    }
}

/// Scores split into positives and negatives, each sorted by descending score
/// (weighted samples stably, so tied samples keep their input order).
pub(crate) enum Ranked {
    /// Every sample has weight one.
    Unweighted { pos: Vec<u64>, neg: Vec<u64> },
    /// Explicit (non-zero) weights.
    Weighted {
        pos: Vec<(u64, f64)>,
        neg: Vec<(u64, f64)>,
    },
}

/// Sorts both classes with `sort`, in parallel for large inputs.
fn sort_pair<T: Send>(pos: &mut [T], neg: &mut [T], sort: fn(&mut [T])) {
    if pos.len() + neg.len() >= PARALLEL_MIN {
        rayon::join(|| sort(pos), || sort(neg));
    } else {
        sort(pos);
        sort(neg);
    }
}

impl Ranked {
    /// Validates the inputs, drops zero-weight samples and sorts.
    pub(crate) fn new(y_true: &[bool], scores: &[f64], weights: Option<&[f64]>) -> Result<Self> {
        validate::non_empty("y_true", y_true)?;
        validate::same_len("scores", y_true.len(), scores.len())?;
        validate::finite("scores", scores)?;
        validate::weights(weights, y_true.len())?;
        match weights {
            None => {
                // Branch-free split (labels are often random, so a branch
                // would mispredict half the time): every key is written to
                // both arrays and only the matching cursor advances; each
                // array has one spare slot for the last discarded write.
                let n_pos = y_true.iter().filter(|&&y| y).count();
                let mut pos = vec![0u64; n_pos + 1];
                let mut neg = vec![0u64; y_true.len() - n_pos + 1];
                let (mut i, mut j) = (0usize, 0usize);
                for (&y, &s) in y_true.iter().zip(scores) {
                    let k = descending_key(s);
                    pos[i] = k;
                    neg[j] = k;
                    i += usize::from(y);
                    j += usize::from(!y);
                }
                pos.truncate(n_pos);
                neg.truncate(y_true.len() - n_pos);
                // Equal keys are indistinguishable, so an unstable sort is exact.
                sort_pair(&mut pos, &mut neg, <[u64]>::sort_unstable);
                Ok(Ranked::Unweighted { pos, neg })
            }
            Some(w) => {
                let mut pos = Vec::new();
                let mut neg = Vec::new();
                for ((&y, &s), &w) in y_true.iter().zip(scores).zip(w) {
                    if w == 0.0 {
                        continue;
                    }
                    if y {
                        pos.push((descending_key(s), w));
                    } else {
                        neg.push((descending_key(s), w));
                    }
                }
                if pos.is_empty() && neg.is_empty() {
                    return Err(MetricsError::undefined(
                        "ranking metrics",
                        "every sample weight is zero",
                    ));
                }
                // Stable: tied samples keep their input order, so weights are
                // summed in scikit-learn's order.
                sort_pair(&mut pos, &mut neg, |v| v.sort_by_key(|e| e.0));
                Ok(Ranked::Weighted { pos, neg })
            }
        }
    }

    /// Total weight of the positives, summed in the walk's order.
    pub(crate) fn positives(&self) -> f64 {
        match self {
            Ranked::Unweighted { pos, .. } => pos.len() as f64,
            Ranked::Weighted { pos, .. } => pos.iter().fold(0.0, |a, e| a + e.1),
        }
    }

    /// Total weight of the negatives, summed in the walk's order.
    pub(crate) fn negatives(&self) -> f64 {
        match self {
            Ranked::Unweighted { neg, .. } => neg.len() as f64,
            Ranked::Weighted { neg, .. } => neg.iter().fold(0.0, |a, e| a + e.1),
        }
    }

    /// Calls `f(threshold, tp, fp)` once per distinct score, highest first,
    /// with the cumulative weights of positives and negatives scoring at or
    /// above the threshold.
    pub(crate) fn walk(&self, f: impl FnMut(f64, f64, f64)) {
        match self {
            Ranked::Unweighted { pos, neg } => walk_sorted(pos, neg, f),
            Ranked::Weighted { pos, neg } => walk_sorted(pos, neg, f),
        }
    }
}

fn walk_sorted<T: Entry>(pos: &[T], neg: &[T], mut f: impl FnMut(f64, f64, f64)) {
    let (mut i, mut j) = (0usize, 0usize);
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    loop {
        let k = match (pos.get(i), neg.get(j)) {
            (Some(a), Some(b)) => a.key().min(b.key()),
            (Some(a), None) => a.key(),
            (None, Some(b)) => b.key(),
            (None, None) => break,
        };
        while let Some(e) = pos.get(i).filter(|e| e.key() == k) {
            tp += e.weight();
            i += 1;
        }
        while let Some(e) = neg.get(j).filter(|e| e.key() == k) {
            fp += e.weight();
            j += 1;
        }
        f(from_descending_key(k), tp, fp);
    }
}

/// The tie-aware cumulative true/false-positive curve, one point per distinct
/// score, highest threshold first.
///
/// `tps[i]` and `fps[i]` are the (weighted) numbers of positives and
/// negatives with a score `>= thresholds[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryCurve {
    thresholds: Vec<f64>,
    tps: Vec<f64>,
    fps: Vec<f64>,
}

impl BinaryCurve {
    /// Builds the curve. `y_true[i]` is true for a positive sample;
    /// `sample_weight`, if given, must be finite and non-negative (zero-weight
    /// samples are ignored).
    ///
    /// # Errors
    /// Empty input, length mismatch, a NaN or infinite score, an invalid
    /// weight, or all weights zero.
    pub fn new(y_true: &[bool], scores: &[f64], sample_weight: Option<&[f64]>) -> Result<Self> {
        let ranked = Ranked::new(y_true, scores, sample_weight)?;
        Ok(Self::from_ranked(&ranked))
    }

    /// The curve of scores already validated and sorted: one point per distinct threshold.
    pub(crate) fn from_ranked(ranked: &Ranked) -> Self {
        let mut c = BinaryCurve {
            thresholds: Vec::new(),
            tps: Vec::new(),
            fps: Vec::new(),
        };
        ranked.walk(|t, tp, fp| {
            c.thresholds.push(t);
            c.tps.push(tp);
            c.fps.push(fp);
        });
        c
    }

    /// Distinct scores, decreasing.
    pub fn thresholds(&self) -> &[f64] {
        &self.thresholds
    }

    /// Cumulative positive weight at each threshold.
    pub fn tps(&self) -> &[f64] {
        &self.tps
    }

    /// Cumulative negative weight at each threshold.
    pub fn fps(&self) -> &[f64] {
        &self.fps
    }

    /// Number of distinct thresholds (at least one).
    pub fn len(&self) -> usize {
        self.thresholds.len()
    }

    /// Always false: a curve has at least one point.
    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    /// Total positive weight.
    pub fn positives(&self) -> f64 {
        self.tps.last().copied().unwrap_or(0.0)
    }

    /// Total negative weight.
    pub fn negatives(&self) -> f64 {
        self.fps.last().copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_move_together() {
        let y = [true, false, true, false, true];
        let s = [0.9, 0.5, 0.5, 0.1, 0.5];
        let c = BinaryCurve::new(&y, &s, None).unwrap();
        assert_eq!(c.thresholds(), &[0.9, 0.5, 0.1]);
        assert_eq!(c.tps(), &[1.0, 3.0, 3.0]);
        assert_eq!(c.fps(), &[0.0, 1.0, 2.0]);
        assert_eq!(c.positives(), 3.0);
        assert_eq!(c.negatives(), 2.0);
    }

    #[test]
    fn zero_weights_are_dropped() {
        let y = [true, false, true];
        let s = [0.9, 0.5, 0.2];
        let c = BinaryCurve::new(&y, &s, Some(&[2.0, 0.0, 0.5])).unwrap();
        assert_eq!(c.thresholds(), &[0.9, 0.2]);
        assert_eq!(c.tps(), &[2.0, 2.5]);
        assert_eq!(c.fps(), &[0.0, 0.0]);
        assert!(BinaryCurve::new(&y, &s, Some(&[0.0; 3]))
            .unwrap_err()
            .is_undefined());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            BinaryCurve::new(&[], &[], None),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            BinaryCurve::new(&[true], &[0.1, 0.2], None),
            Err(MetricsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            BinaryCurve::new(&[true, false], &[0.1, f64::NAN], None),
            Err(MetricsError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            BinaryCurve::new(&[true, false], &[0.1, f64::INFINITY], None),
            Err(MetricsError::NonFinite { .. })
        ));
        assert!(matches!(
            BinaryCurve::new(&[true, false], &[0.1, 0.2], Some(&[1.0, -1.0])),
            Err(MetricsError::InvalidWeight { index: 1, .. })
        ));
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let c = BinaryCurve::new(&[true, false], &[-0.0, 0.0], None).unwrap();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn large_input_is_sorted_in_parallel() {
        let n = 100_000;
        let y: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let s: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 / 1000.0)
            .collect();
        let c = BinaryCurve::new(&y, &s, None).unwrap();
        assert_eq!(c.len(), 1000);
        assert!(c.thresholds().windows(2).all(|w| w[0] > w[1]));
        assert_eq!(c.positives(), y.iter().filter(|&&b| b).count() as f64);
        assert_eq!(c.positives() + c.negatives(), n as f64);
    }
}
