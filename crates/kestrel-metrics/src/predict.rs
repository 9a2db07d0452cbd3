//! Turning scores into predicted classes.

/// Index of the largest value; the lowest index wins ties (as `numpy.argmax`).
/// Returns 0 for an empty row.
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// [`argmax`] of every row of a row-major `n × n_classes` matrix.
/// Returns an empty vector when `n_classes` is 0.
pub fn argmax_rows(probs: &[f64], n_classes: usize) -> Vec<usize> {
    if n_classes == 0 {
        return Vec::new();
    }
    probs.chunks_exact(n_classes).map(argmax).collect()
}

/// Binary predictions: class 1 when `score >= threshold`, else class 0.
pub fn threshold_predictions(scores: &[f64], threshold: f64) -> Vec<usize> {
    scores
        .iter()
        .map(|&s| usize::from(s >= threshold))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_index_wins() {
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax_rows(&[0.1, 0.9, 0.5, 0.5], 2), vec![1, 0]);
        assert_eq!(threshold_predictions(&[0.5, 0.49], 0.5), vec![1, 0]);
    }
}
