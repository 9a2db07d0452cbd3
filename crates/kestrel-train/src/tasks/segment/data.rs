//! A segmentation split decoded once: normalised CHW images and their class masks at the
//! training resolution, and batches drawn from them (with the same flip / quarter turn applied to
//! an image and its mask).

use crate::error::{Result, TrainError};
use crate::tasks::classify::data::push_dihedral;
use burn::tensor::{Device, Int, Tensor, TensorData};
use image::GrayImage;
use kestrel_data::preprocess::push_chw;
use kestrel_data::{DataSpec, Dataset, Normalize};
use rayon::prelude::*;

/// Images and masks of one split.
pub struct SegSet {
    /// Side of the square images and masks.
    pub resolution: usize,
    /// (N, 3, R, R) normalised values, row-major.
    pub images: Vec<f32>,
    /// (N, R, R) class indices (255 = ignore), row-major.
    pub masks: Vec<u8>,
}

/// The class names of a segmentation run on `spec`: `shapes` masks hold 0 for the background and
/// c + 1 for shape class c, so `background` comes first; `seg:` folders name their mask values.
pub fn seg_class_names(spec: &DataSpec, ds: &dyn Dataset) -> Vec<String> {
    match spec {
        DataSpec::Shapes(_) => std::iter::once("background".to_string())
            .chain(ds.class_names())
            .collect(),
        _ => ds.class_names(),
    }
}

/// `mask` resized to `r` × `r` by nearest neighbour, as PyTorch's `interpolate(mode="nearest")`:
/// output pixel i reads input pixel ⌊i · in / out⌋.
pub fn resize_mask_nearest(mask: &GrayImage, r: usize) -> Vec<u8> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let raw = mask.as_raw();
    let mut out = Vec::with_capacity(r * r);
    for y in 0..r {
        let sy = (y * h / r).min(h - 1);
        for x in 0..r {
            let sx = (x * w / r).min(w - 1);
            out.push(raw[sy * w + sx]);
        }
    }
    out
}

impl SegSet {
    /// Decodes items `indices` of `ds` (in parallel): images resized as for classification, masks
    /// by nearest neighbour. An item without a mask, or with a mask value that is not below
    /// `classes` (nor 255), is bad input naming the item.
    pub fn load(
        ds: &dyn Dataset,
        indices: &[usize],
        resolution: usize,
        norm: &Normalize,
        classes: usize,
    ) -> Result<Self> {
        let r = resolution as u32;
        let per_item: Vec<(Vec<f32>, Vec<u8>)> = indices
            .par_iter()
            .map(|&i| {
                let item = ds.get(i)?;
                let mask = item.mask.as_ref().ok_or_else(|| {
                    TrainError::BadInput(format!(
                        "item {i} has no mask; `--task segment` needs `shapes` or `seg:PATH` data"
                    ))
                })?;
                if mask.width() == 0 || mask.height() == 0 {
                    return Err(TrainError::BadInput(format!("item {i} has an empty mask")));
                }
                if let Some(&v) = mask
                    .as_raw()
                    .iter()
                    .find(|&&v| v != kestrel_data::IGNORE_LABEL && v as usize >= classes)
                {
                    return Err(TrainError::BadInput(format!(
                        "item {i}: mask value {v}; expected a class below {classes} or 255 (ignore)"
                    )));
                }
                let mut v = Vec::with_capacity(3 * resolution * resolution);
                push_chw(&item.image, r, r, norm, &mut v);
                Ok((v, resize_mask_nearest(mask, resolution)))
            })
            .collect::<Result<_>>()?;
        let mut images = Vec::with_capacity(indices.len() * 3 * resolution * resolution);
        let mut masks = Vec::with_capacity(indices.len() * resolution * resolution);
        for (v, m) in per_item {
            images.extend_from_slice(&v);
            masks.extend_from_slice(&m);
        }
        Ok(Self {
            resolution,
            images,
            masks,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.masks.len() / (self.resolution * self.resolution)
    }

    /// The mask of row `i`.
    pub fn mask(&self, i: usize) -> &[u8] {
        let area = self.resolution * self.resolution;
        &self.masks[i * area..(i + 1) * area]
    }

    /// Images (n, 3, R, R) and masks (n, R, R) of `rows`; with `ops`, row k's image and mask are
    /// both transformed by dihedral element `ops[k]`. Also returns the masks as host values.
    pub fn batch(
        &self,
        rows: &[usize],
        ops: Option<&[usize]>,
        device: &Device,
    ) -> (Tensor<4>, Tensor<3, Int>, Vec<u8>) {
        let r = self.resolution;
        let (plane, area) = (3 * r * r, r * r);
        let mut x = Vec::with_capacity(rows.len() * plane);
        let mut y = Vec::with_capacity(rows.len() * area);
        for (k, &row) in rows.iter().enumerate() {
            let img = &self.images[row * plane..(row + 1) * plane];
            let mask = self.mask(row);
            match ops {
                Some(ops) => {
                    push_dihedral(img, r, ops[k], &mut x);
                    push_dihedral(mask, r, ops[k], &mut y);
                }
                None => {
                    x.extend_from_slice(img);
                    y.extend_from_slice(mask);
                }
            }
        }
        let n = rows.len();
        let images = Tensor::<4>::from_data(TensorData::new(x, [n, 3, r, r]), device);
        let targets: Vec<i64> = y.iter().map(|&v| v as i64).collect();
        let masks = Tensor::<3, Int>::from_data(TensorData::new(targets, [n, r, r]), device);
        (images, masks, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes_set(n: usize) -> SegSet {
        let ds = kestrel_data::Shapes::new(kestrel_data::ShapesConfig {
            n,
            size: 40,
            classes: 3,
            imbalance: 1.0,
            seed: 5,
        })
        .unwrap();
        let rows: Vec<usize> = (0..n).collect();
        SegSet::load(&ds, &rows, 32, &Normalize::IMAGENET, 4).unwrap()
    }

    #[test]
    fn nearest_resize_reads_floor_of_scaled_index() {
        // 4×4 → 2×2 keeps pixels (0,0), (0,2), (2,0), (2,2); 2×2 → 4×4 repeats each pixel twice.
        let m = GrayImage::from_raw(4, 4, (0..16).collect()).unwrap();
        assert_eq!(resize_mask_nearest(&m, 2), vec![0, 2, 8, 10]);
        let m = GrayImage::from_raw(2, 2, vec![1, 2, 3, 4]).unwrap();
        assert_eq!(
            resize_mask_nearest(&m, 4),
            vec![1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]
        );
    }

    #[test]
    fn the_same_dihedral_op_moves_image_and_mask_alike() {
        let set = shapes_set(6);
        let device = Device::flex();
        let r = set.resolution;
        // Foreground pixels differ from the background colour in the image, so the pixels where
        // the image changes under an op must be the pixels where the mask says so, moved alike.
        for op in 0..8 {
            let (x, _, y) = set.batch(&[0, 3], Some(&[op, 7 - op]), &device);
            let x: Vec<f32> = x.into_data().try_to_vec::<f32>().unwrap();
            for (k, &row) in [0usize, 3].iter().enumerate() {
                let op = if k == 0 { op } else { 7 - op };
                // Brute force: where does source pixel (u, v) land?
                let src_mask = set.mask(row);
                let src_img = &set.images[row * 3 * r * r..(row + 1) * 3 * r * r];
                for yy in 0..r {
                    for xx in 0..r {
                        let (mut u, mut v) = (xx, yy);
                        if op & 1 != 0 {
                            u = r - 1 - u;
                        }
                        if op & 2 != 0 {
                            v = r - 1 - v;
                        }
                        if op & 4 != 0 {
                            std::mem::swap(&mut u, &mut v);
                        }
                        let out = k * r * r + yy * r + xx;
                        assert_eq!(y[out], src_mask[v * r + u]);
                        for c in 0..3 {
                            assert_eq!(
                                x[k * 3 * r * r + c * r * r + yy * r + xx],
                                src_img[c * r * r + v * r + u]
                            );
                        }
                    }
                }
            }
        }
        // And the transformed mask still marks the same pixels as the transformed image's shape:
        // in each, the pixel of the mask's class is where the image is not the border colour.
        let (_, _, y) = set.batch(&[1], Some(&[5]), &device);
        let (_, _, y0) = set.batch(&[1], None, &device);
        let fg = |m: &[u8]| m.iter().filter(|&&v| v != 0).count();
        assert_eq!(fg(&y), fg(&y0));
        assert!(fg(&y0) > 0);
        assert_ne!(y, y0, "op 5 (mirror + transpose) moves an off-centre shape");
    }

    #[test]
    fn missing_masks_and_out_of_range_classes_are_errors() {
        let ds = kestrel_data::Shapes::new(kestrel_data::ShapesConfig {
            n: 3,
            size: 32,
            classes: 3,
            imbalance: 1.0,
            seed: 1,
        })
        .unwrap();
        // Every shape pixel is a mask value ≥ 1: one class (background only) is too few.
        let e = SegSet::load(&ds, &[0, 1, 2], 32, &Normalize::IMAGENET, 1)
            .err()
            .expect("mask values ≥ 1");
        assert!(e.to_string().contains("mask value"), "{e}");
    }
}
