//! Deterministic synthetic weights and inputs, reproducible bit for bit in NumPy
//! (`tools/runtime_fixtures.py`), for tests and benchmarks before trained weights exist.

/// SplitMix64 finaliser.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

/// `n` values uniform in `[-scale, scale)`: element `i` of stream `stream` under `seed` is
/// `(top24(splitmix64(seed << 40 ^ stream << 24 ^ i)) / 2^24 · 2 − 1) · scale`, in `f32`.
/// `stream` < 2^16 and `n` ≤ 2^24.
pub fn uniform(seed: u64, stream: u64, n: usize, scale: f32) -> Vec<f32> {
    assert!(
        stream < (1 << 16) && n <= (1 << 24),
        "synthetic stream out of range"
    );
    (0..n as u64)
        .map(|i| {
            let z = splitmix64((seed << 40) ^ (stream << 24) ^ i);
            let u = (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            u * scale
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_range() {
        // splitmix64(0) is the published first output of SplitMix64 seeded with 0.
        assert_eq!(splitmix64(0), 0xE220A8397B1DCDAF);
        let v = uniform(3, 7, 10_000, 0.5);
        assert!(v.iter().all(|x| (-0.5..0.5).contains(x)));
        let mean: f32 = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.02, "{mean}");
        assert_ne!(uniform(3, 7, 4, 1.0), uniform(3, 8, 4, 1.0));
    }
}
