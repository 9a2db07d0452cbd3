//! A labelled image dataset, opened from a `--data` specification.

use crate::error::DataError;
use crate::shapes::Shapes;
use crate::spec::DataSpec;
use image::{GrayImage, RgbImage};

/// One item of a dataset.
#[derive(Clone, Debug)]
pub struct Item {
    /// The RGB image.
    pub image: RgbImage,
    /// Per-pixel classes, for segmentation data (0 = background for `shapes`).
    pub mask: Option<GrayImage>,
    /// The image-level class.
    pub label: usize,
}

/// A finite, indexable dataset of labelled images.
pub trait Dataset: Send + Sync {
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class names in index order.
    fn class_names(&self) -> Vec<String>;
    /// Image-level class of every item (for stratified splits), without decoding images.
    fn labels(&self) -> Vec<usize>;
    /// Reads item `index`.
    fn get(&self, index: usize) -> Result<Item, DataError>;
}

impl Dataset for Shapes {
    fn len(&self) -> usize {
        Shapes::len(self)
    }
    fn class_names(&self) -> Vec<String> {
        Shapes::class_names(self)
    }
    fn labels(&self) -> Vec<usize> {
        Shapes::labels(self)
    }
    fn get(&self, index: usize) -> Result<Item, DataError> {
        let s = self.sample(index);
        Ok(Item {
            image: s.image,
            mask: Some(s.mask),
            label: s.label,
        })
    }
}

/// Opens the dataset a specification names.
pub fn open(spec: &DataSpec) -> Result<Box<dyn Dataset>, DataError> {
    match spec {
        DataSpec::Shapes(cfg) => Ok(Box::new(Shapes::new(cfg.clone())?)),
        other => Err(DataError::Spec {
            spec: other.to_string(),
            reason: "this source is not supported by this build yet; use `shapes`".into(),
        }),
    }
}
