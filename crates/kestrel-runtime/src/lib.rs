//! kestrel-runtime: Burn-free CPU inference for kestrel models.
//!
//! A [`Plan`] is a list of fused operations (convolution with folded batch-norm bias, activation and
//! an optional residual add; pooling; fully connected) over NHWC `f32` activations, with the weights
//! laid out the way each kernel reads them. [`PlanBuilder`] assembles a plan from PyTorch-layout
//! weights (OIHW), [`Plan::save`] / [`Plan::load`] store it in a compact binary file, and [`Engine`]
//! runs it with buffers allocated once and reused across calls, on a fixed team of threads.
//!
//! ```
//! use kestrel_runtime::{Activation, ConvParams, Engine, EngineOptions, PlanBuilder, Shape};
//!
//! // A 3x3 stride-2 convolution (PyTorch OIHW weights, 4 outputs), global pool, linear 4 -> 2.
//! let mut b = PlanBuilder::new(Shape { h: 8, w: 8, c: 3 });
//! let w = vec![0.01; 4 * 3 * 3 * 3];
//! let x = b.conv(b.input(), &ConvParams::new(&w, None, 4, 3).stride(2).padding(1).act(Activation::Relu6))?;
//! let x = b.global_pool(x)?;
//! let x = b.linear(x, &[0.5; 8], Some(&[0.0, 1.0]), 2, Activation::None)?;
//! let plan = b.build(x)?;
//!
//! let mut engine = Engine::new(plan, EngineOptions { threads: 2, ..Default::default() })?;
//! let image = vec![1.0f32; 8 * 8 * 3]; // NHWC
//! let logits = engine.run(&image, 1)?;
//! assert_eq!(logits.len(), 2);
//! # Ok::<(), kestrel_runtime::RuntimeError>(())
//! ```
//!
//! Kernels: [`kernels::packed_gemm`] (6×16 AVX2/FMA micro-kernel with a fused bias / residual /
//! clamp epilogue) for 1×1 and im2col convolutions, [`kernels::depthwise`] (direct, vectorised
//! over channels), [`kernels::inverted_residual`] (MobileNetV2 blocks fused band by band of rows),
//! pooling, element-wise ops, and the segmentation ops [`kernels::resize`] (nearest, bilinear,
//! bicubic), [`kernels::conv_transpose`] and [`kernels::rearrange`] (pixel shuffle, crop); each has a portable scalar path selected by
//! [`KernelPath::Scalar`] or by the CPU lacking AVX2/FMA.

pub mod activation;
mod aligned;
pub mod builder;
pub mod engine;
pub mod error;
pub mod format;
pub mod kernels;
pub mod layout;
pub(crate) mod parallel;
pub mod plan;
pub mod quant;
pub(crate) mod schedule;
pub(crate) mod team;

pub use activation::Activation;
pub use builder::{ConvParams, ConvTransposeParams, PlanBuilder};
pub use engine::{Engine, EngineOptions, GemmBackend, KernelPath, Observe, OpProfile};

pub use error::RuntimeError;
/// Window geometry: [`geometry::conv_out_len`], [`geometry::conv_transpose_out_len`] and
/// [`geometry::ConvGeometry`], PyTorch's formulas in one place.
pub use kernels::geometry;
pub use kernels::resize::ResizeMode;
pub use plan::{ConvKind, ConvTransposeOp, Op, Plan, Shape, ValueId, WeightRef};

#[cfg(test)]
mod send_check {
    /// The engine can move to another thread (e.g. a server worker).
    #[test]
    fn engine_and_plan_are_send() {
        fn send<T: Send>() {}
        send::<crate::Engine>();
        send::<crate::Plan>();
    }
}
