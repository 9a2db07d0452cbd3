//! Predictions already made: true labels plus binary scores or class
//! probabilities, as read from a `kestrel metrics` CSV.

use crate::label::to_indices;
use crate::predict::{argmax_rows, threshold_predictions};
use crate::validate;
use crate::{MetricsError, Result};

/// The scores of a set of predictions.
#[derive(Debug, Clone, PartialEq)]
pub enum Scores {
    /// One score per sample for class 1 (class 0 is the negative class).
    Binary(Vec<f64>),
    /// Row-major class probabilities, `n_samples × n_classes`.
    Probabilities(Vec<f64>),
}

/// Validated predictions: every label is a class index, every score finite,
/// every probability in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    classes: Vec<String>,
    y_true: Vec<usize>,
    scores: Scores,
}

impl Predictions {
    /// Binary predictions: `y_true` holds 0 or 1, `scores` the score of class
    /// 1 (any finite value; a probability when thresholded at 0.5).
    ///
    /// # Errors
    /// Empty input, length mismatch, a label other than 0/1, or a non-finite
    /// score.
    pub fn binary<L: crate::Label>(y_true: &[L], scores: Vec<f64>) -> Result<Self> {
        validate::non_empty("y_true", y_true)?;
        validate::same_len("scores", y_true.len(), scores.len())?;
        validate::finite("scores", &scores)?;
        Ok(Self {
            classes: vec!["0".into(), "1".into()],
            y_true: to_indices("y_true", y_true, 2)?,
            scores: Scores::Binary(scores),
        })
    }

    /// Multiclass predictions: one probability column per class name.
    ///
    /// # Errors
    /// Fewer than two classes, empty input, shape mismatch, a label out of
    /// range, or a probability outside `[0, 1]`.
    pub fn multiclass<L: crate::Label>(
        classes: Vec<String>,
        y_true: &[L],
        probs: Vec<f64>,
    ) -> Result<Self> {
        if classes.len() < 2 {
            return Err(MetricsError::InvalidParameter {
                name: "classes",
                value: classes.len().to_string(),
                expected: "at least 2 classes",
            });
        }
        validate::non_empty("y_true", y_true)?;
        validate::matrix("probs", &probs, y_true.len(), classes.len())?;
        validate::probabilities("probs", &probs)?;
        Ok(Self {
            y_true: to_indices("y_true", y_true, classes.len())?,
            classes,
            scores: Scores::Probabilities(probs),
        })
    }

    /// Class names (for binary input: "0" and "1").
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// True class of each sample.
    pub fn y_true(&self) -> &[usize] {
        &self.y_true
    }

    /// The scores.
    pub fn scores(&self) -> &Scores {
        &self.scores
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y_true.len()
    }

    /// Never true for validated predictions.
    pub fn is_empty(&self) -> bool {
        self.y_true.is_empty()
    }

    /// True for a single `score` column.
    pub fn is_binary(&self) -> bool {
        matches!(self.scores, Scores::Binary(_))
    }

    /// Predicted classes: binary, `score >= threshold`; multiclass, argmax
    /// (lowest index wins ties; `threshold` unused).
    pub fn predicted(&self, threshold: f64) -> Vec<usize> {
        match &self.scores {
            Scores::Binary(s) => threshold_predictions(s, threshold),
            Scores::Probabilities(p) => argmax_rows(p, self.n_classes()),
        }
    }

    /// `y_true == class` for every sample.
    pub fn is_class(&self, class: usize) -> Vec<bool> {
        self.y_true.iter().map(|&y| y == class).collect()
    }

    /// The score column of `class`: for binary input only class 1 has one (the
    /// scores); for multiclass input, that probability column. `None` when
    /// there is no such column.
    pub fn column(&self, class: usize) -> Option<Vec<f64>> {
        match &self.scores {
            Scores::Binary(s) => (class == 1).then(|| s.clone()),
            Scores::Probabilities(p) => (class < self.n_classes())
                .then(|| p.chunks_exact(self.n_classes()).map(|r| r[class]).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks() {
        let p = Predictions::binary(&[0u8, 1], vec![0.2, 0.7]).unwrap();
        assert!(p.is_binary());
        assert_eq!(p.predicted(0.5), vec![0, 1]);
        assert_eq!(p.column(1).unwrap(), vec![0.2, 0.7]);
        assert!(p.column(0).is_none());
        assert!(Predictions::binary(&[0u8, 2], vec![0.2, 0.7]).is_err());
        assert!(Predictions::binary::<u8>(&[], vec![]).is_err());
        assert!(Predictions::binary(&[0u8], vec![f64::NAN]).is_err());
        let names = vec!["a".to_string(), "b".into(), "c".into()];
        let m = Predictions::multiclass(names.clone(), &[2u8], vec![0.4, 0.4, 0.2]).unwrap();
        assert_eq!(m.predicted(0.5), vec![0]);
        assert_eq!(m.column(2).unwrap(), vec![0.2]);
        assert!(Predictions::multiclass(names.clone(), &[2u8], vec![0.4, 0.4]).is_err());
        assert!(Predictions::multiclass(names, &[2u8], vec![0.4, 0.4, 1.2]).is_err());
        assert!(Predictions::multiclass(vec!["a".into()], &[0u8], vec![1.0]).is_err());
    }
}
