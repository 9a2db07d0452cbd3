//! kestrel-data: datasets and formats, the synthetic `shapes` generator, splits and preprocessing.
//!
//! No Burn here: everything works on plain images and arrays.

pub mod augment;
pub mod dataset;
pub mod decode_source;
pub mod error;
pub mod formats;
pub mod fsio;
pub mod image_io;
pub mod imagenet_preprocess;
pub mod imbalance;
pub mod item_key;
pub mod loader;
pub mod manifest;
pub mod max_subarray;
pub mod pil_resize;
pub mod preprocess;
pub mod rng;
pub mod shard;
pub mod skip_bad;
pub mod spec;
pub mod split;

pub use augment::{augment, AugmentConfig, ColorJitter, ResizedCrop};
pub use dataset::{open, open_with, Dataset, Item, OpenOptions, Opened};
pub use decode_source::{standard_augment, DecodeSource};
pub use error::DataError;
pub use formats::folder::ImageFolder;
pub use formats::idx::IdxDataset;
pub use formats::seg::{SegFolder, IGNORE_LABEL};
pub use formats::shapes::{Shapes, ShapesConfig};
pub use fsio::write_atomic;
pub use imagenet_preprocess::CenterCropEval;
pub use item_key::ItemKey;
pub use loader::{plan_samples, Batch, BatchSource, Loader, LoaderOptions, PlannedSample};
pub use manifest::Manifest;
pub use preprocess::Normalize;
pub use shard::Shard;
pub use skip_bad::{SkipBad, Skipped};
pub use spec::DataSpec;
pub use split::{split_dataset, stratified_split, Split};
