//! Losses on Burn tensors, with PyTorch's conventions, that train through autodiff.
//!
//! Every loss validates its inputs (shapes, class indices, configuration) and returns
//! [`crate::TrainError::BadInput`] naming what is wrong instead of panicking. See [`Reduction`]
//! for the shape of the results.

/// Builder setters `with_<field>(self, value) -> Self`, one per listed field, each with its doc.
macro_rules! setters {
    ($($(#[doc = $doc:literal])* $setter:ident => $field:ident: $ty:ty;)*) => {
        $(
            $(#[doc = $doc])*
            pub fn $setter(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}
pub(crate) use setters;

pub mod bce;
pub mod cross_entropy;
pub mod distill;
pub mod focal;
pub mod kl_div;
pub mod reduction;
mod targets;

#[cfg(test)]
pub(crate) mod fixtures;

pub use bce::BceWithLogits;
pub use cross_entropy::{CrossEntropy, SEGMENTATION_IGNORE_INDEX};
pub use distill::Distillation;
pub use focal::{SigmoidFocal, SoftmaxFocal};
pub use kl_div::{KlDiv, KlReduction};
pub use reduction::Reduction;
