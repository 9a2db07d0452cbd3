//! Drawing item indices with replacement, in proportion to per-item weights.

use crate::error::DataError;
use crate::rng::Rng;

/// A weighted sampler over items `0..n`: Walker's alias method (built with Vose's procedure), so
/// each draw costs one uniform index and one uniform number whatever the weights.
#[derive(Clone, Debug)]
pub struct WeightedSampler {
    /// Probability of keeping column `i` rather than taking its alias.
    prob: Vec<f64>,
    /// The other item of column `i`.
    alias: Vec<usize>,
}

impl WeightedSampler {
    /// A sampler drawing item `i` with probability `weights[i] / Σ weights`. Weights must be
    /// finite and non-negative, with a positive sum; zero-weight items are never drawn.
    pub fn new(weights: &[f64]) -> Result<Self, DataError> {
        if let Some((i, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(DataError::value(
                "weights",
                format!("weight {i} is {w}: expected a finite number >= 0"),
            ));
        }
        let total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(DataError::value(
                "weights",
                format!("the weights sum to {total}: expected a positive, finite sum"),
            ));
        }
        let n = weights.len();
        // Scaled so the mean is 1: column i holds mass scaled[i] of its own item at first.
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![0.0; n];
        let mut alias: Vec<usize> = (0..n).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            prob[s] = scaled[s];
            alias[s] = l;
            // The large item gives 1 − scaled[s] of its mass to fill column s.
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // What is left has mass 1 up to rounding.
        let some_positive = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
        for i in large.into_iter().chain(small) {
            if weights[i] > 0.0 {
                prob[i] = 1.0;
            } else {
                prob[i] = 0.0;
                alias[i] = some_positive;
            }
        }
        Ok(Self { prob, alias })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.prob.len()
    }

    /// Whether there are no items (never, for a sampler that was built).
    pub fn is_empty(&self) -> bool {
        self.prob.is_empty()
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.prob.len());
        if rng.next_f64() < self.prob[i] {
            i
        } else {
            self.alias[i]
        }
    }

    /// `count` draws with replacement, e.g. one epoch's order; pass `Rng::stream(seed, epoch)`
    /// for a different, reproducible order each epoch.
    pub fn draw(&self, count: usize, rng: &mut Rng) -> Vec<usize> {
        (0..count).map(|_| self.sample(rng)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probability the table gives each item: column `j` is picked with probability 1/n and
    /// yields `j` with probability prob[j], its alias otherwise.
    fn table_probabilities(s: &WeightedSampler) -> Vec<f64> {
        let n = s.prob.len() as f64;
        let mut p = vec![0.0; s.prob.len()];
        for j in 0..s.prob.len() {
            p[j] += s.prob[j] / n;
            p[s.alias[j]] += (1.0 - s.prob[j]) / n;
        }
        p
    }

    #[test]
    fn table_reproduces_the_weights_exactly() {
        let cases: [&[f64]; 5] = [
            &[1.0],
            &[1.0, 1.0, 1.0],
            &[0.1, 5.0, 0.0, 2.5, 0.4],
            &[1e-9, 1.0, 1e6, 3.0],
            &[0.0, 0.0, 7.0, 0.0],
        ];
        for w in cases {
            let s = WeightedSampler::new(w).unwrap();
            let total: f64 = w.iter().sum();
            let p = table_probabilities(&s);
            for (i, (&pi, &wi)) in p.iter().zip(w).enumerate() {
                assert!((pi - wi / total).abs() < 1e-12, "{w:?}: item {i} {pi}");
                if wi == 0.0 {
                    assert_eq!(s.prob[i], 0.0);
                    assert!(s
                        .alias
                        .iter()
                        .enumerate()
                        .all(|(j, &a)| a != i || s.prob[j] == 1.0));
                }
            }
        }
    }

    #[test]
    fn draws_follow_the_weights_and_the_seed() {
        let w = [1.0, 0.0, 3.0, 6.0];
        let s = WeightedSampler::new(&w).unwrap();
        let draws = s.draw(20_000, &mut Rng::new(11));
        assert_eq!(draws, s.draw(20_000, &mut Rng::new(11)));
        let mut seen = [0usize; 4];
        for d in draws {
            seen[d] += 1;
        }
        assert_eq!(seen[1], 0);
        for (c, wi) in seen.iter().zip(w) {
            let expected = 20_000.0 * wi / 10.0;
            assert!(
                (*c as f64 - expected).abs() < 5.0 * expected.sqrt() + 1.0,
                "{seen:?}"
            );
        }
    }

    #[test]
    fn bad_weights_are_named() {
        assert!(WeightedSampler::new(&[]).is_err());
        assert!(WeightedSampler::new(&[0.0, 0.0]).is_err());
        let e = WeightedSampler::new(&[1.0, -2.0]).unwrap_err().to_string();
        assert!(e.contains("weight 1 is -2"), "{e}");
        assert!(WeightedSampler::new(&[1.0, f64::NAN]).is_err());
        assert!(WeightedSampler::new(&[f64::MAX, f64::MAX]).is_err());
    }
}
