//! A split of a dataset decoded once into normalised CHW floats, and batches drawn from it.

use crate::error::{Result, TrainError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kestrel_data::loader::{Batch, BatchSource, PlannedSample};
use kestrel_data::preprocess::push_chw;
use kestrel_data::rng::Rng;
use kestrel_data::{DataError, Dataset, Normalize};
use rayon::prelude::*;
use std::sync::Arc;

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

    /// The images at positions `rows`, one after another (NCHW values of an (n, 3, R, R) batch).
    pub fn nchw(&self, rows: &[usize]) -> Vec<f32> {
        let plane = 3 * self.resolution * self.resolution;
        let mut x = Vec::with_capacity(rows.len() * plane);
        for &r in rows {
            x.extend_from_slice(&self.images[r * plane..(r + 1) * plane]);
        }
        x
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
        augment: Option<&mut Rng>,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let x = match augment {
            None => self.nchw(rows),
            Some(rng) => {
                let plane = 3 * self.resolution * self.resolution;
                let mut x = Vec::with_capacity(rows.len() * plane);
                for &r in rows {
                    let src = &self.images[r * plane..(r + 1) * plane];
                    push_dihedral(src, self.resolution, rng.below(8), &mut x);
                }
                x
            }
        };
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

/// A preloaded [`TensorSet`] as a loader source: each sample is copied, and with `ops = Some(n)`
/// transformed by the dihedral element [`op_of`]`(sample.seed, n)`, one of the first `n`.
pub struct TensorSource {
    /// The images.
    pub set: Arc<TensorSet>,
    /// How many dihedral elements to draw from (8: flips and quarter turns, 2: a horizontal
    /// flip); `None`: no transformation.
    pub ops: Option<usize>,
}

impl BatchSource for TensorSource {
    fn sample_len(&self) -> usize {
        3 * self.set.resolution * self.set.resolution
    }

    fn load(
        &self,
        sample: PlannedSample,
        out: &mut Vec<f32>,
    ) -> std::result::Result<usize, DataError> {
        let plane = self.sample_len();
        let (r, i) = (self.set.resolution, sample.index);
        let &label = self.set.labels.get(i).ok_or_else(|| DataError::Value {
            field: "index".into(),
            reason: format!("row {i} of a set of {}", self.set.len()),
        })?;
        let src = &self.set.images[i * plane..(i + 1) * plane];
        match self.ops {
            Some(n) => push_dihedral(src, r, op_of(sample.seed, n), out),
            None => out.extend_from_slice(src),
        }
        Ok(label)
    }
}

/// The dihedral element (0..8) for a sample seed: `Rng::below(8)` applied to the draw `seed`, so
/// seeds taken one after another from a generator give the elements that generator's `below(8)`
/// would.
#[cfg(test)]
pub fn dihedral_op(seed: u64) -> usize {
    op_of(seed, 8)
}

/// `Rng::below(n)` applied to the draw `seed`: the transformation (0..n) of a sample.
pub fn op_of(seed: u64, n: usize) -> usize {
    ((seed >> 32).wrapping_mul(n as u64) >> 32) as usize
}

/// A loaded batch as an (n, 3, R, R) tensor with its labels.
pub fn batch_tensors(
    batch: &Batch,
    resolution: usize,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.labels.len();
    let images = Tensor::<4>::from_data(
        TensorData::new(batch.values.clone(), [n, 3, resolution, resolution]),
        device,
    );
    let y: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
    (
        images,
        Tensor::<1, Int>::from_data(TensorData::new(y, [n]), device),
    )
}

impl TensorSet {
    /// Adds SMOTE images (on the flattened normalised pixels) so that every class has as many
    /// images as the largest; returns the number added. `k` = 5 neighbours, fewer when a class
    /// that grows has 5 or fewer images; a class with 1 image (and fewer than the largest) is an
    /// error naming it.
    pub fn smote(&mut self, class_names: &[String], seed: u64) -> Result<usize> {
        let plane = 3 * self.resolution * self.resolution;
        let counts = kestrel_data::imbalance::class_counts(&self.labels, class_names.len())?;
        let most = counts.iter().copied().max().unwrap_or(0);
        let target: Vec<usize> = counts
            .iter()
            .map(|&c| if c == 0 { 0 } else { most })
            .collect();
        let growing = counts.iter().filter(|&&c| c > 0 && c < most);
        let k = growing
            .clone()
            .map(|&c| c.saturating_sub(1))
            .min()
            .unwrap_or(5)
            .min(5);
        if let Some(c) = counts.iter().position(|&c| c == 1 && most > 1) {
            return Err(TrainError::BadInput(format!(
                "--balance smote: class `{}` has 1 training image; SMOTE needs at least 2 to interpolate between",
                class_names[c]
            )));
        }
        if growing.count() == 0 {
            return Ok(0);
        }
        let x: Vec<Vec<f32>> = self
            .images
            .chunks_exact(plane)
            .map(<[f32]>::to_vec)
            .collect();
        let out = kestrel_data::imbalance::smote(&x, &self.labels, &target, k, seed)?;
        let added = out.x.len() - out.n_original;
        for v in &out.x[out.n_original..] {
            self.images.extend_from_slice(v);
        }
        self.labels.extend_from_slice(&out.y[out.n_original..]);
        Ok(added)
    }
}

/// Appends the square planes `src` (side `r`, any number of planes: 3 for an image, 1 for a
/// mask) transformed by dihedral element `op` (0..8): bit 0 mirrors left–right, bit 1 mirrors
/// top–bottom, bit 2 transposes. Every plane moves alike, so an image and its mask given the same
/// `op` stay aligned.
pub(crate) fn push_dihedral<T: Copy + Default>(src: &[T], r: usize, op: usize, out: &mut Vec<T>) {
    let start = out.len();
    out.resize(start + src.len(), T::default());
    let dst = &mut out[start..];
    let area = r * r;
    for (s, d) in src.chunks_exact(area).zip(dst.chunks_exact_mut(area)) {
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

    #[test]
    fn dihedral_op_of_a_seed_is_the_generators_below_8() {
        let mut a = Rng::stream(4, 2_000_001);
        let mut b = a.clone();
        for _ in 0..1000 {
            assert_eq!(dihedral_op(a.next_u64()), b.below(8));
        }
    }

    fn shapes_set(n: usize, imbalance: f64) -> (TensorSet, Vec<String>) {
        let ds = kestrel_data::Shapes::new(kestrel_data::ShapesConfig {
            n,
            size: 32,
            classes: 3,
            imbalance,
            seed: 2,
        })
        .unwrap();
        let rows: Vec<usize> = (0..n).collect();
        let set = TensorSet::load(&ds, &rows, 32, &Normalize::IMAGENET).unwrap();
        (set, ds.class_names())
    }

    #[test]
    fn the_loader_over_a_tensor_set_gives_the_first_trainers_batches() {
        use kestrel_data::loader::{chunk_plan, Loader, LoaderOptions};
        let (set, _) = shapes_set(40, 1.0);
        let set = Arc::new(set);
        let device = Device::flex();
        let mut order: Vec<usize> = (0..set.len()).collect();
        Rng::new(3).shuffle(&mut order);
        // The first trainer: one generator drawing below(8) per image, batch after batch.
        let mut rng = Rng::stream(0, 2_000_001);
        let want: Vec<Vec<f32>> = order
            .chunks_exact(8)
            .map(|rows| {
                let (x, _) = set.batch_with(rows, &device, Some(&mut rng));
                x.into_data().try_to_vec::<f32>().unwrap()
            })
            .collect();
        let mut seeds = Rng::stream(0, 2_000_001);
        let samples = kestrel_data::loader::plan_samples(order.iter().copied(), &mut seeds);
        for workers in [1, 4] {
            let source = Arc::new(TensorSource {
                set: set.clone(),
                ops: Some(8),
            });
            let got: Vec<Vec<f32>> = Loader::spawn(
                source,
                chunk_plan(&samples, 8, true),
                LoaderOptions {
                    workers,
                    prefetch: 2,
                },
            )
            .map(|b| {
                let b = b.unwrap();
                let want_labels: Vec<usize> =
                    b.samples.iter().map(|s| set.labels[s.index]).collect();
                assert_eq!(b.labels, want_labels);
                let (x, _) = batch_tensors(&b, 32, &device);
                x.into_data().try_to_vec::<f32>().unwrap()
            })
            .collect();
            assert_eq!(got, want, "{workers} workers");
        }
    }

    #[test]
    fn smote_fills_every_class_up_to_the_largest() {
        let (mut set, names) = shapes_set(60, 6.0);
        let before = kestrel_data::imbalance::class_counts(&set.labels, 3).unwrap();
        let n = set.len();
        let added = set.smote(&names, 1).unwrap();
        let after = kestrel_data::imbalance::class_counts(&set.labels, 3).unwrap();
        let most = *before.iter().max().unwrap();
        assert!(before.iter().any(|&c| c < most), "{before:?}");
        assert_eq!(after, vec![most; 3]);
        assert_eq!(added, 3 * most - n);
        assert_eq!(set.images.len(), set.len() * 3 * 32 * 32);
        // A synthetic image lies between two real images of its class, pixel by pixel: inside
        // the class's per-pixel range.
        let plane = 3 * 32 * 32;
        let c = set.labels[n];
        let real: Vec<&[f32]> = (0..n)
            .filter(|&i| set.labels[i] == c)
            .map(|i| &set.images[i * plane..(i + 1) * plane])
            .collect();
        for (p, &v) in set.images[n * plane..(n + 1) * plane].iter().enumerate() {
            let lo = real.iter().map(|r| r[p]).fold(f32::INFINITY, f32::min);
            let hi = real.iter().map(|r| r[p]).fold(f32::NEG_INFINITY, f32::max);
            assert!(v >= lo - 1e-5 && v <= hi + 1e-5);
        }
    }

    /// `hflip`: every loaded image is either the stored one or its mirror image left to right
    /// (each column x taken from column R − 1 − x), and over 64 samples both occur.
    #[test]
    fn a_horizontal_flip_source_mirrors_or_keeps_each_image() {
        let (set, _) = shapes_set(4, 1.0);
        let r = set.resolution;
        let plane = 3 * r * r;
        let source = TensorSource {
            set: Arc::new(set),
            ops: Some(2),
        };
        let mut seeds = Rng::new(5);
        let (mut kept, mut mirrored) = (0, 0);
        for i in 0..64 {
            let index = i % 4;
            let mut out = Vec::new();
            let sample = PlannedSample {
                index,
                seed: seeds.next_u64(),
            };
            source.load(sample, &mut out).unwrap();
            let src = &source.set.images[index * plane..(index + 1) * plane];
            let mirror: Vec<f32> = (0..plane)
                .map(|j| {
                    let (row, x) = (j / r, j % r);
                    src[row * r + (r - 1 - x)]
                })
                .collect();
            if out == src {
                kept += 1;
            } else {
                assert_eq!(out, mirror, "sample {i}");
                mirrored += 1;
            }
        }
        assert!(
            kept > 10 && mirrored > 10,
            "{kept} kept, {mirrored} mirrored"
        );
    }
}
