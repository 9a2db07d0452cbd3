//! Degenerate input through the public API: errors or documented nulls, never panics.

use kestrel_metrics::{
    log_loss, ovr, pr, roc, top_k, ClassificationAccumulator, ConfusionMatrix, MetricsError,
    SegmentationAccumulator,
};

#[test]
fn one_class_is_undefined_not_a_panic() {
    let e = roc::roc_auc(&[false, false, false], &[0.1, 0.5, 0.9], None).unwrap_err();
    assert!(
        matches!(
            e,
            MetricsError::Undefined {
                metric: "roc_auc",
                ..
            }
        ),
        "{e}"
    );
    assert!(pr::average_precision(&[false], &[0.3], None)
        .unwrap_err()
        .is_undefined());
    let o = ovr::roc_auc_ovr(&[0u8, 0], &[0.6, 0.4, 0.7, 0.3], 2, None).unwrap();
    assert_eq!(o.per_class, vec![None, None]);
    assert_eq!(o.macro_avg, None);
}

#[test]
fn non_finite_scores_are_errors() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = roc::roc_auc(&[true, false], &[0.5, bad], None).unwrap_err();
        assert!(
            matches!(
                e,
                MetricsError::NonFinite {
                    what: "scores",
                    index: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(pr::pr_auc(&[true, false], &[bad, 0.5], None).is_err());
        assert!(top_k::top_k_accuracy(&[0u8], &[bad, 0.5], 2, 1, None).is_err());
        assert!(log_loss::log_loss(&[0u8], &[bad, 0.5], 2, None).is_err());
        assert!(ovr::roc_auc_ovr(&[0u8], &[bad, 0.5], 2, None).is_err());
    }
}

#[test]
fn length_mismatch_and_out_of_range_labels() {
    assert!(matches!(
        roc::roc_auc(&[true, false, true], &[0.5, 0.1], None),
        Err(MetricsError::LengthMismatch {
            expected: 3,
            got: 2,
            ..
        })
    ));
    assert!(matches!(
        roc::roc_auc(&[true, false], &[0.5, 0.1], Some(&[1.0])),
        Err(MetricsError::LengthMismatch { .. })
    ));
    assert!(matches!(
        ConfusionMatrix::from_labels(&[0i64, 5], &[0, 1], 3, None),
        Err(MetricsError::LabelOutOfRange {
            label: 5,
            n_classes: 3,
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        ConfusionMatrix::from_labels(&[0i64, -2], &[0, 1], 3, None),
        Err(MetricsError::LabelOutOfRange { label: -2, .. })
    ));
    assert!(ovr::roc_auc_ovr(&[0u8, 3], &[0.5; 4], 2, None).is_err());
    let mut acc = ClassificationAccumulator::new(2).unwrap();
    assert!(acc.update(&[2u8], &[0.5f32, 0.5]).is_err());
    let mut seg = SegmentationAccumulator::new(2).unwrap();
    assert!(seg.update(&[0u8, 1], &[0u8]).is_err());
}

#[test]
fn empty_input() {
    assert!(matches!(
        roc::roc_auc(&[], &[], None),
        Err(MetricsError::Empty { .. })
    ));
    assert!(top_k::top_k_accuracy::<u8>(&[], &[], 2, 1, None).is_err());
    let seg = SegmentationAccumulator::new(3).unwrap();
    let s = seg.summary();
    assert_eq!(s.miou, None);
    assert_eq!(s.pixel_accuracy, None);
}
