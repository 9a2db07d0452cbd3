//! Tools for class imbalance: loss weights, re-sampling of index lists, a weighted sampler,
//! SMOTE on feature vectors, and orders that keep equal classes apart.
//!
//! Every random draw uses the project's [`Rng`](crate::rng::Rng), so a seed fixes the result.

pub mod interleave;
pub mod resample;
pub mod sampler;
pub mod smote;
pub mod weights;

pub use interleave::interleave;
pub use resample::{random_oversample, random_undersample, Target};
pub use sampler::WeightedSampler;
pub use smote::{smote, Resampled};
pub use weights::{
    class_counts, effective_number_weights, inverse_frequency_weights,
    inverse_frequency_weights_or_zero, item_weights, mask_pixel_counts,
};
