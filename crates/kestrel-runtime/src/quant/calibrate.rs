//! Activation ranges for calibration (placeholder: min/max only; replaced by the full estimators).

/// How a value's clipping range is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Smallest and largest value seen.
    MinMax,
    /// Percentile.
    Percentile(f64),
    /// KL divergence.
    Entropy,
}

/// One value's range estimator.
pub struct Observer {
    lo: f32,
    hi: f32,
}

impl Observer {
    /// A fresh estimator.
    pub fn new(_method: Method) -> Self {
        Observer {
            lo: f32::INFINITY,
            hi: f32::NEG_INFINITY,
        }
    }
    /// Passes over the data.
    pub fn passes(&self) -> usize {
        1
    }
    /// Sees a batch.
    pub fn observe(&mut self, _pass: usize, x: &[f32]) {
        for &v in x {
            if v.is_finite() {
                self.lo = self.lo.min(v);
                self.hi = self.hi.max(v);
            }
        }
    }
    /// The range.
    pub fn range(&self) -> (f32, f32) {
        if self.lo > self.hi {
            (0.0, 0.0)
        } else {
            (self.lo, self.hi)
        }
    }
}
