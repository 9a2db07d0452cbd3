//! Custom CPU training kernels, plugged into Burn through its backend extensions.
//!
//! Each operation is a `#[backend_extension(Flex, Autodiff)]` trait: Burn's dispatch routes a
//! call on a Flex tensor to the `Flex` implementation (plain Rust loops on the tensor's `f32`
//! slice) and a call on a Flex autodiff tensor to the `Autodiff<Flex, C>` implementation, which
//! runs the same forward kernel and registers a hand-written backward step in the autodiff graph,
//! so `loss.backward()` uses these kernels instead of Burn's generic ones.
//!
//! - [`depthwise`]: depthwise 3×3 (any k) convolution, strides and dilations, no bias;
//! - [`pointwise`]: 1×1 convolution whose gradients are matrix products with transposed operands
//!   read in place;
//! - [`dense`]: a one-group convolution over few input channels (a network's stem) as a 1×1
//!   convolution of the input's patches (im2col);
//! - [`relu6`]: clamp to [0, 6] with a backward that does not materialise a mask;
//! - [`batch_norm_train`]: training-mode BatchNorm with one-pass forward and backward, and
//!   [`batch_norm_sync`]: its statistics summed over data-parallel replicas (SyncBatchNorm).
//!
//! They apply only on the Flex device (with or without autodiff) and `f32` tensors; everywhere
//! else, and whenever the environment variable `KESTREL_PLAIN_OPS=1` is set, the callers fall back
//! to Burn's own operations ([`custom_ops_enabled`]); [`with_plain_ops`] does the same for one
//! closure on one thread.

mod batch_norm_columns;
pub mod batch_norm_sync;
pub mod batch_norm_train;
pub mod dense;
pub mod depthwise;
pub mod depthwise_kernel;
mod depthwise_small;
mod flex_io;
pub mod pointwise;
pub mod relu6;
mod simd;
#[cfg(test)]
mod test_util;

use burn::tensor::{DType, Device};
use std::cell::Cell;

/// The environment variable that switches the custom kernels off (`KESTREL_PLAIN_OPS=1`).
pub const PLAIN_OPS_ENV: &str = "KESTREL_PLAIN_OPS";

/// Whether tensors of type `dtype` on `device` go through kestrel's kernels: the device is Flex
/// (with or without autodiff), the dtype `f32`, and `KESTREL_PLAIN_OPS` is not set to `1`.
pub fn custom_ops_enabled(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32
        && !plain_ops_forced()
        && !PLAIN_HERE.with(Cell::get)
        && device.clone().without_autodiff() == Device::flex()
}

thread_local! {
    /// Set by [`with_plain_ops`] on the calling thread.
    static PLAIN_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the custom kernels switched off on this thread (the modules decide which path
/// to take on the calling thread), as `KESTREL_PLAIN_OPS=1` does for the whole process.
pub fn with_plain_ops<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            PLAIN_HERE.with(|p| p.set(self.0));
        }
    }
    let _reset = Reset(PLAIN_HERE.with(|p| p.replace(true)));
    f()
}

/// Whether a training forward of `x` should use the custom kernels: `x` is on the Flex autodiff
/// device and [`custom_ops_enabled`] holds. (Inference keeps Burn's own operations, whose
/// depthwise forward is already fast; the gain here is in the backward passes.)
pub fn use_training_kernels<const D: usize>(x: &burn::tensor::Tensor<D>) -> bool {
    let device = x.device();
    device.is_autodiff() && custom_ops_enabled(&device, x.dtype())
}

/// Whether `KESTREL_PLAIN_OPS=1` asks for Burn's own operations.
pub fn plain_ops_forced() -> bool {
    std::env::var(PLAIN_OPS_ENV).is_ok_and(|v| v.trim() == "1")
}
