//! Streaming classification metrics for the training loop and `kestrel eval`.

use crate::class_metrics::{class_rows, index_names, ClassMetrics};
use crate::classification::{averaged_scores, Average};
use crate::confusion::ConfusionMatrix;
use crate::label::to_indices;
use crate::ovr::roc_auc_ovr;
use crate::predict::argmax;
use crate::{MetricsError, Result};
use serde::Serialize;

/// Classification scores of an evaluation, serialised with the field names of
/// `kestrel eval`'s JSON (the CLI adds `split`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationSummary {
    /// Fraction of samples whose argmax prediction is right.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores (zero division counts 0).
    pub macro_f1: f64,
    /// Precision, recall, F1 and support per class.
    pub per_class: Vec<ClassMetrics>,
    /// Macro one-vs-rest ROC-AUC; `null` when a class has no sample (or every
    /// sample), when rows are not probabilities, or when scores were not kept.
    pub roc_auc_ovr_macro: Option<f64>,
    /// Confusion matrix: a row per true class, a column per predicted class.
    pub confusion: Vec<Vec<u64>>,
    /// Human-readable notes on undefined values (not serialised).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Accumulates `(labels, probability rows)` batches. The prediction is the
/// argmax of each row (lowest index wins ties). Probabilities are kept (as
/// `f64`) for the exact one-vs-rest ROC-AUC unless built with
/// [`ClassificationAccumulator::without_roc_auc`]; memory is then
/// `8 · n_samples · n_classes` bytes.
///
/// Partial accumulators merge exactly: counts add, kept scores concatenate.
#[derive(Debug, Clone)]
pub struct ClassificationAccumulator {
    n_classes: usize,
    class_names: Vec<String>,
    confusion: ConfusionMatrix,
    labels: Vec<usize>,
    probs: Option<Vec<f64>>,
}

impl ClassificationAccumulator {
    /// An empty accumulator for `n_classes` classes named "0", "1", ...
    ///
    /// # Errors
    /// `n_classes == 0`.
    pub fn new(n_classes: usize) -> Result<Self> {
        Ok(Self {
            n_classes,
            class_names: index_names(n_classes),
            confusion: ConfusionMatrix::new(n_classes)?,
            labels: Vec::new(),
            probs: Some(Vec::new()),
        })
    }

    /// An empty accumulator whose classes carry names (one per class).
    ///
    /// # Errors
    /// No names.
    pub fn with_class_names(names: Vec<String>) -> Result<Self> {
        let mut a = Self::new(names.len())?;
        a.class_names = names;
        Ok(a)
    }

    /// Does not keep the probabilities: no ROC-AUC, constant memory.
    pub fn without_roc_auc(mut self) -> Self {
        self.probs = None;
        self
    }

    /// Adds a batch: `labels[i]` is the true class of sample `i`, `probs` its
    /// row of class probabilities (row-major, `labels.len() × n_classes`,
    /// `f32` or `f64`). On error nothing is added.
    ///
    /// # Errors
    /// Shape mismatch, a non-finite probability, or a label out of range.
    pub fn update<L: crate::Label, P: Copy + Into<f64>>(
        &mut self,
        labels: &[L],
        probs: &[P],
    ) -> Result<()> {
        let k = self.n_classes;
        crate::validate::same_len("probs", labels.len() * k, probs.len())?;
        let y = to_indices("labels", labels, k)?;
        let rows: Vec<f64> = probs.iter().map(|&p| p.into()).collect();
        crate::validate::finite("probs", &rows)?;
        let pred: Vec<usize> = rows.chunks_exact(k).map(argmax).collect();
        self.confusion.update(&y, &pred, None)?;
        self.labels.extend_from_slice(&y);
        if let Some(p) = &mut self.probs {
            p.extend_from_slice(&rows);
        }
        Ok(())
    }

    /// Adds the samples of another accumulator (data-parallel evaluation).
    ///
    /// # Errors
    /// Different class counts or names, or one keeps scores and the other not.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if self.class_names != other.class_names {
            return Err(MetricsError::IncompatibleMerge {
                reason: format!(
                    "classes {:?} against {:?}",
                    self.class_names, other.class_names
                ),
            });
        }
        if self.probs.is_some() != other.probs.is_some() {
            return Err(MetricsError::IncompatibleMerge {
                reason: "one accumulator keeps scores for ROC-AUC, the other does not".into(),
            });
        }
        self.confusion.merge(&other.confusion)?;
        self.labels.extend_from_slice(&other.labels);
        if let (Some(p), Some(o)) = (&mut self.probs, &other.probs) {
            p.extend_from_slice(o);
        }
        Ok(())
    }

    /// Number of samples seen.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The confusion matrix so far.
    pub fn confusion(&self) -> &ConfusionMatrix {
        &self.confusion
    }

    /// Computes every score.
    ///
    /// # Errors
    /// [`MetricsError::Empty`] before the first sample.
    pub fn summary(&self) -> Result<ClassificationSummary> {
        if self.is_empty() {
            return Err(MetricsError::Empty {
                what: "classification accumulator",
            });
        }
        let cm = &self.confusion;
        let (per_class, mut warnings) = class_rows(cm, &self.class_names)?;
        let macro_f1 = averaged_scores(cm, 1.0, Average::Macro)?.f_score;
        let roc_auc_ovr_macro = match &self.probs {
            None => None,
            Some(p) => match roc_auc_ovr(&self.labels, p, self.n_classes, None) {
                Ok(r) => {
                    if r.macro_avg.is_none() {
                        warnings.push(
                            "roc_auc_ovr_macro is null: some class has no sample (or only samples) in this split"
                                .into(),
                        );
                    }
                    r.macro_avg
                }
                Err(e) => {
                    warnings.push(format!("roc_auc_ovr_macro is null: {e}"));
                    None
                }
            },
        };
        Ok(ClassificationSummary {
            accuracy: cm.accuracy().unwrap_or(0.0),
            macro_f1,
            per_class,
            roc_auc_ovr_macro,
            confusion: cm.counts().unwrap_or_default(),
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_merge_and_summarise() {
        let labels = [0u8, 1, 2, 2];
        let probs: [f32; 12] = [
            0.8, 0.1, 0.1, //
            0.2, 0.7, 0.1, //
            0.1, 0.2, 0.7, //
            0.4, 0.4, 0.2, // tie: class 0 wins
        ];
        let mut a = ClassificationAccumulator::new(3).unwrap();
        a.update(&labels[..2], &probs[..6]).unwrap();
        let mut b = ClassificationAccumulator::new(3).unwrap();
        b.update(&labels[2..], &probs[6..]).unwrap();
        a.merge(&b).unwrap();
        let s = a.summary().unwrap();
        assert_eq!(s.accuracy, 0.75);
        assert_eq!(
            s.confusion,
            vec![vec![1, 0, 0], vec![0, 1, 0], vec![1, 0, 1]]
        );
        assert_eq!(s.per_class[2].support, 2);
        assert_eq!(s.roc_auc_ovr_macro, Some(1.0));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            crate::class_metrics::top_level_keys(&json),
            [
                "accuracy",
                "macro_f1",
                "per_class",
                "roc_auc_ovr_macro",
                "confusion"
            ]
        );
        assert!(a.update(&[3u8], &[0.2f32, 0.3, 0.5]).is_err());
        assert!(a.update(&[0u8], &[0.2f32, 0.3]).is_err());
        assert!(a.update(&[0u8], &[f32::NAN, 0.3, 0.7]).is_err());
        assert_eq!(a.len(), 4);
        assert!(a
            .merge(&ClassificationAccumulator::new(2).unwrap())
            .is_err());
        assert!(ClassificationAccumulator::new(3)
            .unwrap()
            .summary()
            .is_err());
    }

    #[test]
    fn without_scores_and_missing_class() {
        let mut a = ClassificationAccumulator::with_class_names(vec![
            "cat".into(),
            "dog".into(),
            "eel".into(),
        ])
        .unwrap()
        .without_roc_auc();
        a.update(&[0u8, 1], &[0.9, 0.05, 0.05, 0.1, 0.8, 0.1])
            .unwrap();
        let s = a.summary().unwrap();
        assert_eq!(s.roc_auc_ovr_macro, None);
        assert_eq!(s.per_class[2].class, "eel");
        let mut b = ClassificationAccumulator::new(3).unwrap();
        b.update(&[0u8, 1], &[0.9, 0.05, 0.05, 0.1, 0.8, 0.1])
            .unwrap();
        let s = b.summary().unwrap();
        assert_eq!(s.roc_auc_ovr_macro, None);
        assert!(!s.warnings.is_empty());
    }
}
