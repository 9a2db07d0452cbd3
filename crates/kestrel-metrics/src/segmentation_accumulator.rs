//! Streaming segmentation metrics (IoU family) with an ignore label.

use crate::confusion::ConfusionMatrix;
use crate::iou::{iou, SegmentationScores};
use crate::{MetricsError, Result};
use serde::{Deserialize, Serialize};

/// The ignore label of `seg:` masks.
pub const DEFAULT_IGNORE_INDEX: u64 = 255;

/// Accumulates per-pixel `(true, predicted)` labels into a confusion matrix,
/// skipping pixels whose true label is the ignore index (255 by default).
/// Partial accumulators merge exactly (integer counts).
///
/// Serialises (serde) as `{"confusion", "ignore_index"}`: the whole pixel
/// counts, a row per true class, and the ignore label (`null` for none).
/// Reading it back checks that the matrix is square and its counts exact.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Stored")]
pub struct SegmentationAccumulator {
    confusion: ConfusionMatrix,
    ignore_index: Option<u64>,
}

impl SegmentationAccumulator {
    /// An empty accumulator for `n_classes` classes, ignoring label 255.
    ///
    /// # Errors
    /// `n_classes == 0`.
    pub fn new(n_classes: usize) -> Result<Self> {
        Ok(Self {
            confusion: ConfusionMatrix::new(n_classes)?,
            ignore_index: Some(DEFAULT_IGNORE_INDEX),
        })
    }

    /// Changes (or, with `None`, removes) the ignore label.
    pub fn with_ignore_index(mut self, ignore_index: Option<u64>) -> Self {
        self.ignore_index = ignore_index;
        self
    }

    /// Adds a batch of pixels: `y_true` (target mask) and `y_pred` (predicted
    /// classes), flattened the same way. **Order: truth first, then
    /// prediction**, as scikit-learn. On error nothing is added.
    ///
    /// # Errors
    /// Length mismatch or a label (other than an ignored target) out of range.
    pub fn update<L: crate::Label>(&mut self, y_true: &[L], y_pred: &[L]) -> Result<()> {
        match self.ignore_index {
            Some(ignore) => self.confusion.update_ignoring(y_true, y_pred, ignore),
            None => self.confusion.update(y_true, y_pred, None),
        }
    }

    /// Adds another accumulator's counts.
    ///
    /// # Errors
    /// Different class counts or ignore labels.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if self.ignore_index != other.ignore_index {
            return Err(MetricsError::IncompatibleMerge {
                reason: format!(
                    "ignore index {:?} against {:?}",
                    self.ignore_index, other.ignore_index
                ),
            });
        }
        self.confusion.merge(&other.confusion)
    }

    /// The confusion matrix so far.
    pub fn confusion(&self) -> &ConfusionMatrix {
        &self.confusion
    }

    /// mIoU, pixel accuracy and per-class IoU (see [`iou`]).
    pub fn summary(&self) -> SegmentationScores {
        iou(&self.confusion)
    }
}

/// The serialised form of a [`SegmentationAccumulator`], as it is read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    confusion: Vec<Vec<u64>>,
    ignore_index: Option<u64>,
}

impl Serialize for SegmentationAccumulator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // Unweighted updates only: every cell is a whole count.
        let confusion = self
            .confusion
            .counts()
            .ok_or_else(|| serde::ser::Error::custom("confusion cells are not whole counts"))?;
        Stored {
            confusion,
            ignore_index: self.ignore_index,
        }
        .serialize(s)
    }
}

impl TryFrom<Stored> for SegmentationAccumulator {
    type Error = MetricsError;

    fn try_from(w: Stored) -> Result<Self> {
        Ok(Self {
            confusion: ConfusionMatrix::from_counts(&w.confusion)?,
            ignore_index: w.ignore_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_and_merge() {
        let mut a = SegmentationAccumulator::new(2).unwrap();
        a.update(&[0u8, 1, 255], &[0u8, 0, 1]).unwrap();
        let mut b = SegmentationAccumulator::new(2).unwrap();
        b.update(&[1u8, 1], &[1u8, 1]).unwrap();
        a.merge(&b).unwrap();
        let s = a.summary();
        assert_eq!(s.pixel_accuracy, Some(0.75));
        assert_eq!(s.iou_per_class, vec![Some(0.5), Some(2.0 / 3.0)]);
        assert!(a.update(&[2u8], &[0u8]).is_err());
        assert!(a.update(&[0u8], &[255u8]).is_err());
        let c = SegmentationAccumulator::new(2)
            .unwrap()
            .with_ignore_index(None);
        assert!(a.merge(&c).is_err());
        let mut c = c;
        assert!(c.update(&[255u8], &[0u8]).is_err());
    }

    #[test]
    fn serialises_its_counts() {
        let mut a = SegmentationAccumulator::new(2).unwrap();
        a.update(&[0u8, 1, 255, 1], &[0u8, 0, 1, 1]).unwrap();
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(text, r#"{"confusion":[[1,0],[1,1]],"ignore_index":255}"#);
        let back: SegmentationAccumulator = serde_json::from_str(&text).unwrap();
        assert_eq!(back.summary(), a.summary());
        assert_eq!(back.ignore_index, a.ignore_index);
        let none = a.clone().with_ignore_index(None);
        let back: SegmentationAccumulator =
            serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert_eq!(back.ignore_index, None);
        for bad in [
            r#"{"confusion":[[1,0],[1]],"ignore_index":255}"#,
            r#"{"confusion":[],"ignore_index":255}"#,
            r#"{"confusion":[[9007199254740993]],"ignore_index":null}"#,
        ] {
            assert!(
                serde_json::from_str::<SegmentationAccumulator>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
