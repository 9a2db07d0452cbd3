//! A split of a dataset decoded once into normalised CHW floats, and batches drawn from it.

use crate::error::Result;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kestrel_data::preprocess::push_chw;
use kestrel_data::{Dataset, Normalize};
use rayon::prelude::*;

/// Images of one split, preprocessed, with their labels.
pub struct TensorSet {
    /// Side of the square images.
    pub resolution: usize,
    /// (N, 3, R, R) values, row-major.
    pub images: Vec<f32>,
    /// Class of each image.
    pub labels: Vec<usize>,
}

impl TensorSet {
    /// Decodes, resizes and normalises items `indices` of `ds` (in parallel).
    pub fn load(ds: &dyn Dataset, indices: &[usize], resolution: usize, norm: &Normalize) -> Result<Self> {
        let r = resolution as u32;
        let per_item: Vec<(Vec<f32>, usize)> = indices
            .par_iter()
            .map(|&i| {
                let item = ds.get(i)?;
                let mut v = Vec::with_capacity(3 * resolution * resolution);
                push_chw(&item.image, r, r, norm, &mut v);
                Ok((v, item.label))
            })
            .collect::<Result<_>>()?;
        let mut images = Vec::with_capacity(indices.len() * 3 * resolution * resolution);
        let mut labels = Vec::with_capacity(indices.len());
        for (v, l) in per_item {
            images.extend_from_slice(&v);
            labels.push(l);
        }
        Ok(Self {
            resolution,
            images,
            labels,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at positions `rows` as an (n, 3, R, R) tensor, with their labels.
    pub fn batch(&self, rows: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let plane = 3 * self.resolution * self.resolution;
        let mut x = Vec::with_capacity(rows.len() * plane);
        for &r in rows {
            x.extend_from_slice(&self.images[r * plane..(r + 1) * plane]);
        }
        let n = rows.len();
        let images = Tensor::<4>::from_data(
            TensorData::new(x, [n, 3, self.resolution, self.resolution]),
            device,
        );
        let y: Vec<i64> = rows.iter().map(|&r| self.labels[r] as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(y, [n]), device);
        (images, labels)
    }
}
