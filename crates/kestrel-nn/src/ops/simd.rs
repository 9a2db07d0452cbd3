//! Running a kernel's loops compiled for the CPU's vector units.
//!
//! The workspace builds for the baseline x86-64 target (SSE2), so plain Rust loops vectorise only
//! four lanes wide. [`simd_kernel!`] defines a function whose body is also compiled with AVX2 and
//! FMA enabled, and with AVX-512, and runs the widest version the CPU has (checked at run time),
//! so its loops — and the `#[inline(always)]` helpers they call — vectorise eight or sixteen
//! lanes wide. The arithmetic is unchanged (Rust never contracts `a * b + c` into an FMA by
//! itself, and the kernels' lane sums are written out), so every version gives the same bits.

/// Defines a kernel function whose body is compiled three times — for the baseline target, with
/// AVX2 + FMA and with AVX-512 enabled — and which runs the widest the CPU has. The body is an
/// `#[inline(always)]` function called from each, so it is always compiled inside the AVX2 and
/// AVX-512 versions (a closure handed to such a function may stay un-inlined, and so
/// un-vectorised). Parameters must be plain (non-generic) types.
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
                /// The body compiled with AVX2 and FMA.
                ///
                /// # Safety
                /// AVX2 and FMA must be available on this CPU.
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($a: $t),*) $(-> $r)? {
                    imp($($a),*)
                }
                /// The body compiled with AVX-512 (its loops vectorise sixteen lanes wide).
                ///
                /// # Safety
                /// AVX-512F and VL, AVX2 and FMA must be available on this CPU.
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($a: $t),*) $(-> $r)? {
                    imp($($a),*)
                }
                if kestrel_runtime::kernels::avx512_available() {
                    // SAFETY: AVX-512F/VL, AVX2 and FMA were detected on this CPU.
                    return unsafe { avx512($($a),*) };
                }
                if kestrel_runtime::kernels::simd_available() {
                    // SAFETY: AVX2 and FMA were detected on this CPU.
                    return unsafe { avx2($($a),*) };
                }
            }
            imp($($a),*)
        }
    };
}
pub(crate) use simd_kernel;

/// The sum of `L` (a power of two) lanes by halving — lane-wise adds the compiler vectorises,
/// where a sequential sum of the lanes is `L` dependent scalar additions.
#[inline(always)]
pub(crate) fn lane_sum<const L: usize>(mut a: [f32; L]) -> f32 {
    let mut n = L;
    while n > 1 {
        let h = n / 2;
        for j in 0..h {
            a[j] += a[j + h];
        }
        n = h;
    }
    a[0]
}
