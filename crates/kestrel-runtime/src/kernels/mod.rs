//! CPU kernels on NHWC `f32` data. Each works on a whole batch and splits its rows across the
//! engine's threads; none allocates (scratch comes from the caller).

pub mod carafe;
pub mod conv_transpose;
pub mod depthwise;
pub mod eltwise;
pub mod epilogue;
pub mod geometry;
pub mod im2col;
pub mod int8_depthwise;
pub mod int8_gemm;
pub mod int8_requant;
pub mod inverted_residual;
pub mod packed_gemm;
pub mod pointwise;
pub mod pool;
pub mod rearrange;
pub mod resize;
pub mod sgemm;
pub mod winograd;

#[cfg(test)]
pub(crate) mod reference;

pub use geometry::ConvGeometry;

/// The blocks of at most `block` (≥ 1) consecutive indices that cover `range`, as
/// `(first, length)`: the blocking loop of the GEMM-based kernels (rows of patches, rows of a
/// 1×1 convolution) that keeps each block's operands in cache.
#[inline]
pub(crate) fn blocks(
    range: std::ops::Range<usize>,
    block: usize,
) -> impl Iterator<Item = (usize, usize)> {
    let end = range.end;
    range
        .step_by(block)
        .map(move |b0| (b0, block.min(end - b0)))
}

/// Whether AVX-512 (F and VL) and AVX2+FMA can be used on this CPU (checked at run time).
pub fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && simd_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX2 + FMA kernels can run on this CPU.
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
