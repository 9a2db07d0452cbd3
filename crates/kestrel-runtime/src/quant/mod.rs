//! Int8 inference: post-training static quantisation of a plan and the engine that runs it.
//!
//! Activations are `u8` with one scale and zero point per value (asymmetric, per tensor), weights
//! `i8` symmetric per output channel, sums exact in `i32`
//! ([`crate::kernels::int8_gemm`], [`crate::kernels::int8_depthwise`]); each convolution's
//! epilogue adds the bias, the rescaled residual and clamps for ReLU / ReLU6 while requantising to
//! the next value's codes. [`table`] holds the scales, [`file`] the plan file, [`calibrate`] the
//! range estimators (min/max, percentile, entropy).

pub mod file;
pub mod table;

pub use file::{is_int8_plan, QuantPlan};
pub use table::{ActQuant, Calibration, QuantTable};
