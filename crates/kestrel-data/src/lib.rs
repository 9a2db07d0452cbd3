//! kestrel-data: datasets and formats, the synthetic `shapes` generator, splits and preprocessing.
//!
//! No Burn here: everything works on plain images and arrays.

pub mod dataset;
pub mod error;
pub mod fsio;
pub mod image_io;
pub mod preprocess;
pub mod rng;
pub mod shapes;
pub mod spec;
pub mod split;

pub use dataset::{open, Dataset, Item};
pub use error::DataError;
pub use fsio::write_atomic;
pub use preprocess::Normalize;
pub use shapes::{Shapes, ShapesConfig};
pub use spec::DataSpec;
pub use split::{stratified_split, Split};
