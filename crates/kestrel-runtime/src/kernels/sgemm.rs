//! A thin, safe-by-contract wrapper over the `gemm` crate for row-major single-precision products.

/// `c[m×n] = a[m×k] · b[k×n]`, row-major with leading dimensions `lda`, `ldb`, `ldc`, overwriting
/// `c`, on the calling thread.
///
/// Panics (a programming error, never user input) when a slice is too short for its shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "sgemm: lhs too short");
    assert!(
        k == 0 || b.len() >= (k - 1) * ldb + n,
        "sgemm: rhs too short"
    );
    assert!(c.len() >= (m - 1) * ldc + n, "sgemm: dst too short");
    // SAFETY: the assertions above keep every access of an m×k, k×n and m×n row-major matrix with
    // these leading dimensions inside the slices; `c` is exclusively borrowed.
    unsafe {
        sgemm_raw(
            m,
            n,
            k,
            a.as_ptr(),
            lda,
            b.as_ptr(),
            ldb,
            c.as_mut_ptr(),
            ldc,
        )
    }
}

/// Raw-pointer form of [`sgemm`], for writing disjoint column blocks of one output from several
/// threads.
///
/// # Safety
/// The pointers must be valid for the row-major shapes given, and no other thread may access the
/// m×n block of `c` during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_raw(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: row-major operands with unit column steps: this function's contract is
    // `strided_raw`'s.
    unsafe { strided_raw(m, n, k, (a, lda, 1), (b, ldb, 1), c, ldc, false) }
}

/// The one call into the `gemm` crate: `c = a · b` (or `c += a · b` with `accumulate`) with `a`
/// and `b` given as (pointer, row step, column step) and `c` row-major with leading dimension
/// `ldc`; with `k = 0` the product is zero.
///
/// # Safety
/// The pointers must be valid for the shapes and steps given, and no other thread may access the
/// m×n block of `c` during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn strided_raw(
    m: usize,
    n: usize,
    k: usize,
    (a, a_rs, a_cs): (*const f32, usize, usize),
    (b, b_rs, b_cs): (*const f32, usize, usize),
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row `i` of the m×n block of `c`, valid and unshared (the caller's
                // contract).
                unsafe { std::ptr::write_bytes(c.add(i * ldc), 0, n) };
            }
        }
        return;
    }
    // SAFETY: `gemm` reads `a` and `b` and writes the m×n block of `c` through the pointers
    // and steps given, which the caller made valid and unshared.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            accumulate,
            a,
            a_cs as isize,
            a_rs as isize,
            b,
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product_with_strides() {
        let (m, n, k) = (5, 7, 3);
        let (lda, ldb, ldc) = (4, 9, 8);
        let a: Vec<f32> = (0..m * lda).map(|i| (i % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..k * ldb).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        let mut c = vec![f32::NAN; m * ldc];
        sgemm(m, n, k, &a, lda, &b, ldb, &mut c, ldc);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * lda + p] * b[p * ldb + j]).sum();
                assert!((c[i * ldc + j] - want).abs() < 1e-5);
            }
            // untouched padding columns stay NaN
            assert!(c[i * ldc + n].is_nan());
        }
    }
}
