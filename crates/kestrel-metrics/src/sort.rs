//! Sorting scores fast: f64 values become order-preserving `u64` keys, which
//! the standard library's pattern-defeating sorts order much faster than
//! comparisons of floats (measured faster than an 11-bit LSD radix sort too).

/// Maps a non-NaN `f64` to a `u64` whose unsigned order is the numeric order
/// of the scores. `-0.0` and `0.0` map to the same key, as they compare equal.
#[inline]
pub(crate) fn ascending_key(x: f64) -> u64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// A key whose ascending order is the descending order of the scores.
#[inline]
pub(crate) fn descending_key(x: f64) -> u64 {
    !ascending_key(x)
}

/// Inverse of [`descending_key`].
#[inline]
pub(crate) fn from_descending_key(k: u64) -> f64 {
    let a = !k;
    let bits = if a >> 63 == 1 { a & !(1 << 63) } else { !a };
    f64::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order_and_round_trip() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.5,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            0.25,
            1.0,
            1e300,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(ascending_key(w[0]) < ascending_key(w[1]), "{w:?}");
            assert!(descending_key(w[0]) > descending_key(w[1]), "{w:?}");
        }
        for &x in &xs {
            assert_eq!(from_descending_key(descending_key(x)), x);
        }
        assert_eq!(ascending_key(-0.0), ascending_key(0.0));
    }
}
