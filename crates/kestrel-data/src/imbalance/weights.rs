//! Per-class loss weights from class counts: of items (image labels) or of pixels
//! (segmentation masks).

use crate::error::DataError;
use crate::formats::seg::IGNORE_LABEL;

/// Items per class: `counts[c]` = number of `labels` equal to `c`. A label ≥ `n_classes` is an
/// error.
pub fn class_counts(labels: &[usize], n_classes: usize) -> Result<Vec<usize>, DataError> {
    let mut counts = vec![0usize; n_classes];
    for (i, &l) in labels.iter().enumerate() {
        *counts.get_mut(l).ok_or_else(|| {
            DataError::value(
                "labels",
                format!("item {i} has label {l}: expected < {n_classes} classes"),
            )
        })? += 1;
    }
    Ok(counts)
}

fn check_counts(counts: &[usize]) -> Result<(), DataError> {
    if counts.is_empty() {
        return Err(DataError::value("counts", "expected at least one class"));
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(DataError::value(
            "counts",
            format!("class {c} has no items: expected every class to have at least one (its weight would be infinite)"),
        ));
    }
    Ok(())
}

/// Pixels per class of segmentation masks: `counts[c]` = number of mask values equal to `c`.
/// [`IGNORE_LABEL`] pixels and values ≥ `n_classes` are not counted.
pub fn mask_pixel_counts(masks: &[u8], n_classes: usize) -> Vec<usize> {
    let mut counts = vec![0usize; n_classes];
    for &m in masks {
        if m != IGNORE_LABEL {
            if let Some(c) = counts.get_mut(m as usize) {
                *c += 1;
            }
        }
    }
    counts
}

/// Inverse-frequency weights, scikit-learn's "balanced": `w_c = n / (K · n_c)` for `n` items in
/// `K` classes, so that every class carries the same total weight `n / K`. Every class needs at
/// least one item; [`inverse_frequency_weights_or_zero`] allows empty ones.
pub fn inverse_frequency_weights(counts: &[usize]) -> Result<Vec<f64>, DataError> {
    check_counts(counts)?;
    Ok(inverse_frequency_weights_or_zero(counts))
}

/// [`inverse_frequency_weights`] where a class with no item gets weight 0 instead of being an
/// error: for pixel counts ([`mask_pixel_counts`]), where a class can be missing from the
/// training masks.
pub fn inverse_frequency_weights_or_zero(counts: &[usize]) -> Vec<f64> {
    let n: usize = counts.iter().sum();
    let k = counts.len() as f64;
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                n as f64 / (k * c as f64)
            }
        })
        .collect()
}

/// Class-balanced weights from the effective number of samples (Cui et al., CVPR 2019):
/// `w_c ∝ (1 − β) / (1 − β^{n_c})`, scaled so the weights sum to the number of classes.
/// `β = 0` gives equal weights; as `β → 1` they approach inverse frequency. `β` must lie in
/// [0, 1); the paper uses 0.9 to 0.9999.
pub fn effective_number_weights(counts: &[usize], beta: f64) -> Result<Vec<f64>, DataError> {
    check_counts(counts)?;
    if !(0.0..1.0).contains(&beta) {
        return Err(DataError::value(
            "beta",
            format!("expected a value in [0, 1), got {beta}"),
        ));
    }
    // 1 − β^n computed as −expm1(n · ln β), accurate when β is close to 1.
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| {
            if beta == 0.0 {
                1.0
            } else {
                (1.0 - beta) / -(n as f64 * beta.ln()).exp_m1()
            }
        })
        .collect();
    let total: f64 = raw.iter().sum();
    let k = counts.len() as f64;
    Ok(raw.iter().map(|w| w * k / total).collect())
}

/// The weight of each item: the weight of its class, e.g. for a [`WeightedSampler`].
///
/// [`WeightedSampler`]: crate::imbalance::WeightedSampler
pub fn item_weights(labels: &[usize], class_weights: &[f64]) -> Result<Vec<f64>, DataError> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            class_weights.get(l).copied().ok_or_else(|| {
                DataError::value(
                    "labels",
                    format!(
                        "item {i} has label {l}: expected < {} classes",
                        class_weights.len()
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn counts_and_item_weights() {
        assert_eq!(class_counts(&[2, 0, 2, 2], 4).unwrap(), [1, 0, 3, 0]);
        assert!(class_counts(&[0, 4], 4)
            .unwrap_err()
            .to_string()
            .contains("label 4"));
        assert_eq!(
            item_weights(&[1, 0, 1], &[0.5, 2.0]).unwrap(),
            [2.0, 0.5, 2.0]
        );
        assert!(item_weights(&[2], &[0.5, 2.0]).is_err());
    }

    #[test]
    fn balanced_weights_match_hand_values() {
        // 10 items, 3 classes: 10/18, 10/9, 10/3.
        close(
            &inverse_frequency_weights(&[6, 3, 1]).unwrap(),
            &[10.0 / 18.0, 10.0 / 9.0, 10.0 / 3.0],
        );
        // Each class's total weight is n / K.
        let w = inverse_frequency_weights(&[7, 2, 11, 5]).unwrap();
        for (wc, n) in w.iter().zip([7.0, 2.0, 11.0, 5.0]) {
            assert!((wc * n - 25.0 / 4.0).abs() < 1e-9);
        }
        let e = inverse_frequency_weights(&[3, 0]).unwrap_err().to_string();
        assert!(e.contains("class 1"), "{e}");
        assert!(inverse_frequency_weights(&[]).is_err());
    }

    #[test]
    fn pixel_counts_skip_the_ignore_label_and_empty_classes_weigh_zero() {
        let masks = [0, 1, 1, 255, 7, 1, 0, 255];
        let counts = mask_pixel_counts(&masks, 3);
        assert_eq!(counts, [2, 3, 0]);
        // 5 counted pixels, 3 classes: 5/6, 5/9, and 0 for the empty class.
        close(
            &inverse_frequency_weights_or_zero(&counts),
            &[5.0 / 6.0, 5.0 / 9.0, 0.0],
        );
        // Without an empty class, the same weights as the strict version.
        assert_eq!(
            inverse_frequency_weights_or_zero(&[6, 3, 1]),
            inverse_frequency_weights(&[6, 3, 1]).unwrap()
        );
        assert!(inverse_frequency_weights_or_zero(&[]).is_empty());
    }

    #[test]
    fn effective_number_weights_match_hand_values() {
        // β = 0.5: raw weights 0.5/0.5 = 1, 0.5/0.75 = 2/3, 0.5/0.9375 = 8/15; sum 11/5.
        let raw = [1.0, 2.0 / 3.0, 8.0 / 15.0];
        let want: Vec<f64> = raw.iter().map(|w| w * 3.0 / 2.2).collect();
        close(&effective_number_weights(&[1, 2, 4], 0.5).unwrap(), &want);
        // β = 0: all equal.
        close(
            &effective_number_weights(&[1, 50], 0.0).unwrap(),
            &[1.0, 1.0],
        );
        // β → 1: proportional to 1 / n_c.
        let w = effective_number_weights(&[10, 40], 0.999_999).unwrap();
        assert!((w[0] / w[1] - 4.0).abs() < 1e-3, "{w:?}");
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-12);
        assert!(effective_number_weights(&[1, 2], 1.0).is_err());
        assert!(effective_number_weights(&[1, 2], -0.1).is_err());
    }
}
