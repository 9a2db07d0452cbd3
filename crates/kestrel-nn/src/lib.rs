//! kestrel-nn: Burn modules — blocks, models, geometry.

pub mod batch_norm;
pub mod conv_bn_act;
pub mod divisible;
pub mod mobilenet_v2;
pub mod params;
pub mod zoo;

pub use batch_norm::{BatchNorm2d, BatchNorm2dConfig};
pub use conv_bn_act::{Activation, ConvBnAct, ConvBnActConfig};
pub use mobilenet_v2::{MobileNetV2, MobileNetV2Config};
pub use zoo::{Arch, Classifier, ClassifierSpec};
