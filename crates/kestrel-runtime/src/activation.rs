//! Activations fused into kernel epilogues.

use serde::{Deserialize, Serialize};

/// An element-wise activation applied after bias (and residual) in a fused epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`, as in MobileNetV2.
    Relu6,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }

    /// Lower and upper clamp bounds equivalent to this activation.
    pub fn bounds(self) -> (f32, f32) {
        match self {
            Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::manual_clamp)] // the definition, written independently of `clamp`
    fn apply_matches_definitions() {
        for &x in &[-3.0f32, -0.0, 0.5, 5.99, 6.0, 7.5] {
            assert_eq!(Activation::None.apply(x), x);
            assert_eq!(Activation::Relu.apply(x), if x > 0.0 { x } else { 0.0 });
            let r6 = if x < 0.0 {
                0.0
            } else if x > 6.0 {
                6.0
            } else {
                x
            };
            assert_eq!(Activation::Relu6.apply(x), r6);
            let (lo, hi) = Activation::Relu6.bounds();
            assert_eq!(x.max(lo).min(hi), r6);
        }
    }
}
