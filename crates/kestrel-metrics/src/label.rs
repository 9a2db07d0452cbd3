//! Integer class labels of any width, as they come out of data loaders and masks.

/// A class label: an integer that may be negative or out of range, which the
/// metrics check before use.
pub trait Label: Copy {
    /// The label as a non-negative index, or `None` when it is negative.
    fn to_index(self) -> Option<u64>;
    /// The label as a wide signed integer, for error messages.
    fn as_i128(self) -> i128;
}

macro_rules! unsigned_label {
    ($($t:ty),*) => {$(
        impl Label for $t {
            #[inline]
            fn to_index(self) -> Option<u64> {
                Some(self as u64)
            }
            #[inline]
            fn as_i128(self) -> i128 {
                self as i128
            }
        }
    )*};
}

macro_rules! signed_label {
    ($($t:ty),*) => {$(
        impl Label for $t {
            #[inline]
            fn to_index(self) -> Option<u64> {
                u64::try_from(self).ok()
            }
            #[inline]
            fn as_i128(self) -> i128 {
                self as i128
            }
        }
    )*};
}

unsigned_label!(u8, u16, u32, u64, usize);
signed_label!(i8, i16, i32, i64, isize);

/// Checks every label against `n_classes` and converts them to `usize`.
pub(crate) fn to_indices<L: Label>(
    what: &'static str,
    labels: &[L],
    n_classes: usize,
) -> crate::Result<Vec<usize>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| checked_index(what, i, l, n_classes))
        .collect()
}

/// One label checked against `n_classes`.
#[inline]
pub(crate) fn checked_index<L: Label>(
    what: &'static str,
    index: usize,
    label: L,
    n_classes: usize,
) -> crate::Result<usize> {
    match label.to_index() {
        Some(v) if v < n_classes as u64 => Ok(v as usize),
        _ => Err(crate::MetricsError::LabelOutOfRange {
            what,
            index,
            label: label.as_i128(),
            n_classes,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_large_labels_are_rejected() {
        assert_eq!(to_indices("y", &[0i64, 2, 1], 3).unwrap(), vec![0, 2, 1]);
        let e = to_indices("y_true", &[0i32, -1], 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "y_true[1] is -1, expected a class index in 0..3"
        );
        assert!(to_indices("y", &[3u8], 3).is_err());
        assert!(to_indices("y", &[u64::MAX], 3).is_err());
    }
}
