//! Stratified, seeded train/val/test splits.

use crate::error::DataError;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Indices of the three splits; disjoint, each sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Seed that produced the split.
    pub seed: u64,
    /// Training items.
    pub train: Vec<usize>,
    /// Validation items: model selection and early stopping.
    pub val: Vec<usize>,
    /// Held-out test items: read only by `kestrel eval --split test`.
    pub test: Vec<usize>,
}

/// Splits items by class: within each class, a seeded shuffle gives `round(count · val)` items to
/// val, `round(count · test)` to test and the rest to train.
pub fn stratified_split(
    labels: &[usize],
    val: f64,
    test: f64,
    seed: u64,
) -> Result<Split, DataError> {
    for (name, f) in [("val", val), ("test", test)] {
        if !(0.0..1.0).contains(&f) {
            return Err(DataError::value(
                name,
                format!("expected a fraction in [0, 1), got {f}"),
            ));
        }
    }
    if val + test >= 1.0 {
        return Err(DataError::value(
            "val",
            format!("val + test must leave items to train on, got {val} + {test}"),
        ));
    }
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let mut rng = Rng::new(seed ^ 0x5EED_5A17);
    let mut split = Split {
        seed,
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
    };
    for items in by_class.iter_mut() {
        rng.shuffle(items);
        let n = items.len() as f64;
        let n_val = (n * val).round() as usize;
        let n_test = ((n * test).round() as usize).min(items.len() - n_val);
        split.val.extend_from_slice(&items[..n_val]);
        split.test.extend_from_slice(&items[n_val..n_val + n_test]);
        split.train.extend_from_slice(&items[n_val + n_test..]);
    }
    split.train.sort_unstable();
    split.val.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_counts_are_within_one_and_disjoint() {
        let labels: Vec<usize> = (0..1003).map(|i| (i * 7 % 13) % 5).collect();
        let s = stratified_split(&labels, 0.15, 0.2, 9).unwrap();
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.val)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..labels.len()).collect::<Vec<_>>(),
            "not a partition"
        );
        for c in 0..5 {
            let count = labels.iter().filter(|&&l| l == c).count() as f64;
            let in_val = s.val.iter().filter(|&&i| labels[i] == c).count() as f64;
            let in_test = s.test.iter().filter(|&&i| labels[i] == c).count() as f64;
            assert!(
                (in_val - 0.15 * count).abs() <= 1.0,
                "class {c}: {in_val} of {count}"
            );
            assert!(
                (in_test - 0.2 * count).abs() <= 1.0,
                "class {c}: {in_test} of {count}"
            );
        }
        assert_eq!(s, stratified_split(&labels, 0.15, 0.2, 9).unwrap());
        assert_ne!(s.val, stratified_split(&labels, 0.15, 0.2, 10).unwrap().val);
    }

    #[test]
    fn rejects_fractions_that_leave_nothing() {
        assert!(stratified_split(&[0, 1], 0.6, 0.5, 0).is_err());
        assert!(stratified_split(&[0, 1], -0.1, 0.5, 0).is_err());
    }
}
