//! Learning-rate schedules.

/// Linear warm-up from 0 to `peak` over `warmup` steps, then a cosine decay to 0 at `total` steps
/// (the schedule of most modern image-classification recipes).
#[derive(Clone, Copy, Debug)]
pub struct WarmupCosine {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up length in steps.
    pub warmup: usize,
    /// Total number of steps.
    pub total: usize,
}

impl WarmupCosine {
    /// The learning rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        0.5 * self.peak * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_follows_a_half_cosine() {
        let s = WarmupCosine {
            peak: 1.0,
            warmup: 4,
            total: 104,
        };
        assert!((s.lr(0) - 0.25).abs() < 1e-12);
        assert!((s.lr(3) - 1.0).abs() < 1e-12);
        assert!((s.lr(4) - 1.0).abs() < 1e-12);
        assert!((s.lr(54) - 0.5).abs() < 1e-12);
        assert!(s.lr(103) < 1e-3);
    }
}
