//! Streaming segmentation metrics (IoU family) with an ignore label.

use crate::confusion::ConfusionMatrix;
use crate::iou::{iou, SegmentationScores};
use crate::{MetricsError, Result};

/// The ignore label of `seg:` masks.
pub const DEFAULT_IGNORE_INDEX: u64 = 255;

/// Accumulates per-pixel `(true, predicted)` labels into a confusion matrix,
/// skipping pixels whose true label is the ignore index (255 by default).
/// Partial accumulators merge exactly (integer counts).
#[derive(Debug, Clone)]
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
}
