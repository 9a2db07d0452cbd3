//! A [`BatchSource`] that reads items from a dataset, augments them and turns them into
//! normalised CHW values at a fixed resolution: the per-epoch work a [`Loader`] runs on its
//! workers.
//!
//! [`Loader`]: crate::loader::Loader

use crate::augment::{augment, AugmentConfig, ColorJitter, ResizedCrop};
use crate::dataset::Dataset;
use crate::error::DataError;
use crate::item_key::ItemKey;
use crate::loader::{BatchSource, PlannedSample};
use crate::preprocess::{push_chw, Normalize};
use std::sync::Arc;

/// The `standard` training augmentation at output side `resolution`: a random resized crop of
/// 60–100 % of the area (aspect 3/4–4/3; milder than torchvision's 8 %, so that a small object
/// stays in view), a horizontal flip half the time, a rotation of up to ±15° and colour jitter of
/// ±20 % brightness, contrast and saturation.
pub fn standard_augment(resolution: u32) -> AugmentConfig {
    AugmentConfig {
        crop: Some(ResizedCrop {
            size: (resolution, resolution),
            scale: (0.6, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }),
        hflip: 0.5,
        rotate_degrees: 15.0,
        jitter: ColorJitter {
            brightness: 0.2,
            contrast: 0.2,
            saturation: 0.2,
        },
    }
}

/// Items of a dataset, optionally augmented with each sample's seed, resized (bilinear) to a
/// square side and normalised.
pub struct DecodeSource {
    dataset: Arc<dyn Dataset>,
    keys: Vec<ItemKey>,
    classes: usize,
    resolution: u32,
    normalize: Normalize,
    augment: Option<AugmentConfig>,
}

impl DecodeSource {
    /// A source over `dataset` at side `resolution`; `augment`, when given, is checked here.
    pub fn new(
        dataset: Arc<dyn Dataset>,
        resolution: u32,
        normalize: Normalize,
        augment: Option<AugmentConfig>,
    ) -> Result<Self, DataError> {
        if resolution == 0 {
            return Err(DataError::value(
                "resolution",
                "expected a positive side, got 0",
            ));
        }
        if let Some(a) = &augment {
            a.validate()?;
        }
        Ok(Self {
            keys: dataset.item_keys(),
            classes: dataset.class_names().len(),
            dataset,
            resolution,
            normalize,
            augment,
        })
    }
}

impl BatchSource for DecodeSource {
    fn sample_len(&self) -> usize {
        3 * (self.resolution as usize).pow(2)
    }

    /// Reads item `sample.index`, augments it with [`augment`]`(config, image, None,
    /// sample.seed, 0, 0)` when configured, and appends its normalised values. A label outside
    /// the dataset's classes is an error naming the item.
    fn load(&self, sample: PlannedSample, out: &mut Vec<f32>) -> Result<usize, DataError> {
        let item = self.dataset.get(sample.index)?;
        if item.label >= self.classes {
            let name = self
                .keys
                .get(sample.index)
                .map_or_else(|| sample.index.to_string(), ToString::to_string);
            return Err(DataError::value(
                "label",
                format!(
                    "item {name} has label {}: expected < {} (the number of classes)",
                    item.label, self.classes
                ),
            ));
        }
        let r = self.resolution;
        match &self.augment {
            Some(cfg) => {
                let (img, _) = augment(cfg, &item.image, None, sample.seed, 0, 0)?;
                push_chw(&img, r, r, &self.normalize, out);
            }
            None => push_chw(&item.image, r, r, &self.normalize, out),
        }
        Ok(item.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Item;
    use crate::formats::shapes::{Shapes, ShapesConfig};
    use image::{Rgb, RgbImage};

    fn shapes() -> Arc<dyn Dataset> {
        Arc::new(
            Shapes::new(ShapesConfig {
                n: 12,
                size: 40,
                classes: 3,
                ..ShapesConfig::default()
            })
            .unwrap(),
        )
    }

    #[test]
    fn without_augmentation_it_is_the_preprocessed_item() {
        let ds = shapes();
        let src = DecodeSource::new(ds.clone(), 32, Normalize::IMAGENET, None).unwrap();
        let mut got = Vec::new();
        let label = src
            .load(PlannedSample { index: 5, seed: 9 }, &mut got)
            .unwrap();
        let item = ds.get(5).unwrap();
        let mut want = Vec::new();
        push_chw(&item.image, 32, 32, &Normalize::IMAGENET, &mut want);
        assert_eq!(label, item.label);
        assert_eq!(got, want);
        assert_eq!(got.len(), src.sample_len());
    }

    #[test]
    fn augmentation_follows_the_sample_seed_only() {
        let ds = shapes();
        let src = DecodeSource::new(
            ds.clone(),
            24,
            Normalize::IMAGENET,
            Some(standard_augment(24)),
        )
        .unwrap();
        let load = |index, seed| {
            let mut v = Vec::new();
            src.load(PlannedSample { index, seed }, &mut v).unwrap();
            v
        };
        assert_eq!(load(3, 7), load(3, 7));
        assert_ne!(load(3, 7), load(3, 8));
        // The same as augmenting by hand with that seed.
        let item = ds.get(3).unwrap();
        let (img, _) = augment(&standard_augment(24), &item.image, None, 7, 0, 0).unwrap();
        let mut want = Vec::new();
        push_chw(&img, 24, 24, &Normalize::IMAGENET, &mut want);
        assert_eq!(load(3, 7), want);
    }

    /// One good image and one whose label is out of range.
    struct BadLabel;
    impl Dataset for BadLabel {
        fn len(&self) -> usize {
            2
        }
        fn class_names(&self) -> Vec<String> {
            vec!["a".into(), "b".into()]
        }
        fn labels(&self) -> Vec<usize> {
            vec![0, 7]
        }
        fn get(&self, index: usize) -> Result<Item, DataError> {
            Ok(Item {
                image: RgbImage::from_pixel(4, 4, Rgb([9, 9, 9])),
                mask: None,
                label: [0, 7][index],
            })
        }
        fn item_keys(&self) -> Vec<ItemKey> {
            vec![
                ItemKey::Path("a/0.png".into()),
                ItemKey::Path("b/1.png".into()),
            ]
        }
    }

    #[test]
    fn a_label_out_of_range_names_the_item() {
        let src = DecodeSource::new(Arc::new(BadLabel), 4, Normalize::IMAGENET, None).unwrap();
        let mut v = Vec::new();
        assert_eq!(
            src.load(PlannedSample { index: 0, seed: 0 }, &mut v)
                .unwrap(),
            0
        );
        let e = src
            .load(PlannedSample { index: 1, seed: 0 }, &mut v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("b/1.png") && e.contains("expected < 2"), "{e}");
        assert!(DecodeSource::new(Arc::new(BadLabel), 0, Normalize::IMAGENET, None).is_err());
    }
}
