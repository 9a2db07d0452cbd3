//! The building blocks the models share: convolution + batch norm + activation units, batch
//! norm, pooling, weight initialisation, batch-norm folding, freezing and parameter counting.

pub mod batch_norm;
pub mod conv_bn_act;
pub mod fold;
pub mod freeze;
pub mod init;
pub mod params;
pub mod pool;
