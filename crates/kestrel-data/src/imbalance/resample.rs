//! Random over- and under-sampling of an index list, class by class.

use crate::error::DataError;
use crate::rng::Rng;

/// How many items of each class re-sampling should leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// As many as the largest class has.
    Majority,
    /// As many as the smallest non-empty class has.
    Minority,
    /// `counts[c]` items of class `c`.
    Counts(Vec<usize>),
}

/// The items of `indices` grouped by class (`labels[i]` is the class of item `i`).
fn by_class(indices: &[usize], labels: &[usize]) -> Result<Vec<Vec<usize>>, DataError> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &i in indices {
        let &l = labels.get(i).ok_or_else(|| {
            DataError::value(
                "indices",
                format!("item {i} has no label: expected < {} items", labels.len()),
            )
        })?;
        if groups.len() <= l {
            groups.resize(l + 1, Vec::new());
        }
        groups[l].push(i);
    }
    Ok(groups)
}

/// The number of items class `c` should end with.
fn targets(groups: &[Vec<usize>], target: &Target) -> Result<Vec<usize>, DataError> {
    let present = groups.iter().map(Vec::len).filter(|&n| n > 0);
    let uniform = |n: usize| {
        groups
            .iter()
            .map(|g| if g.is_empty() { 0 } else { n })
            .collect()
    };
    match target {
        Target::Majority => Ok(uniform(present.max().unwrap_or(0))),
        Target::Minority => Ok(uniform(present.min().unwrap_or(0))),
        Target::Counts(counts) => {
            if counts.len() < groups.len() {
                return Err(DataError::value(
                    "counts",
                    format!(
                        "{} counts given but the items have classes up to {}: expected one count per class",
                        counts.len(),
                        groups.len() - 1
                    ),
                ));
            }
            Ok(counts.clone())
        }
    }
}

/// Random over-sampling: keeps every item of `indices` and adds, per class, items of that class
/// drawn uniformly with replacement until the class has its target count. A target below a
/// class's count, or above zero for a class with no items, is an error. The result is sorted
/// (repeated items stand together); shuffle it per epoch.
pub fn random_oversample(
    indices: &[usize],
    labels: &[usize],
    target: &Target,
    seed: u64,
) -> Result<Vec<usize>, DataError> {
    let groups = by_class(indices, labels)?;
    let want = targets(&groups, target)?;
    let mut rng = Rng::new(seed ^ 0x0BE5_A3B1_E000_0001);
    let mut out = indices.to_vec();
    for (c, &t) in want.iter().enumerate() {
        let items = groups.get(c).map_or(&[][..], Vec::as_slice);
        if t < items.len() {
            return Err(DataError::value(
                "counts",
                format!(
                    "class {c} has {} items, target {t}: over-sampling expects targets >= the class counts",
                    items.len()
                ),
            ));
        }
        if t > 0 && items.is_empty() {
            return Err(DataError::value(
                "counts",
                format!("class {c} has no items to repeat: expected a target of 0 for it"),
            ));
        }
        for _ in items.len()..t {
            out.push(items[rng.below(items.len())]);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Random under-sampling: keeps, per class, a uniformly drawn subset (without replacement) of
/// the class's target size. A target above a class's count is an error. The result is sorted.
pub fn random_undersample(
    indices: &[usize],
    labels: &[usize],
    target: &Target,
    seed: u64,
) -> Result<Vec<usize>, DataError> {
    let mut groups = by_class(indices, labels)?;
    let want = targets(&groups, target)?;
    let mut rng = Rng::new(seed ^ 0x0DE5_A3B1_E000_0002);
    let mut out = Vec::new();
    for (c, &t) in want.iter().enumerate() {
        let Some(items) = groups.get_mut(c) else {
            if t > 0 {
                return Err(DataError::value(
                    "counts",
                    format!("class {c} has 0 items, target {t}: under-sampling expects targets <= the class counts"),
                ));
            }
            continue;
        };
        if t > items.len() {
            return Err(DataError::value(
                "counts",
                format!(
                    "class {c} has {} items, target {t}: under-sampling expects targets <= the class counts",
                    items.len()
                ),
            ));
        }
        // The first t steps of a Fisher–Yates shuffle: a uniform t-subset.
        for i in 0..t {
            let j = i + rng.below(items.len() - i);
            items.swap(i, j);
        }
        out.extend_from_slice(&items[..t]);
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels of 0..40: class 0 ×20 (i < 20), class 1 ×12, class 2 ×0, class 3 ×8.
    fn labels() -> Vec<usize> {
        (0..40)
            .map(|i| match i {
                0..=19 => 0,
                20..=31 => 1,
                _ => 3,
            })
            .collect()
    }

    fn per_class(idx: &[usize], labels: &[usize]) -> Vec<usize> {
        let mut c = vec![0; 4];
        for &i in idx {
            c[labels[i]] += 1;
        }
        c
    }

    #[test]
    fn oversampling_reaches_the_targets_and_keeps_every_item() {
        let labels = labels();
        // Only odd items take part.
        let idx: Vec<usize> = (0..40).filter(|i| i % 2 == 1).collect();
        let out = random_oversample(&idx, &labels, &Target::Majority, 7).unwrap();
        assert_eq!(per_class(&out, &labels), [10, 10, 0, 10]);
        for i in &idx {
            assert!(out.contains(i));
        }
        assert!(
            out.iter().all(|i| i % 2 == 1),
            "drew an item not in the list"
        );
        assert_eq!(
            out,
            random_oversample(&idx, &labels, &Target::Majority, 7).unwrap()
        );
        assert_ne!(
            out,
            random_oversample(&idx, &labels, &Target::Majority, 8).unwrap()
        );

        let out = random_oversample(&idx, &labels, &Target::Counts(vec![13, 6, 0, 30]), 1).unwrap();
        assert_eq!(per_class(&out, &labels), [13, 6, 0, 30]);
        let e = random_oversample(&idx, &labels, &Target::Counts(vec![9, 6, 0, 4]), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("class 0 has 10 items, target 9"), "{e}");
        let e = random_oversample(&idx, &labels, &Target::Counts(vec![10, 6, 1, 4]), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("class 2 has no items"), "{e}");
        assert!(random_oversample(&idx, &labels, &Target::Counts(vec![10, 6]), 1).is_err());
        assert!(random_oversample(&[99], &labels, &Target::Majority, 1).is_err());
    }

    #[test]
    fn undersampling_draws_distinct_subsets() {
        let labels = labels();
        let idx: Vec<usize> = (0..40).collect();
        let out = random_undersample(&idx, &labels, &Target::Minority, 3).unwrap();
        assert_eq!(per_class(&out, &labels), [8, 8, 0, 8]);
        let mut dedup = out.clone();
        dedup.dedup();
        assert_eq!(dedup, out, "an item drawn twice");
        assert_eq!(
            out,
            random_undersample(&idx, &labels, &Target::Minority, 3).unwrap()
        );
        let out = random_undersample(&idx, &labels, &Target::Counts(vec![1, 12, 0, 0]), 3).unwrap();
        assert_eq!(per_class(&out, &labels), [1, 12, 0, 0]);
        let e = random_undersample(&idx, &labels, &Target::Counts(vec![1, 13, 0, 0]), 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("class 1 has 12 items, target 13"), "{e}");
        let e = random_undersample(&idx, &labels, &Target::Counts(vec![1, 1, 0, 1, 1]), 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("class 4 has 0 items"), "{e}");
        // Every item of a class is equally likely to stay: over many seeds, each of the 20
        // class-0 items is kept about 8/20 of the time.
        let mut kept = [0usize; 20];
        for seed in 0..500 {
            for i in random_undersample(&idx, &labels, &Target::Minority, seed).unwrap() {
                if i < 20 {
                    kept[i] += 1;
                }
            }
        }
        assert!(kept.iter().all(|&k| (150..250).contains(&k)), "{kept:?}");
    }
}
