//! Folding an eval-mode batch norm into the convolution before it.
//!
//! In eval mode `bn(conv(x)) = γ·(W∗x + b − μ)/√(σ² + ε) + β`, which is a convolution with weights
//! `W' = W·s` and bias `b' = β + (b − μ)·s`, `s = γ/√(σ² + ε)` per output channel.

/// A batch norm's eval-mode parameters, one value per channel.
#[derive(Debug, Clone, Copy)]
pub struct BnStats<'a> {
    /// Scale γ.
    pub gamma: &'a [f32],
    /// Shift β.
    pub beta: &'a [f32],
    /// Running mean μ.
    pub mean: &'a [f32],
    /// Running variance σ².
    pub var: &'a [f32],
    /// ε added to the variance.
    pub epsilon: f64,
}

/// Folds `bn` into a convolution with `weight` laid out output channel first (OIHW, or `[out][in]`)
/// and an optional `bias`: returns the new weights and bias. Arithmetic is in `f64`, rounded
/// once to `f32`. The caller checks that every slice has one value per output channel
/// (`bn.gamma.len()`) and that `weight.len()` is a multiple of it.
pub fn fold_batch_norm(weight: &[f32], bias: Option<&[f32]>, bn: &BnStats) -> (Vec<f32>, Vec<f32>) {
    let out = bn.gamma.len();
    let per_out = weight.len() / out.max(1);
    let scale: Vec<f64> = (0..out)
        .map(|o| bn.gamma[o] as f64 / (bn.var[o] as f64 + bn.epsilon).sqrt())
        .collect();
    let w = weight
        .chunks(per_out.max(1))
        .zip(&scale)
        .flat_map(|(row, &s)| row.iter().map(move |&v| (v as f64 * s) as f32))
        .collect();
    let b = (0..out)
        .map(|o| {
            let b0 = bias.map_or(0.0, |b| b[o] as f64);
            (bn.beta[o] as f64 + (b0 - bn.mean[o] as f64) * scale[o]) as f32
        })
        .collect();
    (w, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_data::rng::Rng;

    /// Brute force: a 1×1 convolution followed by batch norm, evaluated on random inputs, equals
    /// the folded convolution on the same inputs.
    #[test]
    fn folded_convolution_equals_convolution_then_batch_norm() {
        let mut rng = Rng::new(7);
        let (cin, cout) = (5, 4);
        let mut r = |lo: f64, hi: f64, n: usize| -> Vec<f32> {
            (0..n).map(|_| rng.uniform(lo, hi) as f32).collect()
        };
        let w = r(-1.0, 1.0, cout * cin);
        let b = r(-0.5, 0.5, cout);
        let (gamma, beta, mean, var) = (
            r(0.5, 2.0, cout),
            r(-1.0, 1.0, cout),
            r(-1.0, 1.0, cout),
            r(0.1, 3.0, cout),
        );
        let eps = 1e-3;
        let bn = BnStats {
            gamma: &gamma,
            beta: &beta,
            mean: &mean,
            var: &var,
            epsilon: eps,
        };
        let (fw, fb) = fold_batch_norm(&w, Some(&b), &bn);
        for _ in 0..10 {
            let x = r(-2.0, 2.0, cin);
            for o in 0..cout {
                let conv: f64 = (0..cin)
                    .map(|i| (w[o * cin + i] * x[i]) as f64)
                    .sum::<f64>()
                    + b[o] as f64;
                let want = (conv - mean[o] as f64) / (var[o] as f64 + eps).sqrt() * gamma[o] as f64
                    + beta[o] as f64;
                let got: f64 = (0..cin)
                    .map(|i| (fw[o * cin + i] * x[i]) as f64)
                    .sum::<f64>()
                    + fb[o] as f64;
                assert!((got - want).abs() < 1e-5, "channel {o}: {got} vs {want}");
            }
        }
        // Without a bias the conv contributes nothing to b'.
        let (_, fb0) = fold_batch_norm(&w, None, &bn);
        let want0 =
            beta[0] as f64 - mean[0] as f64 * gamma[0] as f64 / (var[0] as f64 + eps).sqrt();
        assert!((fb0[0] as f64 - want0).abs() < 1e-6);
    }
}
