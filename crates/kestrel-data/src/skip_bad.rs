//! `--skip-bad`: a dataset view without the items that cannot be read.

use crate::dataset::{Dataset, Item};
use crate::error::DataError;
use crate::item_key::ItemKey;
use rayon::prelude::*;

/// An item left out because it could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its index in the wrapped dataset.
    pub index: usize,
    /// Its stable name (see [`Dataset::item_keys`]).
    pub key: ItemKey,
    /// The error reading it.
    pub reason: String,
}

/// The items of a dataset that can be read. Construction reads every item once (in parallel) and
/// keeps those whose [`Dataset::get`] succeeds; indices are renumbered densely, in the original
/// order, while [`Dataset::item_keys`] keeps the wrapped dataset's names, so split manifests still
/// name the original files or indices.
pub struct SkipBad {
    inner: Box<dyn Dataset>,
    keep: Vec<usize>,
    skipped: Vec<Skipped>,
}

impl SkipBad {
    /// Reads every item of `inner` and keeps the readable ones.
    pub fn new(inner: Box<dyn Dataset>) -> Self {
        let outcomes: Vec<Option<String>> = (0..inner.len())
            .into_par_iter()
            .map(|i| inner.get(i).err().map(|e| e.to_string()))
            .collect();
        let keys = inner.item_keys();
        let mut keep = Vec::with_capacity(outcomes.len());
        let mut skipped = Vec::new();
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                None => keep.push(index),
                Some(reason) => skipped.push(Skipped {
                    index,
                    key: keys[index].clone(),
                    reason,
                }),
            }
        }
        Self {
            inner,
            keep,
            skipped,
        }
    }

    /// The items left out, in index order.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Index in the wrapped dataset of each kept item.
    pub fn kept(&self) -> &[usize] {
        &self.keep
    }
}

impl Dataset for SkipBad {
    fn len(&self) -> usize {
        self.keep.len()
    }
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }
    fn labels(&self) -> Vec<usize> {
        let all = self.inner.labels();
        self.keep.iter().map(|&i| all[i]).collect()
    }
    fn get(&self, index: usize) -> Result<Item, DataError> {
        let &i = self.keep.get(index).ok_or_else(|| {
            DataError::value(
                "index",
                format!("expected < {}, got {index}", self.keep.len()),
            )
        })?;
        self.inner.get(i)
    }
    fn item_keys(&self) -> Vec<ItemKey> {
        let all = self.inner.item_keys();
        self.keep.iter().map(|&i| all[i].clone()).collect()
    }
    fn official_test(&self) -> Option<Vec<usize>> {
        let test = self.inner.official_test()?;
        // Both lists are sorted: map each kept test item to its new index.
        Some(
            self.keep
                .iter()
                .enumerate()
                .filter(|(_, i)| test.binary_search(i).is_ok())
                .map(|(new, _)| new)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// Items 0..n labelled i % 3, where every multiple of `bad_every` fails to read; the last
    /// two form the official test set.
    struct Flaky {
        n: usize,
        bad_every: usize,
    }

    impl Dataset for Flaky {
        fn len(&self) -> usize {
            self.n
        }
        fn class_names(&self) -> Vec<String> {
            vec!["a".into(), "b".into(), "c".into()]
        }
        fn labels(&self) -> Vec<usize> {
            (0..self.n).map(|i| i % 3).collect()
        }
        fn get(&self, index: usize) -> Result<Item, DataError> {
            if index.is_multiple_of(self.bad_every) {
                return Err(DataError::value("item", format!("broken {index}")));
            }
            Ok(Item {
                image: RgbImage::new(1, 1),
                mask: None,
                label: index % 3,
            })
        }
        fn official_test(&self) -> Option<Vec<usize>> {
            Some(vec![self.n - 2, self.n - 1])
        }
    }

    #[test]
    fn drops_unreadable_items_and_keeps_their_names() {
        let ds = SkipBad::new(Box::new(Flaky {
            n: 10,
            bad_every: 4,
        }));
        // 0, 4 and 8 fail.
        assert_eq!(ds.kept(), [1, 2, 3, 5, 6, 7, 9]);
        assert_eq!(ds.len(), 7);
        let skipped: Vec<usize> = ds.skipped().iter().map(|s| s.index).collect();
        assert_eq!(skipped, [0, 4, 8]);
        assert!(ds.skipped()[1].reason.contains("broken 4"));
        assert_eq!(ds.skipped()[2].key, ItemKey::Index(8));
        assert_eq!(ds.labels(), [1, 2, 0, 2, 0, 1, 0]);
        assert_eq!(ds.item_keys()[3], ItemKey::Index(5));
        assert_eq!(ds.get(3).unwrap().label, 2);
        assert!(ds.get(7).is_err());
        // Test items 8 (dropped) and 9 (now index 6).
        assert_eq!(ds.official_test(), Some(vec![6]));
    }
}
