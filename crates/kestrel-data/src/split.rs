//! Stratified, seeded train/val/test splits.

use crate::dataset::Dataset;
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

/// Splits a dataset, honouring its own test set when it has one ([`Dataset::official_test`], e.g.
/// the `t10k` files of `idx:`): then those items are the test split, `test` is not used, and
/// `val` is the fraction of the *other* items, per class, that go to validation. Without one,
/// this is [`stratified_split`] of the dataset's labels.
pub fn split_dataset(ds: &dyn Dataset, val: f64, test: f64, seed: u64) -> Result<Split, DataError> {
    let labels = ds.labels();
    let Some(official) = ds.official_test() else {
        return stratified_split(&labels, val, test, seed);
    };
    let mut is_test = vec![false; labels.len()];
    for &i in &official {
        if let Some(t) = is_test.get_mut(i) {
            *t = true;
        }
    }
    let rest: Vec<usize> = (0..labels.len()).filter(|&i| !is_test[i]).collect();
    let rest_labels: Vec<usize> = rest.iter().map(|&i| labels[i]).collect();
    let inner = stratified_split(&rest_labels, val, 0.0, seed)?;
    let mut test: Vec<usize> = (0..labels.len()).filter(|&i| is_test[i]).collect();
    test.sort_unstable();
    Ok(Split {
        seed,
        train: inner.train.iter().map(|&i| rest[i]).collect(),
        val: inner.val.iter().map(|&i| rest[i]).collect(),
        test,
    })
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

    /// Twelve items labelled i % 2; the last four are the source's own test set.
    struct WithTest;

    impl Dataset for WithTest {
        fn len(&self) -> usize {
            12
        }
        fn class_names(&self) -> Vec<String> {
            vec!["a".into(), "b".into()]
        }
        fn labels(&self) -> Vec<usize> {
            (0..12).map(|i| i % 2).collect()
        }
        fn get(&self, _: usize) -> Result<crate::Item, DataError> {
            Err(DataError::value("get", "not needed"))
        }
        fn official_test(&self) -> Option<Vec<usize>> {
            Some(vec![8, 9, 10, 11])
        }
    }

    #[test]
    fn an_official_test_set_is_kept_whole() {
        let s = split_dataset(&WithTest, 0.25, 0.5, 4).unwrap();
        assert_eq!(s.test, [8, 9, 10, 11]);
        // 8 other items, 4 per class: round(4 * 0.25) = 1 per class to val.
        assert_eq!(s.val.len(), 2);
        assert_eq!(s.val.iter().filter(|&&i| i % 2 == 0).count(), 1);
        assert_eq!(s.train.len(), 6);
        assert!(s.train.iter().chain(&s.val).all(|&i| i < 8));
    }
}
