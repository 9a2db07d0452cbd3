//! A labelled image dataset, opened from a `--data` specification.

use crate::error::DataError;
use crate::formats::folder::ImageFolder;
use crate::formats::idx::IdxDataset;
use crate::formats::seg::SegFolder;
use crate::formats::shapes::Shapes;
use crate::item_key::ItemKey;
use crate::skip_bad::{SkipBad, Skipped};
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
    /// Stable name of every item, in index order, for split manifests: relative paths for
    /// file-based sources, indices (the default) otherwise.
    fn item_keys(&self) -> Vec<ItemKey> {
        (0..self.len()).map(ItemKey::Index).collect()
    }
    /// The items the source itself designates as its test set (sorted), if it has one: e.g. the
    /// `t10k` files of an `idx:` source. Splits should honour it.
    fn official_test(&self) -> Option<Vec<usize>> {
        None
    }
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

/// How [`open_with`] treats items that cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Leave out unreadable items (an image that does not decode, a `seg:` image without a usable
    /// mask) instead of failing; they are listed in [`Opened::skipped`]. Reads every item once.
    pub skip_bad: bool,
}

/// A dataset as [`open_with`] returns it.
pub struct Opened {
    /// The dataset.
    pub dataset: Box<dyn Dataset>,
    /// Items left out by [`OpenOptions::skip_bad`], named by their original index and key.
    pub skipped: Vec<Skipped>,
}

/// Opens the dataset a specification names.
pub fn open(spec: &DataSpec) -> Result<Box<dyn Dataset>, DataError> {
    open_with(spec, OpenOptions::default()).map(|o| o.dataset)
}

/// Opens the dataset a specification names, with options.
pub fn open_with(spec: &DataSpec, options: OpenOptions) -> Result<Opened, DataError> {
    let dataset: Box<dyn Dataset> = match spec {
        DataSpec::Shapes(cfg) => Box::new(Shapes::new(cfg.clone())?),
        // Fully read and checked when opened: nothing left to skip.
        DataSpec::Idx(path) => Box::new(IdxDataset::open(path)?),
        DataSpec::Folder(path) => Box::new(ImageFolder::open(path)?),
        DataSpec::Seg(path) if options.skip_bad => Box::new(SegFolder::open_lenient(path)?),
        DataSpec::Seg(path) => Box::new(SegFolder::open(path)?),
    };
    let probe = options.skip_bad && matches!(spec, DataSpec::Folder(_) | DataSpec::Seg(_));
    if !probe {
        return Ok(Opened {
            dataset,
            skipped: Vec::new(),
        });
    }
    let filtered = SkipBad::new(dataset);
    if filtered.is_empty() {
        let first = filtered
            .skipped()
            .first()
            .map_or_else(String::new, |s| format!(" (first: {})", s.reason));
        return Err(DataError::Spec {
            spec: spec.to_string(),
            reason: format!("no readable item: expected at least one{first}"),
        });
    }
    let skipped = filtered.skipped().to_vec();
    Ok(Opened {
        dataset: Box::new(filtered),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_source_opens_and_skip_bad_reports_what_it_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (name, ok) in [
            ("cat/1.png", true),
            ("cat/2.png", false),
            ("dog/3.png", true),
        ] {
            let p = r.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if ok {
                image::RgbImage::new(2, 2).save(&p).unwrap();
            } else {
                std::fs::write(&p, b"not a png").unwrap();
            }
        }
        let spec = DataSpec::Folder(r.to_path_buf());
        let ds = open(&spec).unwrap();
        assert_eq!(ds.len(), 3);
        let opened = open_with(&spec, OpenOptions { skip_bad: true }).unwrap();
        assert_eq!(opened.dataset.len(), 2);
        assert_eq!(opened.dataset.labels(), [0, 1]);
        assert_eq!(opened.skipped.len(), 1);
        assert_eq!(opened.skipped[0].key, ItemKey::Path("cat/2.png".into()));

        let e = open(&DataSpec::Idx(Path::new("/no/such/dir").into()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/no/such/dir"), "{e}");
        let e = open(&DataSpec::Seg(r.to_path_buf()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("images/"), "{e}");
        assert_eq!(open(&DataSpec::default()).unwrap().len(), 3000);
    }
}
