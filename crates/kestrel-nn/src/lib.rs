//! kestrel-nn: Burn modules — layers, models, their descriptions, export and import.
//!
//! Where things live:
//! - [`layers`]: the building blocks every model shares (convolution + batch norm + activation,
//!   batch norm, pooling, weight initialisation, batch-norm folding, parameter counting);
//! - [`models`]: the networks (MobileNet V1 and V2, ResNet, FCN, the multi-task model) and the
//!   classifier zoo that builds them by name; [`model_spec`]: any of them as one [`ModelSpec`]
//!   (what a checkpoint stores) and one built [`Model`] (what eval, predict and export take);
//! - [`info`]: what `kestrel info` prints — one file per model describing its layers, shapes,
//!   parameters and multiply-adds;
//! - [`geometry`]: convolution output sizes and receptive fields; [`divisible`]: channel rounding;
//! - [`ops`]: training kernels (depthwise convolution, 1×1 convolution, batch norm, ReLU6);
//! - [`upsample`]: the upsampling layers; [`import`] / [`export`]: weights in, deployable models
//!   out; [`imagenet`]: the ImageNet class names; [`tensor_values`]: a tensor's values as a
//!   vector.

pub mod divisible;
pub mod export;
pub mod geometry;
pub mod imagenet;
pub mod import;
pub mod info;
pub mod layers;
pub mod model_spec;
pub mod models;
pub mod ops;
pub mod tensor_values;
pub mod upsample;

pub use info::{Describe, InfoError, LayerInfo, LayerKind, ModelInfo};
pub use layers::batch_norm::{BatchNorm2d, BatchNorm2dConfig};
pub use layers::conv_bn_act::{Activation, ConvBnAct, ConvBnActConfig, HiddenActivation};
pub use layers::fold::MapConvBnAct;
pub use model_spec::{Model, ModelSpec};
pub use models::mobilenet_v1::{MobileNetV1, MobileNetV1Config};
pub use models::mobilenet_v2::{MobileNetV2, MobileNetV2Config};
pub use models::resnet::{ResNet, ResNetConfig};
pub use models::zoo::{Arch, Classifier, ClassifierSpec};
