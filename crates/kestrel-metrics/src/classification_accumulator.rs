//! Streaming classification metrics for the training loop and `kestrel eval`.

use crate::class_metrics::{class_rows, index_names, ClassMetrics};
use crate::classification::{averaged_scores, Average};
use crate::confusion::ConfusionMatrix;
use crate::label::to_indices;
use crate::ovr::roc_auc_ovr;
use crate::predict::argmax;
use crate::{MetricsError, Result};
use serde::{Deserialize, Serialize};

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
///
/// Serialises (serde) as `{"class_names", "confusion", "labels", "prob_bits"}`:
/// `confusion` the whole counts (a row per true class), `labels` the true class
/// of every sample in order, and `prob_bits` the kept probabilities as IEEE-754
/// bit patterns (`u64`, row-major; `null` without ROC-AUC), since a float
/// written as JSON text may come back a bit off. Reading it back checks every
/// part against the others (shapes, label range, finite probabilities, the
/// confusion matrix against the labels and predictions), so a part that was
/// edited or cut short is an error, and the result merges and summarises
/// exactly as the accumulator that was written.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Stored")]
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

/// The serialised form of a [`ClassificationAccumulator`], as it is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    class_names: Vec<String>,
    confusion: Vec<Vec<u64>>,
    labels: Vec<usize>,
    prob_bits: Option<Vec<u64>>,
}

/// `f64`s serialised as their bit patterns, without a copy.
struct Bits<'a>(&'a [f64]);

impl Serialize for Bits<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|v| v.to_bits()))
    }
}

impl Serialize for ClassificationAccumulator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        /// The serialised form, borrowed.
        #[derive(Serialize)]
        struct Out<'a> {
            class_names: &'a [String],
            confusion: Vec<Vec<u64>>,
            labels: &'a [usize],
            prob_bits: Option<Bits<'a>>,
        }
        // Unweighted updates only: every cell is a whole count.
        let confusion = self
            .confusion
            .counts()
            .ok_or_else(|| serde::ser::Error::custom("confusion cells are not whole counts"))?;
        Out {
            class_names: &self.class_names,
            confusion,
            labels: &self.labels,
            prob_bits: self.probs.as_deref().map(Bits),
        }
        .serialize(s)
    }
}

impl TryFrom<Stored> for ClassificationAccumulator {
    type Error = MetricsError;

    fn try_from(w: Stored) -> Result<Self> {
        let mut acc = Self::with_class_names(w.class_names)?;
        let k = acc.n_classes;
        let confusion = ConfusionMatrix::from_counts(&w.confusion)?;
        crate::validate::same_len("confusion", k, confusion.n_classes())?;
        match w.prob_bits {
            Some(bits) => {
                // The matrix is rebuilt from the labels and the predictions, and must agree.
                let probs: Vec<f64> = bits.into_iter().map(f64::from_bits).collect();
                acc.update(&w.labels, &probs)?;
                if acc.confusion != confusion {
                    return Err(MetricsError::InvalidParameter {
                        name: "confusion",
                        value: format!("{:?}", w.confusion),
                        expected: "the counts of the labels against the argmax of prob_bits",
                    });
                }
            }
            None => {
                let y = to_indices("labels", &w.labels, k)?;
                let mut support = vec![0u128; k];
                for &t in &y {
                    support[t] += 1;
                }
                for (row, &n) in w.confusion.iter().zip(&support) {
                    if row.iter().map(|&c| u128::from(c)).sum::<u128>() != n {
                        return Err(MetricsError::InvalidParameter {
                            name: "confusion",
                            value: format!("{:?}", w.confusion),
                            expected: "rows that sum to the count of each class in labels",
                        });
                    }
                }
                acc.probs = None;
                acc.labels = y;
                acc.confusion = confusion;
            }
        }
        Ok(acc)
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

    #[test]
    fn serialises_exactly_and_refuses_inconsistent_parts() {
        let mut a =
            ClassificationAccumulator::with_class_names(vec!["a".into(), "b".into()]).unwrap();
        // 0.1f32 and 1/3 are not short decimals: the bits must come back as they were.
        let third = 1.0f64 / 3.0;
        a.update(
            &[0u8, 1, 1],
            &[0.9f64, 0.1f32 as f64, third, 1.0 - third, 0.5, 0.5],
        )
        .unwrap();
        let text = serde_json::to_string(&a).unwrap();
        let back: ClassificationAccumulator = serde_json::from_str(&text).unwrap();
        assert_eq!(back.probs, a.probs);
        assert_eq!(back.labels, a.labels);
        assert_eq!(back.summary().unwrap(), a.summary().unwrap());
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["confusion"], serde_json::json!([[1, 0], [1, 1]]));
        assert_eq!(json["prob_bits"][2], third.to_bits());

        let no_auc = a.clone().without_roc_auc();
        let mut b = ClassificationAccumulator::with_class_names(vec!["a".into(), "b".into()])
            .unwrap()
            .without_roc_auc();
        b.update(&[0u8, 1, 1], &[0.9f64, 0.1, third, 1.0 - third, 0.5, 0.5])
            .unwrap();
        let back: ClassificationAccumulator =
            serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert!(back.probs.is_none());
        assert_eq!(back.summary().unwrap(), b.summary().unwrap());
        assert!(back.clone().merge(&no_auc).is_ok());
        // An empty part (a shard with no items) round-trips and merges to nothing.
        let empty = ClassificationAccumulator::new(2).unwrap();
        let back: ClassificationAccumulator =
            serde_json::from_str(&serde_json::to_string(&empty).unwrap()).unwrap();
        assert!(back.is_empty());

        let bad = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = json.clone();
            edit(&mut v);
            serde_json::from_value::<ClassificationAccumulator>(v)
                .unwrap_err()
                .to_string()
        };
        let e = bad(&|v| v["confusion"][0][0] = 2.into());
        assert!(e.contains("confusion"), "{e}");
        let e = bad(&|v| v["labels"][0] = 2.into());
        assert!(e.contains("labels[0] is 2"), "{e}");
        let e = bad(&|v| v["prob_bits"].as_array_mut().unwrap().truncate(5));
        assert!(e.contains("length mismatch"), "{e}");
        let e = bad(&|v| v["prob_bits"][0] = f64::NAN.to_bits().into());
        assert!(e.contains("finite"), "{e}");
        let e = bad(&|v| v["confusion"] = serde_json::json!([[1, 0, 0], [1, 1, 0]]));
        assert!(e.contains("confusion row"), "{e}");
        let e = bad(&|v| v["class_names"] = serde_json::json!([]));
        assert!(e.contains("n_classes"), "{e}");
        let e = bad(&|v| v["extra"] = 1.into());
        assert!(e.contains("unknown field"), "{e}");
        let e = bad(&|v| {
            v["prob_bits"] = serde_json::Value::Null;
            v["confusion"] = serde_json::json!([[1, 0], [0, 1]]);
        });
        assert!(e.contains("rows that sum"), "{e}");
    }
}
