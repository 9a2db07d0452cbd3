//! Channel rounding for width multipliers.

/// Rounds `v` to the nearest multiple of `divisor` (at least `divisor`), never more than 10 % below
/// `v`: the rule every MobileNet V2/V3 implementation (and torchvision) uses for width multipliers.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

#[cfg(test)]
mod tests {
    use super::make_divisible;

    #[test]
    fn matches_torchvision_channel_counts() {
        // torchvision mobilenet_v2(width_mult=0.35 / 0.5 / 1.4): stem 16 / 16 / 48 channels,
        // first block 8 / 8 / 24, last stage 112 / 160 / 448.
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(16.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(320.0 * 0.35, 8), 112);
        assert_eq!(make_divisible(32.0 * 0.5, 8), 16);
        assert_eq!(make_divisible(320.0 * 0.5, 8), 160);
        assert_eq!(make_divisible(32.0 * 1.4, 8), 48);
        assert_eq!(make_divisible(320.0 * 1.4, 8), 448);
        // Never more than 10 % down: 0.75 · 24 = 18 rounds to 24, not 16.
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24);
    }

    /// The runtime's test MobileNetV2 had its own (f32) copy of this rule and this test; the
    /// values are torchvision's `_make_divisible`.
    #[test]
    fn make_divisible_matches_torchvision() {
        // Values from torchvision.models._utils._make_divisible.
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(16.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24);
        assert_eq!(make_divisible(96.0 * 0.5, 8), 48);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
    }
}
