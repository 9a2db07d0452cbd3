//! Element-wise operations: addition with activation, clipping.

use super::epilogue::clamp;
use crate::Activation;

/// `out = act(a + b)`.
pub fn add(a: &[f32], b: &[f32], act: Activation, out: &mut [f32]) {
    let (lo, hi) = act.bounds();
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = clamp(x + y, lo, hi);
    }
}

/// `out = min(max(x, lo), hi)`.
pub fn clip(x: &[f32], lo: f32, hi: f32, out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = clamp(*v, lo, hi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_clip() {
        let mut out = [0.0; 3];
        add(
            &[1.0, -2.0, 3.0],
            &[0.5, 1.0, 4.0],
            Activation::Relu6,
            &mut out,
        );
        assert_eq!(out, [1.5, 0.0, 6.0]);
        clip(&[-5.0, 0.25, 9.0], -1.0, 1.0, &mut out);
        assert_eq!(out, [-1.0, 0.25, 1.0]);
    }
}
