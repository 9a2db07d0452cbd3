//! Segmentation scores from a confusion matrix: intersection over union per
//! class, its mean (mIoU) and pixel accuracy.

use crate::confusion::ConfusionMatrix;
use crate::{MetricsError, Result};
use serde::Serialize;

/// IoU scores, serialised with the field names of `kestrel eval`'s
/// segmentation JSON.
///
/// IoU of class `c` is `TP / (TP + FP + FN)`; it is `None` when the class is
/// neither present nor predicted (scikit-learn's `jaccard_score` would report
/// 0 with a warning). mIoU is the mean over classes whose IoU is defined
/// (as torchmetrics and mmsegmentation compute it), `None` if none is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationScores {
    /// Mean IoU over classes with a defined IoU.
    pub miou: Option<f64>,
    /// Correct pixels over counted pixels (ignored pixels excluded).
    pub pixel_accuracy: Option<f64>,
    /// IoU of each class.
    pub iou_per_class: Vec<Option<f64>>,
}

/// The Jaccard index (IoU) of a confusion matrix combined as scikit-learn's
/// `jaccard_score(average=...)`: one class's, micro (`Σ tp / Σ (tp + fp + fn)`),
/// macro (the mean of the per-class IoUs) or weighted (by support). A class whose
/// union is empty counts 0, as scikit-learn's default `zero_division`.
///
/// # Errors
/// An empty matrix, or a binary class out of range.
pub fn jaccard(cm: &ConfusionMatrix, average: crate::Average) -> Result<f64> {
    use crate::Average;
    if cm.total() <= 0.0 {
        return Err(MetricsError::Empty {
            what: "confusion matrix",
        });
    }
    let k = cm.n_classes();
    let union = |c: usize| cm.support(c) + cm.predicted(c) - cm.true_positives(c);
    let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    let class = |c: usize| ratio(cm.true_positives(c), union(c));
    Ok(match average {
        Average::Binary { positive } if positive >= k => {
            return Err(MetricsError::InvalidParameter {
                name: "positive",
                value: positive.to_string(),
                expected: "a class index below n_classes",
            })
        }
        Average::Binary { positive } => class(positive),
        Average::Micro => ratio(
            (0..k).map(|c| cm.true_positives(c)).sum(),
            (0..k).map(union).sum(),
        ),
        Average::Macro => (0..k).map(class).sum::<f64>() / k as f64,
        Average::Weighted => ratio(
            (0..k).map(|c| cm.support(c) * class(c)).sum(),
            (0..k).map(|c| cm.support(c)).sum(),
        ),
    })
}

/// Per-class IoU, mIoU and pixel accuracy of a confusion matrix.
pub fn iou(cm: &ConfusionMatrix) -> SegmentationScores {
    let iou_per_class: Vec<Option<f64>> = (0..cm.n_classes())
        .map(|c| {
            let tp = cm.true_positives(c);
            let union = cm.support(c) + cm.predicted(c) - tp;
            if union > 0.0 {
                Some(tp / union)
            } else {
                None
            }
        })
        .collect();
    let defined: Vec<f64> = iou_per_class.iter().flatten().copied().collect();
    let miou = if defined.is_empty() {
        None
    } else {
        Some(defined.iter().sum::<f64>() / defined.len() as f64)
    };
    SegmentationScores {
        miou,
        pixel_accuracy: cm.accuracy(),
        iou_per_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_classes_are_skipped_in_the_mean() {
        let cm = ConfusionMatrix::from_labels(&[0u8, 0, 1, 1], &[0, 1, 1, 1], 3, None).unwrap();
        let s = iou(&cm);
        assert_eq!(s.iou_per_class, vec![Some(0.5), Some(2.0 / 3.0), None]);
        assert!((s.miou.unwrap() - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-15);
        assert_eq!(s.pixel_accuracy, Some(0.75));
        let empty = iou(&ConfusionMatrix::new(2).unwrap());
        assert_eq!(empty.miou, None);
        assert_eq!(empty.pixel_accuracy, None);
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"miou":null,"pixel_accuracy":null,"iou_per_class":[null,null]}"#
        );
    }
}
