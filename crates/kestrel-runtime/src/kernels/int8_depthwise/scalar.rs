//! The portable tap of the int8 depthwise convolution: the reference.

/// `acc[i] += (x[i] − zero)·w[i]`.
pub(super) fn tap(acc: &mut [i32], x: &[u8], w: &[i8], zero: u8) {
    for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
        *a += (i32::from(x) - i32::from(zero)) * i32::from(w);
    }
}
