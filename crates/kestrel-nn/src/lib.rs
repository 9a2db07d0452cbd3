//! kestrel-nn: Burn modules — blocks, models, geometry.

pub mod batch_norm;
pub mod conv_bn_act;
pub mod divisible;
pub mod export;
pub mod fcn;
pub mod fcn_info;
pub mod fold;
pub mod geometry;
pub mod imagenet;
pub mod import;
pub mod info;
pub mod init;
pub mod mobilenet_v1;
pub mod mobilenet_v2;
pub mod mobilenet_v2_trace;
pub mod model_spec;
pub mod multitask;
pub mod ops;
pub mod params;
pub mod pool;
pub mod resnet;
pub mod upsample;
pub mod zoo;

pub use batch_norm::{BatchNorm2d, BatchNorm2dConfig};
pub use conv_bn_act::{Activation, ConvBnAct, ConvBnActConfig};
pub use fold::MapConvBnAct;
pub use info::{Describe, InfoError, LayerInfo, LayerKind, ModelInfo};
pub use mobilenet_v1::{MobileNetV1, MobileNetV1Config};
pub use mobilenet_v2::{MobileNetV2, MobileNetV2Config};
pub use model_spec::{Model, ModelSpec};
pub use resnet::{ResNet, ResNetConfig};
pub use zoo::{Arch, Classifier, ClassifierSpec};
