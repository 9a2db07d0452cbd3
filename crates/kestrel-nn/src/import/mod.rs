//! Importing PyTorch / torchvision weights: a safe pickle reader (no code runs, only an
//! allow-list of globals, bounded work), PyTorch's zip and legacy `.pth` formats, safetensors,
//! and the mapping of torchvision's MobileNetV2 and ResNet-18/34/50 names onto kestrel's modules.
//!
//! ```no_run
//! use kestrel_nn::import::{load_classifier, read_state_dict};
//! use kestrel_nn::Arch;
//! let device = burn::tensor::Device::flex();
//! let model = load_classifier(Arch::ResNet18, "resnet18-f37072fd.pth".as_ref(), &device)?;
//! let sd = read_state_dict("weights.safetensors".as_ref())?;
//! # Ok::<(), kestrel_nn::import::ImportError>(())
//! ```
//!
//! The byte-level readers (`budget`, `dtype` … `format`) do not use Burn, so fuzz targets can build them
//! alone (see `fuzz/` at the workspace root).

pub mod apply;
pub mod budget;
pub mod dtype;
pub mod error;
pub mod fit;
pub mod format;
pub mod load;
pub mod mismatch;
pub mod pickle;
pub mod read;
pub mod read_error;
pub mod safetensors;
pub mod state_dict;
pub mod tensor_view;
pub mod torch_globals;
pub mod torch_legacy;
pub mod torch_zip;
pub mod torchvision_names;
pub mod zip_archive;

#[cfg(test)]
mod formula;
#[cfg(test)]
mod tests;

pub use apply::apply_state_dict;
pub use dtype::DType;
pub use error::ImportError;
pub use fit::{
    fit_weights, kestrel_state_dict, model_state_dict, Backbone, FitReport, HasBackbone, Naming,
};
pub use format::Format;
pub use load::{load_classifier, load_classifier_at};
pub use mismatch::Mismatch;
pub use read::read_state_dict;
pub use read_error::ReadError;
pub use state_dict::{StateDict, TensorEntry, Values};
