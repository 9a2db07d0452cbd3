//! The networks: MobileNet V1 and V2, ResNet-18/34/50, FCN segmenters on those backbones, the
//! multi-task model, and the zoo that builds a classifier by name.
//!
//! Each model's layer-by-layer description (`kestrel info`) is in [`crate::info`], one file per
//! model.

pub mod fcn;
pub mod mobilenet_v1;
pub mod mobilenet_v2;
pub mod multitask;
pub mod resnet;
pub mod zoo;
