//! Int8 inference: post-training static quantisation of a plan and the engine that runs it.
//!
//! Activations are `u8` with one scale and zero point per value (asymmetric, per tensor), weights
//! `i8` symmetric per output channel, sums exact in `i32`
//! ([`crate::kernels::int8_gemm`], [`crate::kernels::int8_depthwise`]); each convolution's
//! epilogue (`kernels/int8_requant.rs`, fused into the AVX-512 kernels) adds the bias and the
//! rescaled residual and clamps for ReLU / ReLU6 while requantising to the next value's codes.
//! [`table`] holds the scales, [`file`](mod@file) the plan file, [`calibrate`] the range
//! estimators (min/max, percentile, entropy), [`quantize()`] calibrates a plan and measures each
//! value's noise, and [`Int8Engine`] runs the result. How it all fits and what it measures:
//! `docs/int8.md`.

mod block;
mod build;
pub mod calibrate;
mod engine;
pub mod file;
mod gemm;
mod prepare;
mod quantize;
pub mod table;
#[cfg(test)]
mod tests;

pub use crate::kernels::int8_gemm::Int8Path;
pub use build::build_table;
pub use calibrate::{Method, Observer};
pub use engine::{Int8Engine, Int8Options};
pub use file::{is_int8_plan, QuantPlan};
pub use quantize::{quantize, QuantizeOptions, ValueReport};
pub use table::{ActQuant, Calibration, QuantTable};
