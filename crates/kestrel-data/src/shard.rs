//! One part of a list split over several workers: the replicas of data-parallel training (each
//! takes its part of every batch) and the shards of a split evaluation or prediction (`--shard
//! I/N`).
//!
//! Part `index` of `count` is contiguous; parts are as equal as possible, the first `len % count`
//! one item longer, so the parts in index order concatenate to the whole list.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Part `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Which part, `0..count`.
    pub index: usize,
    /// How many parts.
    pub count: usize,
}

impl Shard {
    /// The whole list: part 0 of 1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Part `index` of `count`; an error unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if index < count {
            Ok(Shard { index, count })
        } else {
            Err(format!(
                "{index}/{count}: expected I/N with 0 ≤ I < N (the part I of N, counted from 0)"
            ))
        }
    }

    /// Whether this is the whole list.
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// The positions of this part in a list of `len` items.
    pub fn range(self, len: usize) -> Range<usize> {
        let (base, extra) = (len / self.count, len % self.count);
        let start = self.index * base + self.index.min(extra);
        let size = base + usize::from(self.index < extra);
        start..start + size
    }

    /// This part of `items`.
    pub fn slice<T>(self, items: &[T]) -> &[T] {
        &items[self.range(items.len())]
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/3`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s}: expected I/N with 0 ≤ I < N, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_parts_take_the_remainder() {
        let parts: Vec<Range<usize>> = (0..3).map(|i| Shard::new(i, 3).unwrap().range(8)).collect();
        assert_eq!(parts, vec![0..3, 3..6, 6..8]);
        assert_eq!(Shard::new(3, 4).unwrap().range(2), 2..2);
    }

    #[test]
    fn parses_i_of_n() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "1", "a/2", "1/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard::new(1, 4).unwrap().to_string(), "1/4");
    }

    proptest! {
        #[test]
        fn parts_concatenate_to_the_whole(len in 0usize..500, count in 1usize..20) {
            let parts: Vec<Range<usize>> =
                (0..count).map(|i| Shard::new(i, count).unwrap().range(len)).collect();
            let mut next = 0;
            for p in &parts {
                prop_assert_eq!(p.start, next);
                next = p.end;
            }
            prop_assert_eq!(next, len);
            let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }
}
