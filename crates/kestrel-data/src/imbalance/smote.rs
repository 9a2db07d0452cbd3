//! SMOTE (Chawla et al., 2002) on feature vectors, as imbalanced-learn defines it.
//!
//! For each synthetic sample of class `c`: draw a sample `x` of class `c` uniformly, draw one of
//! its `k` nearest neighbours `z` within class `c` uniformly (Euclidean distance, `x` itself
//! excluded, ties to the lower index), draw `u` uniformly from [0, 1), and emit `x + u · (z − x)`.
//! Neighbours are found by brute force, O(n_c² · d) per class: meant for embeddings of datasets up
//! to some thousands of items per class.

use crate::error::DataError;
use crate::rng::Rng;

/// Samples after SMOTE: the originals first, in their order, then the synthetic ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Resampled {
    /// Feature vectors.
    pub x: Vec<Vec<f32>>,
    /// Their classes.
    pub y: Vec<usize>,
    /// Number of original samples (the first ones).
    pub n_original: usize,
}

/// The `k` nearest members of `members` to `members[a]` (positions within `members`).
fn nearest(x: &[Vec<f32>], members: &[usize], a: usize, k: usize) -> Vec<usize> {
    let base = &x[members[a]];
    let mut d: Vec<(f64, usize)> = members
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != a)
        .map(|(j, &m)| {
            let dist: f64 = base
                .iter()
                .zip(&x[m])
                .map(|(p, q)| {
                    let t = *p as f64 - *q as f64;
                    t * t
                })
                .sum();
            (dist, j)
        })
        .collect();
    d.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
    d.into_iter().take(k).map(|(_, j)| j).collect()
}

/// Over-samples `(x, y)` with SMOTE so that class `c` ends with exactly `target[c]` samples.
///
/// Errors: vectors of different lengths or non-finite values; a label without a target; a target
/// below a class's count (SMOTE only adds); and, for a class that must grow, fewer than 2 samples
/// or `k` not below its size (a sample needs `k` neighbours other than itself).
pub fn smote(
    x: &[Vec<f32>],
    y: &[usize],
    target: &[usize],
    k: usize,
    seed: u64,
) -> Result<Resampled, DataError> {
    if x.len() != y.len() {
        return Err(DataError::value(
            "y",
            format!(
                "{} labels for {} feature vectors: expected one each",
                y.len(),
                x.len()
            ),
        ));
    }
    let dim = x.first().map_or(0, Vec::len);
    if let Some(i) = x.iter().position(|v| v.len() != dim) {
        return Err(DataError::value(
            "x",
            format!(
                "vector {i} has {} values: expected {dim}, as vector 0",
                x[i].len()
            ),
        ));
    }
    if let Some(i) = x.iter().position(|v| v.iter().any(|f| !f.is_finite())) {
        return Err(DataError::value(
            "x",
            format!("vector {i} holds a non-finite value"),
        ));
    }
    if k == 0 {
        return Err(DataError::value("k", "expected at least 1 neighbour"));
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); target.len()];
    for (i, &l) in y.iter().enumerate() {
        members
            .get_mut(l)
            .ok_or_else(|| {
                DataError::value(
                    "target",
                    format!("sample {i} has class {l} but {} targets were given: expected one per class", target.len()),
                )
            })?
            .push(i);
    }
    for (c, (&t, m)) in target.iter().zip(&members).enumerate() {
        let n = m.len();
        if t < n {
            return Err(DataError::value(
                "target",
                format!("class {c} has {n} samples, target {t}: SMOTE only adds, expected a target >= {n}"),
            ));
        }
        if t > n && n < 2 {
            return Err(DataError::value(
                "target",
                format!(
                    "class {c} has {n} sample(s): SMOTE needs at least 2 to interpolate between"
                ),
            ));
        }
        if t > n && k >= n {
            return Err(DataError::value(
                "k",
                format!(
                    "class {c} has {n} samples, so k = {k} neighbours cannot be found: expected k <= {}",
                    n - 1
                ),
            ));
        }
    }
    let mut out = Resampled {
        x: x.to_vec(),
        y: y.to_vec(),
        n_original: x.len(),
    };
    let mut rng = Rng::new(seed ^ 0x5307_E000_0000_0003);
    for (c, (&t, m)) in target.iter().zip(&members).enumerate() {
        if t == m.len() {
            continue;
        }
        let neighbours: Vec<Vec<usize>> = (0..m.len()).map(|a| nearest(x, m, a, k)).collect();
        for _ in m.len()..t {
            let a = rng.below(m.len());
            let z = neighbours[a][rng.below(k)];
            let u = rng.next_f64();
            let (xa, xz) = (&x[m[a]], &x[m[z]]);
            let point = xa
                .iter()
                .zip(xz)
                .map(|(&p, &q)| (p as f64 + u * (q as f64 - p as f64)) as f32)
                .collect();
            out.x.push(point);
            out.y.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Squared distance, in f64.
    fn d2(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
            .sum()
    }

    /// Positions (in `x`) of the k nearest same-class samples of sample `a`, by brute force: all
    /// distances sorted, the `k`-th distance as threshold (every sample at most that far counts,
    /// so ties are accepted either way).
    fn knn_brute(x: &[Vec<f32>], y: &[usize], a: usize, k: usize) -> Vec<usize> {
        let mut ds: Vec<f64> = (0..x.len())
            .filter(|&j| j != a && y[j] == y[a])
            .map(|j| d2(&x[a], &x[j]))
            .collect();
        ds.sort_by(f64::total_cmp);
        let kth = ds[k - 1];
        (0..x.len())
            .filter(|&j| j != a && y[j] == y[a] && d2(&x[a], &x[j]) <= kth)
            .collect()
    }

    /// Whether `p` lies on the segment from `a` to `b`: p = a + u (b − a), u in [0, 1].
    fn on_segment(p: &[f32], a: &[f32], b: &[f32]) -> bool {
        let ab: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(x, y)| *y as f64 - *x as f64)
            .collect();
        let ap: Vec<f64> = a
            .iter()
            .zip(p)
            .map(|(x, y)| *y as f64 - *x as f64)
            .collect();
        let len2: f64 = ab.iter().map(|v| v * v).sum();
        if len2 == 0.0 {
            return d2(p, a) < 1e-10;
        }
        let u = ab.iter().zip(&ap).map(|(s, t)| s * t).sum::<f64>() / len2;
        let residual: f64 = ab.iter().zip(&ap).map(|(s, t)| (t - u * s).powi(2)).sum();
        (-1e-6..=1.0 + 1e-6).contains(&u) && residual < 1e-8 * len2.max(1.0)
    }

    /// A majority class 0 spread widely, and a minority class 1 of two far-apart clusters, so
    /// that a neighbour outside the k nearest gives a point off every allowed segment.
    fn data() -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = Rng::new(42);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..30 {
            x.push((0..3).map(|_| rng.uniform(-10.0, 10.0) as f32).collect());
            y.push(0);
        }
        for cluster in [0.0, 50.0] {
            for _ in 0..4 {
                x.push(
                    (0..3)
                        .map(|_| (cluster + rng.uniform(0.0, 1.0)) as f32)
                        .collect(),
                );
                y.push(1);
            }
        }
        (x, y)
    }

    #[test]
    fn synthetic_points_lie_between_a_sample_and_one_of_its_k_nearest() {
        let (x, y) = data();
        let k = 3;
        let out = smote(&x, &y, &[30, 30], k, 9).unwrap();
        assert_eq!(out.n_original, 38);
        assert_eq!(&out.x[..38], &x[..]);
        let counts = [0, 1].map(|c| out.y.iter().filter(|&&l| l == c).count());
        assert_eq!(counts, [30, 30]);
        let minority: Vec<usize> = (0..x.len()).filter(|&i| y[i] == 1).collect();
        for (p, &label) in out.x[38..].iter().zip(&out.y[38..]) {
            assert_eq!(label, 1);
            let ok = minority.iter().any(|&a| {
                knn_brute(&x, &y, a, k)
                    .iter()
                    .any(|&b| on_segment(p, &x[a], &x[b]))
            });
            assert!(
                ok,
                "{p:?} is on no segment to a k-nearest minority neighbour"
            );
            // With k = 3 and clusters of 4, no point may bridge the two clusters.
            assert!(
                p.iter().all(|&v| v < 2.0) || p.iter().all(|&v| v > 49.0),
                "{p:?}"
            );
        }
        assert_eq!(out, smote(&x, &y, &[30, 30], k, 9).unwrap());
        assert_ne!(out, smote(&x, &y, &[30, 30], k, 10).unwrap());
    }

    #[test]
    fn reaches_requested_counts_per_class() {
        let (mut x, mut y) = data();
        // A third class of 3 samples.
        x.extend([
            vec![0.0, 0.0, 100.0],
            vec![1.0, 0.0, 100.0],
            vec![0.0, 2.0, 100.0],
        ]);
        y.extend([2, 2, 2]);
        let out = smote(&x, &y, &[30, 11, 7], 2, 0).unwrap();
        let counts = [0, 1, 2].map(|c| out.y.iter().filter(|&&l| l == c).count());
        assert_eq!(counts, [30, 11, 7]);
        assert_eq!(out.x.len(), 48);
    }

    #[test]
    fn errors_say_what_is_expected() {
        let x = vec![vec![0.0], vec![1.0], vec![2.0], vec![5.0]];
        let e = smote(&x, &[0, 0, 0, 1], &[3, 4], 1, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("class 1 has 1 sample") && e.contains("at least 2"),
            "{e}"
        );
        let e = smote(&x, &[0, 0, 0, 1], &[4, 1], 3, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("k = 3") && e.contains("k <= 2"), "{e}");
        // A class at its target needs nothing, whatever its size.
        assert!(smote(&x, &[0, 0, 0, 1], &[5, 1], 2, 0).is_ok());
        let e = smote(&x, &[0, 0, 0, 1], &[2, 1], 1, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("target 2"), "{e}");
        assert!(smote(&x, &[0, 0, 0, 2], &[3, 1], 1, 0).is_err());
        assert!(smote(&x, &[0, 0, 0], &[3], 1, 0).is_err());
        assert!(smote(&[vec![0.0], vec![1.0, 2.0]], &[0, 0], &[3], 1, 0).is_err());
        assert!(smote(&x, &[0, 0, 0, 1], &[4, 1], 0, 0).is_err());
    }
}
