//! Running a kernel's loops compiled for the CPU's vector units.
//!
//! The workspace builds for the baseline x86-64 target (SSE2), so plain Rust loops vectorise only
//! four lanes wide. [`vectorized`] runs a closure inside a function compiled with AVX2 and FMA
//! enabled when the CPU has them (checked once, at run time), so the loops inlined into it —
//! kernels mark their inner functions `#[inline(always)]` — vectorise eight lanes wide. The
//! arithmetic is unchanged (Rust never contracts `a * b + c` into an FMA by itself), so both paths
//! give the same bits.

use std::sync::OnceLock;

/// Whether AVX2 and FMA are available (cached).
pub(crate) fn avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Calls `f`, compiled for AVX2 + FMA where the CPU has them.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: AVX2 and FMA were detected on this CPU.
        return unsafe { run(f) };
    }
    f()
}

/// Defines a kernel function whose body is compiled twice — for the baseline target and with
/// AVX2 + FMA enabled — and which runs the second where the CPU has them. Unlike [`vectorized`],
/// whose closure the compiler may leave un-inlined (and so un-vectorised), the body here is
/// always compiled inside the AVX2 function. Parameters must be plain (non-generic) types.
macro_rules! simd_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($a: $t),*) $(-> $r)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($a: $t),*) $(-> $r)? {
                    imp($($a),*)
                }
                if $crate::ops::simd::avx2() {
                    // SAFETY: AVX2 and FMA were detected on this CPU.
                    return unsafe { avx2($($a),*) };
                }
            }
            imp($($a),*)
        }
    };
}
pub(crate) use simd_kernel;

/// `Σ f(a[i], b[i])` over two equal-length slices with sixteen partial sums.
#[inline(always)]
pub(crate) fn sum_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..16 {
            lanes[j] += f(x[j], y[j]);
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_match_f64_sums() {
        for n in [0usize, 1, 15, 16, 17, 100, 1000] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5) % 11) as f32 * 0.25).collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let got = vectorized(|| sum_pairs(&a, &b, |x, y| x * y)) as f64;
            assert!((got - want).abs() < 1e-3, "{n}: {got} vs {want}");
        }
    }
}
