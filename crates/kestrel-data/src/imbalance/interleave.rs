//! Orders in which items of the same class stand at least `k` positions apart, e.g. so that a
//! batch of `k` consecutive items never repeats a class.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// An order of the items `0..labels.len()` in which any two items with equal labels are at least
/// `k` positions apart (`|i − j| ≥ k`), or `None` when no such order exists. Items of one label
/// keep their relative order.
///
/// Greedy: at each position, place the next item of the label with the most items left among
/// those not placed in the last `k − 1` positions (ties to the lower label); a label just used
/// waits in a first-in first-out cool-down queue. Taking the label with the most left first is
/// what keeps this from painting itself into a corner: it finds an order whenever one exists,
/// which is exactly when `(m − 1) · k + p ≤ n` for `n` items, `m` the largest label count and
/// `p` the number of labels with `m` items.
pub fn interleave(labels: &[usize], k: usize) -> Option<Vec<usize>> {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut queues: Vec<VecDeque<usize>> = vec![VecDeque::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        queues[l].push_back(i);
    }
    // (items left, Reverse(label)): the max-heap pops the most items left, then the lower label.
    let mut ready: BinaryHeap<(usize, Reverse<usize>)> = queues
        .iter()
        .enumerate()
        .filter(|(_, q)| !q.is_empty())
        .map(|(l, q)| (q.len(), Reverse(l)))
        .collect();
    // (position from which the label may be used again, label).
    let mut cooling: VecDeque<(usize, usize)> = VecDeque::new();
    let mut order = Vec::with_capacity(labels.len());
    for pos in 0..labels.len() {
        while let Some(&(free_at, l)) = cooling.front() {
            if free_at > pos {
                break;
            }
            cooling.pop_front();
            ready.push((queues[l].len(), Reverse(l)));
        }
        let (_, Reverse(l)) = ready.pop()?;
        order.push(queues[l].pop_front()?);
        if !queues[l].is_empty() {
            cooling.push_back((pos + k, l));
        }
    }
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether some sequence of the multiset `counts` keeps equal labels `k` apart: exhaustive
    /// search over every sequence, extending a prefix only by labels last used at least `k`
    /// positions ago.
    fn exists_brute(
        counts: &mut [usize],
        last: &mut [Option<usize>],
        pos: usize,
        k: usize,
    ) -> bool {
        if counts.iter().all(|&c| c == 0) {
            return true;
        }
        for l in 0..counts.len() {
            if counts[l] == 0 || last[l].is_some_and(|p| pos - p < k) {
                continue;
            }
            let before = last[l];
            counts[l] -= 1;
            last[l] = Some(pos);
            let found = exists_brute(counts, last, pos + 1, k);
            counts[l] += 1;
            last[l] = before;
            if found {
                return true;
            }
        }
        false
    }

    fn check(labels: &[usize], k: usize, order: &[usize]) {
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..labels.len()).collect::<Vec<_>>(),
            "not a permutation"
        );
        for i in 0..order.len() {
            for j in i + 1..order.len().min(i + k) {
                assert_ne!(labels[order[i]], labels[order[j]], "{order:?} at {i}, {j}");
            }
        }
    }

    #[test]
    fn hand_cases() {
        // a a a b b c, k = 3: a b c a b . a — needs 7 positions, only 6: impossible.
        assert_eq!(interleave(&[0, 0, 0, 1, 1, 2], 3), None);
        // a a b b c c, k = 3: a b c a b c.
        let order = interleave(&[0, 0, 1, 1, 2, 2], 3).unwrap();
        let got: Vec<usize> = order.iter().map(|&i| [0, 0, 1, 1, 2, 2][i]).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
        // Items of one label keep their order.
        assert_eq!(interleave(&[1, 0, 1, 0], 2), Some(vec![1, 0, 3, 2]));
        assert_eq!(interleave(&[], 5), Some(vec![]));
        assert_eq!(interleave(&[4, 4], 0), Some(vec![0, 1]));
        assert_eq!(interleave(&[4, 4], 2), None);
    }

    proptest! {
        #[test]
        fn found_exactly_when_one_exists(
            labels in proptest::collection::vec(0usize..4, 0..9),
            k in 0usize..5,
        ) {
            let mut counts = [0usize; 4];
            for &l in &labels {
                counts[l] += 1;
            }
            let exists = exists_brute(&mut counts, &mut [None; 4], 0, k);
            let found = interleave(&labels, k);
            prop_assert_eq!(found.is_some(), exists);
            // The closed form the documentation states.
            let m = counts.iter().copied().max().unwrap_or(0);
            let p = counts.iter().filter(|&&c| c == m).count();
            prop_assert_eq!(exists, m == 0 || (m - 1) * k + p <= labels.len());
            if let Some(order) = found {
                check(&labels, k, &order);
            }
        }
    }
}
