//! Plan builders for whole architectures, from plain weight arrays.

pub mod mobilenet_v2;
pub mod synthetic;
