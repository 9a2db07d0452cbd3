//! A split of a dataset decoded once into normalised CHW floats, and batches drawn from it.

use crate::error::Result;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kestrel_data::preprocess::push_chw;
use kestrel_data::rng::Rng;
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
    pub fn load(
        ds: &dyn Dataset,
        indices: &[usize],
        resolution: usize,
        norm: &Normalize,
    ) -> Result<Self> {
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
        self.batch_with(rows, device, None)
    }

    /// Like [`TensorSet::batch`], and when `augment` is given, each image is transformed by a
    /// random element of the dihedral group of the square (flips and quarter turns), drawn from
    /// the generator.
    pub fn batch_with(
        &self,
        rows: &[usize],
        device: &Device,
        mut augment: Option<&mut Rng>,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let plane = 3 * self.resolution * self.resolution;
        let mut x = Vec::with_capacity(rows.len() * plane);
        for &r in rows {
            let src = &self.images[r * plane..(r + 1) * plane];
            match augment.as_deref_mut() {
                Some(rng) => push_dihedral(src, self.resolution, rng.below(8), &mut x),
                None => x.extend_from_slice(src),
            }
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

/// Appends the 3-plane square image `src` (side `r`) transformed by dihedral element `op` (0..8):
/// bit 0 mirrors left–right, bit 1 mirrors top–bottom, bit 2 transposes.
fn push_dihedral(src: &[f32], r: usize, op: usize, out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + src.len(), 0.0);
    let dst = &mut out[start..];
    for c in 0..3 {
        let s = &src[c * r * r..(c + 1) * r * r];
        let d = &mut dst[c * r * r..(c + 1) * r * r];
        for y in 0..r {
            for x in 0..r {
                let (mut u, mut v) = (x, y);
                if op & 1 != 0 {
                    u = r - 1 - u;
                }
                if op & 2 != 0 {
                    v = r - 1 - v;
                }
                if op & 4 != 0 {
                    std::mem::swap(&mut u, &mut v);
                }
                d[y * r + x] = s[v * r + u];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dihedral_ops_are_the_eight_symmetries_of_the_square() {
        // One channel repeated: a 3×3 image with distinct values.
        let plane: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let src: Vec<f32> = plane.iter().chain(&plane).chain(&plane).copied().collect();
        let mut seen = std::collections::BTreeSet::new();
        for op in 0..8 {
            let mut out = Vec::new();
            push_dihedral(&src, 3, op, &mut out);
            assert_eq!(out.len(), 27);
            let p: Vec<i32> = out[..9].iter().map(|&v| v as i32).collect();
            // The centre stays, corners go to corners.
            assert_eq!(p[4], 4);
            assert!([0, 2, 6, 8].contains(&p[0]), "{p:?}");
            seen.insert(p);
        }
        assert_eq!(seen.len(), 8, "eight distinct images");
        let mut out = Vec::new();
        push_dihedral(&src, 3, 1, &mut out);
        assert_eq!(&out[..3], &[2.0, 1.0, 0.0]);
    }
}
