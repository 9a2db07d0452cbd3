//! `seg:PATH`: images with per-pixel masks, `PATH/images/<stem>.<ext>` and `PATH/masks/<stem>.png`.
//!
//! A mask pixel holds the class index of its image pixel; 255 means "ignore" (not scored, not
//! trained on). Masks are single-channel 8-bit PNGs, grayscale or palette-indexed (the palette
//! index is the class, as Pascal VOC stores it). Items are the image files (png, jpg, jpeg, bmp)
//! sorted by name; masks without an image are ignored.
//!
//! Opening reads every mask once (in parallel) to find the number of classes — the largest mask
//! value other than 255, plus one — and each item's image-level label, and keeps both. An item's
//! label is the class that covers most pixels of its mask among classes other than 0 (background)
//! and 255 (ignore), ties going to the lower class; 0 when the mask holds nothing else. Labels
//! only stratify splits: segmentation is trained and scored on the masks.

use crate::dataset::{Dataset, Item};
use crate::error::DataError;
use crate::formats::folder::{is_image, relative_key, sorted_entries};
use crate::image_io::{image_dimensions, load_mask, load_rgb};
use crate::item_key::ItemKey;
use image::GrayImage;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The ignore label: the mask value of pixels that are neither trained on nor scored. The `seg:`
/// mask format defines it (as Pascal VOC marks object borders); kestrel's segmentation losses,
/// metrics and augmentation (pixels a rotation brings in from outside the image) all use this
/// one value.
pub const IGNORE_LABEL: u8 = 255;

/// The image-level label of a mask: the most frequent class other than 0 and [`IGNORE_LABEL`]
/// (ties to the lower class), or 0 when there is none.
pub fn mask_label(mask: &GrayImage) -> usize {
    let hist = histogram(mask);
    let mut best = (0usize, 0u64);
    for (c, &count) in hist.iter().enumerate().take(IGNORE_LABEL as usize).skip(1) {
        if count > best.1 {
            best = (c, count);
        }
    }
    best.0
}

fn histogram(mask: &GrayImage) -> [u64; 256] {
    let mut hist = [0u64; 256];
    for &v in mask.as_raw() {
        hist[v as usize] += 1;
    }
    hist
}

/// What opening learnt about one item: its label and largest class value, or why it is unusable.
type Scan = Result<(usize, Option<u8>), DataError>;

/// A segmentation dataset of image/mask pairs.
#[derive(Debug)]
pub struct SegFolder {
    root: PathBuf,
    images: Vec<PathBuf>,
    masks: Vec<PathBuf>,
    labels: Vec<usize>,
    /// Per item: why it cannot be read (only when opened leniently).
    problems: Vec<Option<String>>,
    classes: usize,
}

/// The mask of `image` in `root/masks`.
fn mask_path(root: &Path, image: &Path) -> PathBuf {
    let stem = image.file_stem().unwrap_or_default();
    let mut name = stem.to_os_string();
    name.push(".png");
    root.join("masks").join(name)
}

/// Checks that `mask` matches the size of `image`.
fn check_size(image: &Path, size: (u32, u32), mask: &Path, m: &GrayImage) -> Result<(), DataError> {
    if m.dimensions() != size {
        return Err(DataError::format(
            mask,
            format!(
                "mask is {}x{} but its image {} is {}x{}: expected the same size",
                m.width(),
                m.height(),
                image.display(),
                size.0,
                size.1
            ),
        ));
    }
    Ok(())
}

fn scan_one(image: &Path, mask: &Path) -> Scan {
    if !mask.is_file() {
        return Err(DataError::format(
            image,
            format!("image has no mask: expected {}", mask.display()),
        ));
    }
    let m = load_mask(mask)?;
    check_size(image, image_dimensions(image)?, mask, &m)?;
    let hist = histogram(&m);
    let max = (0..IGNORE_LABEL).rev().find(|&v| hist[v as usize] > 0);
    Ok((mask_label(&m), max))
}

impl SegFolder {
    /// Opens `root`; any unusable item (an image without a mask, a mask of the wrong size or
    /// kind) is an error naming it.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        Self::open_with(root, false)
    }

    /// Opens `root` keeping unusable items: their [`Dataset::get`] returns the error found at
    /// opening (wrap in [`crate::SkipBad`] to drop them). They take label 0 and do not count
    /// towards the number of classes.
    pub fn open_lenient(root: &Path) -> Result<Self, DataError> {
        Self::open_with(root, true)
    }

    fn open_with(root: &Path, lenient: bool) -> Result<Self, DataError> {
        let image_dir = root.join("images");
        if !image_dir.is_dir() || !root.join("masks").is_dir() {
            return Err(DataError::format(
                root,
                "expected folders `images/` (<stem>.png, .jpg, .bmp) and `masks/` (<stem>.png)",
            ));
        }
        let images: Vec<PathBuf> = sorted_entries(&image_dir)?
            .into_iter()
            .filter(|(p, is_dir)| !is_dir && is_image(p))
            .map(|(p, _)| p)
            .collect();
        if images.is_empty() {
            return Err(DataError::format(
                &image_dir,
                "no images: expected files ending in .png, .jpg, .jpeg or .bmp",
            ));
        }
        let mut stems = std::collections::HashMap::new();
        for image in &images {
            if let Some(first) = stems.insert(image.file_stem(), image) {
                return Err(DataError::format(
                    image,
                    format!(
                        "two images share the stem of {}: expected one image per mask",
                        first.display()
                    ),
                ));
            }
        }
        let masks: Vec<PathBuf> = images.iter().map(|i| mask_path(root, i)).collect();
        let scans: Vec<Scan> = images
            .par_iter()
            .zip(masks.par_iter())
            .map(|(i, m)| scan_one(i, m))
            .collect();
        let mut labels = Vec::with_capacity(images.len());
        let mut problems = Vec::with_capacity(images.len());
        let mut max_class: Option<u8> = None;
        for scan in scans {
            match scan {
                Ok((label, max)) => {
                    labels.push(label);
                    problems.push(None);
                    max_class = max_class.max(max);
                }
                Err(e) if lenient => {
                    labels.push(0);
                    problems.push(Some(e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            images,
            masks,
            labels,
            problems,
            classes: max_class.map_or(1, |m| m as usize + 1),
        })
    }

    /// Number of mask classes: the largest mask value other than 255, plus one.
    pub fn num_classes(&self) -> usize {
        self.classes
    }

    /// The image files, in index order.
    pub fn images(&self) -> &[PathBuf] {
        &self.images
    }
}

impl Dataset for SegFolder {
    fn len(&self) -> usize {
        self.images.len()
    }
    /// `"0"`, `"1"`, … up to the number of mask classes.
    fn class_names(&self) -> Vec<String> {
        (0..self.classes).map(|c| c.to_string()).collect()
    }
    fn labels(&self) -> Vec<usize> {
        self.labels.clone()
    }
    fn get(&self, index: usize) -> Result<Item, DataError> {
        let (image, mask) = match (self.images.get(index), self.masks.get(index)) {
            (Some(i), Some(m)) => (i, m),
            _ => {
                return Err(DataError::value(
                    "index",
                    format!("expected < {}, got {index}", self.images.len()),
                ))
            }
        };
        if let Some(problem) = &self.problems[index] {
            return Err(DataError::format(image, problem.clone()));
        }
        let img = load_rgb(image)?;
        let m = load_mask(mask)?;
        check_size(image, img.dimensions(), mask, &m)?;
        Ok(Item {
            image: img,
            mask: Some(m),
            label: self.labels[index],
        })
    }
    fn item_keys(&self) -> Vec<ItemKey> {
        self.images
            .iter()
            .map(|p| ItemKey::Path(relative_key(&self.root, p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, RgbImage};

    fn write_pair(root: &Path, stem: &str, ext: &str, mask: &GrayImage) {
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::create_dir_all(root.join("masks")).unwrap();
        let (w, h) = mask.dimensions();
        RgbImage::new(w, h)
            .save(root.join(format!("images/{stem}.{ext}")))
            .unwrap();
        mask.save(root.join(format!("masks/{stem}.png"))).unwrap();
    }

    fn mask_of(values: &[u8], w: u32) -> GrayImage {
        GrayImage::from_raw(w, values.len() as u32 / w, values.to_vec()).unwrap()
    }

    #[test]
    fn label_is_the_most_frequent_foreground_class() {
        // Background dominates, 255 is ignored, class 3 beats class 1 by one pixel.
        let m = mask_of(&[0, 0, 0, 0, 255, 255, 255, 1, 1, 3, 3, 3], 4);
        assert_eq!(mask_label(&m), 3);
        // Ties go to the lower class.
        assert_eq!(mask_label(&mask_of(&[2, 2, 5, 5], 2)), 2);
        assert_eq!(mask_label(&mask_of(&[0, 255, 0, 0], 2)), 0);
        assert_eq!(mask_label(&mask_of(&[0, 0, 0, 7], 2)), 7);
    }

    #[test]
    fn opens_pairs_and_counts_classes() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write_pair(r, "b", "jpg", &mask_of(&[0, 2, 2, 255], 2));
        write_pair(r, "a", "png", &mask_of(&[0, 1, 1, 0, 0, 0], 3));
        // 255 does not count as a class.
        write_pair(r, "c", "bmp", &mask_of(&[255, 255, 0, 4], 2));
        std::fs::write(r.join("masks/orphan.png"), b"ignored").unwrap();
        let ds = SegFolder::open(r).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.num_classes(), 5);
        assert_eq!(ds.class_names(), ["0", "1", "2", "3", "4"]);
        assert_eq!(ds.labels(), [1, 2, 4]);
        let keys = ds.item_keys();
        assert_eq!(keys[1], ItemKey::Path("images/b.jpg".into()));
        let item = ds.get(2).unwrap();
        assert_eq!(item.mask.unwrap().get_pixel(1, 1), &Luma([4]));
        assert_eq!(item.image.dimensions(), (2, 2));
    }

    #[test]
    fn bad_pairs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write_pair(r, "ok", "png", &mask_of(&[0, 1], 2));
        RgbImage::new(2, 1)
            .save(r.join("images/lonely.png"))
            .unwrap();
        let e = SegFolder::open(r).unwrap_err().to_string();
        assert!(
            e.contains("lonely.png") && e.contains("masks/lonely.png"),
            "{e}"
        );

        // Lenient: the bad item stays, fails at get, and does not count as a class.
        let ds = SegFolder::open_lenient(r).unwrap();
        assert_eq!(ds.len(), 2);
        assert!(ds.get(0).unwrap_err().to_string().contains("lonely.png"));
        assert!(ds.get(1).is_ok());
        assert_eq!(ds.num_classes(), 2);

        std::fs::remove_file(r.join("images/lonely.png")).unwrap();
        RgbImage::new(5, 4).save(r.join("images/big.png")).unwrap();
        GrayImage::new(3, 2).save(r.join("masks/big.png")).unwrap();
        let e = SegFolder::open(r).unwrap_err().to_string();
        assert!(
            e.contains("big.png") && e.contains("3x2") && e.contains("5x4"),
            "{e}"
        );

        RgbImage::new(5, 4).save(r.join("masks/big.png")).unwrap();
        let e = SegFolder::open(r).unwrap_err().to_string();
        assert!(e.contains("big.png") && e.contains("single-channel"), "{e}");

        let e = SegFolder::open(&r.join("images")).unwrap_err().to_string();
        assert!(e.contains("masks/"), "{e}");
    }

    #[test]
    fn shared_stems_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write_pair(r, "x", "png", &mask_of(&[0, 1], 2));
        RgbImage::new(2, 1).save(r.join("images/x.jpg")).unwrap();
        let e = SegFolder::open(r).unwrap_err().to_string();
        assert!(e.contains("x.png") && e.contains("stem"), "{e}");
    }
}
