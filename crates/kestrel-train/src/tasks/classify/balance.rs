//! `--balance` and `--interleave`: which training rows an epoch visits, in which order, and the
//! class weights of the loss.

use crate::config::Balance;
use crate::error::{Result, TrainError};
use kestrel_data::imbalance::{
    class_counts, interleave, inverse_frequency_weights, random_oversample, random_undersample,
    Target,
};
use kestrel_data::rng::Rng;

/// Stream of the per-epoch shuffle (kept from the first trainer, so `--balance none` runs
/// reproduce).
const SHUFFLE_STREAM: u64 = 1_000_000;
/// Stream of the per-epoch re-sampling draws.
const RESAMPLE_STREAM: u64 = 3_000_000;

/// The rows (positions in the training set, whose labels are `labels`) that epoch `epoch` visits,
/// in order:
/// - `none`, `weights`, `smote`: every row once;
/// - `oversample`: every row, plus rows of each smaller class drawn with replacement up to the
///   largest class's count;
/// - `undersample`: per class, as many rows as the smallest class has, drawn without
///   replacement;
///
/// then shuffled with the seed and epoch; with `interleave` ≥ 2, reordered (stably within each
/// class) so that equal labels stand at least `interleave` positions apart — an error naming the
/// largest class when no such order exists.
pub fn epoch_rows(
    labels: &[usize],
    balance: Balance,
    interleave_k: usize,
    seed: u64,
    epoch: usize,
) -> Result<Vec<usize>> {
    let all: Vec<usize> = (0..labels.len()).collect();
    let resample_seed = Rng::stream(seed, RESAMPLE_STREAM + epoch as u64).next_u64();
    let mut rows = match balance {
        Balance::None | Balance::Weights | Balance::Smote => all,
        Balance::Oversample => random_oversample(&all, labels, &Target::Majority, resample_seed)?,
        Balance::Undersample => random_undersample(&all, labels, &Target::Minority, resample_seed)?,
    };
    Rng::stream(seed, SHUFFLE_STREAM + epoch as u64).shuffle(&mut rows);
    if interleave_k >= 2 {
        let in_order: Vec<usize> = rows.iter().map(|&r| labels[r]).collect();
        let perm = interleave(&in_order, interleave_k).ok_or_else(|| {
            let n_classes = in_order.iter().max().map_or(0, |m| m + 1);
            let counts = class_counts(&in_order, n_classes).unwrap_or_default();
            let m = counts.iter().copied().max().unwrap_or(0);
            let top = counts.iter().position(|&c| c == m).unwrap_or(0);
            let p = counts.iter().filter(|&&c| c == m).count();
            TrainError::BadInput(format!(
                "bad value for `interleave`: equal labels cannot stand {interleave_k} apart: class {top} has {m} of the {} training items an epoch visits; expected (largest count − 1) · {interleave_k} + {p} ≤ {} (try a smaller --interleave or --balance oversample/undersample)",
                rows.len(),
                rows.len()
            ))
        })?;
        rows = perm.into_iter().map(|p| rows[p]).collect();
    }
    Ok(rows)
}

/// The class weights of `--balance weights`: inverse frequency `n / (K · n_c)` over the
/// training labels. A class without training items is an error naming it.
pub fn loss_weights(labels: &[usize], class_names: &[String]) -> Result<Vec<f32>> {
    let counts = class_counts(labels, class_names.len())?;
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(TrainError::BadInput(format!(
            "--balance weights: class `{}` has no training item; expected at least one per class",
            class_names[c]
        )));
    }
    Ok(inverse_frequency_weights(&counts)?
        .into_iter()
        .map(|w| w as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 / 10 / 5 items of classes 0, 1, 2, interleaved in storage.
    fn labels() -> Vec<usize> {
        let mut l = vec![0; 40];
        l.extend([1; 10]);
        l.extend([2; 5]);
        Rng::new(5).shuffle(&mut l);
        l
    }

    fn counts_of(rows: &[usize], labels: &[usize]) -> Vec<usize> {
        let l: Vec<usize> = rows.iter().map(|&r| labels[r]).collect();
        class_counts(&l, 3).unwrap()
    }

    #[test]
    fn class_counts_per_epoch_follow_the_mode() {
        let l = labels();
        for epoch in 1..=3 {
            for (mode, want) in [
                (Balance::None, [40, 10, 5]),
                (Balance::Weights, [40, 10, 5]),
                (Balance::Smote, [40, 10, 5]),
                (Balance::Oversample, [40, 40, 40]),
                (Balance::Undersample, [5, 5, 5]),
            ] {
                let rows = epoch_rows(&l, mode, 0, 7, epoch).unwrap();
                assert_eq!(counts_of(&rows, &l), want, "{mode:?} epoch {epoch}");
                assert!(rows.iter().all(|&r| r < l.len()));
            }
        }
        // None visits each row exactly once.
        let mut rows = epoch_rows(&l, Balance::None, 0, 7, 1).unwrap();
        rows.sort_unstable();
        assert_eq!(rows, (0..l.len()).collect::<Vec<_>>());
        // Under-sampling keeps distinct rows and every minority row.
        let mut under = epoch_rows(&l, Balance::Undersample, 0, 7, 1).unwrap();
        under.sort_unstable();
        under.dedup();
        assert_eq!(under.len(), 15);
        assert!((0..l.len())
            .filter(|&r| l[r] == 2)
            .all(|r| under.contains(&r)));
    }

    #[test]
    fn epochs_differ_and_the_seed_fixes_them() {
        let l = labels();
        let a1 = epoch_rows(&l, Balance::Oversample, 0, 7, 1).unwrap();
        assert_eq!(a1, epoch_rows(&l, Balance::Oversample, 0, 7, 1).unwrap());
        assert_ne!(a1, epoch_rows(&l, Balance::Oversample, 0, 7, 2).unwrap());
        assert_ne!(a1, epoch_rows(&l, Balance::Oversample, 0, 8, 1).unwrap());
        // `none` keeps the first trainer's shuffle.
        let mut want: Vec<usize> = (0..l.len()).collect();
        Rng::stream(7, 1_000_002).shuffle(&mut want);
        assert_eq!(epoch_rows(&l, Balance::None, 0, 7, 2).unwrap(), want);
    }

    #[test]
    fn interleave_keeps_equal_labels_apart_or_says_why_not() {
        let l = labels();
        for k in [2, 3] {
            let rows = epoch_rows(&l, Balance::Oversample, k, 1, 1).unwrap();
            assert_eq!(counts_of(&rows, &l), [40, 40, 40]);
            for (i, &a) in rows.iter().enumerate() {
                for &b in rows.iter().skip(i + 1).take(k - 1) {
                    assert_ne!(l[a], l[b], "k = {k}");
                }
            }
        }
        // 40 of 55 items in one class cannot stand 2 apart: (40 − 1) · 2 + 1 > 55.
        let e = epoch_rows(&l, Balance::None, 2, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("class 0 has 40") && e.contains("interleave"),
            "{e}"
        );
        // 1 is no constraint.
        assert!(epoch_rows(&l, Balance::None, 1, 1, 1).is_ok());
    }

    #[test]
    fn loss_weights_are_inverse_frequency() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // sklearn's compute_class_weight("balanced"): n / (K · n_c) = 55 / (3 · n_c).
        let w = loss_weights(&labels(), &names).unwrap();
        for (got, n_c) in w.iter().zip([40.0f32, 10.0, 5.0]) {
            assert!((got - 55.0 / (3.0 * n_c)).abs() < 1e-6, "{w:?}");
        }
        let e = loss_weights(&[0, 0, 2], &names).unwrap_err().to_string();
        assert!(e.contains("`b`"), "{e}");
    }
}
