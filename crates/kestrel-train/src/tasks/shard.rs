//! Sharded evaluation and prediction: `kestrel eval --shard I/N` and `kestrel predict --shard
//! I/N` each do a contiguous slice of the work and write a part file; `kestrel merge`
//! ([`super::merge`]) checks that the parts are shards `0..N` of the same work and prints what
//! the unsharded command prints. No process talks to another, so any job runner (a Slurm array,
//! a shell loop over machines) can spread the work.
//!
//! Slices are cut at batch boundaries (`tasks::shard_range`): the batches of the whole list (the
//! evaluation's batch of the task, or the inference engine's) are shared out as
//! [`kestrel_data::Shard`] shares out any list, the first shards taking one more when they do not
//! divide evenly. Every forward pass of a shard is therefore a
//! forward pass of the unsharded command, on the same images in the same order, and the
//! probabilities, metrics and predictions come out the same bits.
//!
//! A part file is one JSON document:
//!
//! `{"format": "kestrel-part", "version": 1, "shard": I, "shards": N, "items", "batch", "first",
//! "end", "items_fnv1a64", "model": {"bytes", "fnv1a64"}, "eval" | "predict": {...}}`
//!
//! `items` counts the items of the whole split or image list, `first..end` are this shard's and
//! `batch` the batch they are aligned to; `items_fnv1a64` fingerprints the whole list (the
//! split's dataset indices, or the image paths as given) and `model` the file the model came
//! from (the best checkpoint, or the pretrained weights): its length and FNV-1a 64 hash. Then
//! either `"eval": {"run", "split", "partial"}` (the run folder, `val` or `test`, and the task's
//! [`EvalPartial`]) or `"predict": {"source", "top_k", "engine", "predictions"}` (the
//! predictions of the slice, floats as `{"f64": bits}` so that they read back exactly).

use super::eval::{EvalPartial, EvalSplit, OpenRun};
use super::predict::{predict_checkpoint_on, Prediction};
use crate::driver::checkpoint::{exact_json, from_exact_json, Checkpoint};
use crate::driver::run_dir;
use crate::error::{Result, TrainError};
use crate::infer::InferenceEngine;
use crate::tasks::shard_range;
use kestrel_data::Shard;
use kestrel_nn::Classifier;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The `format` of a part file.
pub const PART_FORMAT: &str = "kestrel-part";
/// The `version` of the part files this build writes and reads.
pub const PART_VERSION: u32 = 1;

/// The FNV-1a 64 hash of `bytes` as 16 hex digits.
fn fnv1a_hex(bytes: &[u8]) -> String {
    format!("{:016x}", kestrel_runtime::format::fnv1a(bytes))
}

/// The file a model was read from: its length and FNV-1a 64 hash. Two parts with the same one
/// ran the same model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Length in bytes.
    pub bytes: u64,
    /// FNV-1a 64 of the bytes, 16 hex digits.
    pub fnv1a64: String,
}

impl ModelFile {
    /// The fingerprint of a file's `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len() as u64,
            fnv1a64: fnv1a_hex(bytes),
        }
    }

    /// Reads the file `path` (`what` says what it is, for the error) and returns its bytes and
    /// fingerprint; a file that cannot be read is bad input naming it.
    pub fn read(path: &Path, what: &str) -> Result<(Vec<u8>, Self)> {
        let bytes = std::fs::read(path).map_err(|e| {
            TrainError::BadInput(format!("{}: cannot read {what} ({e})", path.display()))
        })?;
        let file = Self::of(&bytes);
        Ok((bytes, file))
    }
}

impl fmt::Display for ModelFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, fnv1a64 {}", self.bytes, self.fnv1a64)
    }
}

/// What a shard of `kestrel eval` did.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalJob {
    /// The run folder, absolute where it could be resolved: `kestrel merge` of test parts
    /// records `test_evaluated` there.
    pub run: PathBuf,
    /// `val` or `test`.
    pub split: String,
    /// The task's counts over the shard's items.
    pub partial: EvalPartial,
}

/// What a shard of `kestrel predict` did.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictJob {
    /// Where the model came from: `run`, or `ARCH width W` for pretrained weights.
    pub source: String,
    /// Classes listed per image.
    pub top_k: usize,
    /// `runtime` or `burn`.
    pub engine: String,
    /// The predictions of the shard's images, in the order given.
    #[serde(with = "exact")]
    pub predictions: Vec<Prediction>,
}

/// Predictions through JSON text bit for bit: floats as `{"f64": bits}`.
mod exact {
    use super::{exact_json, from_exact_json, Prediction};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(p: &[Prediction], s: S) -> Result<S::Ok, S::Error> {
        let v = serde_json::to_value(p).map_err(serde::ser::Error::custom)?;
        exact_json(v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Prediction>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        serde_json::from_value(from_exact_json(&v)).map_err(serde::de::Error::custom)
    }
}

/// The work of a part.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// `kestrel eval --shard`.
    Eval(EvalJob),
    /// `kestrel predict --shard`.
    Predict(PredictJob),
}

/// A part file: one shard's share of an evaluation or a prediction, with what identifies the
/// whole (see the module documentation for the fields).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    /// `kestrel-part`.
    pub format: String,
    /// The format version, 1.
    pub version: u32,
    /// This shard's index.
    pub shard: usize,
    /// The number of shards.
    pub shards: usize,
    /// Items of the whole split or image list.
    pub items: usize,
    /// The batch the slices are aligned to.
    pub batch: usize,
    /// This shard's first item.
    pub first: usize,
    /// One past this shard's last item.
    pub end: usize,
    /// FNV-1a 64 of the whole list: the split's dataset indices (`u64` little-endian each), or
    /// the image paths as given (each followed by a 0 byte).
    pub items_fnv1a64: String,
    /// The model's file.
    pub model: ModelFile,
    /// The work.
    #[serde(flatten)]
    pub job: Job,
}

impl Part {
    /// A part of shard `shard` over `items` items cut in batches of `batch` (its items
    /// `shard_range(items, batch, shard)`), fingerprinted by `list` and `model`.
    pub(crate) fn new(
        shard: Shard,
        items: usize,
        batch: usize,
        list: &[u8],
        model: ModelFile,
        job: Job,
    ) -> Self {
        let range = shard_range(items, batch, shard);
        Self {
            format: PART_FORMAT.to_string(),
            version: PART_VERSION,
            shard: shard.index,
            shards: shard.count,
            items,
            batch,
            first: range.start,
            end: range.end,
            items_fnv1a64: fnv1a_hex(list),
            model,
            job,
        }
    }

    /// The shard, `I/N`.
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.shard,
            count: self.shards,
        }
    }

    /// Writes the part to `path` atomically (compact JSON); a folder that does not exist is bad
    /// input naming `--out`, a failed write a runtime error naming the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        check_out_folder(path)?;
        let mut text = serde_json::to_vec(self)
            .map_err(|e| TrainError::Runtime(format!("{}: {e}", path.display())))?;
        text.push(b'\n');
        run_dir::write(path, &text)
    }

    /// Reads the part file `path` and checks it on its own: the format and version, a shard
    /// below the count, the slice that `tasks::shard_range` gives, and as many results as items.
    /// Every failure is bad input naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |why: String| TrainError::BadInput(format!("{}: {why}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read ({e})")))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not JSON ({e}); expected a part file of `--shard`")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(PART_FORMAT) {
            return Err(bad(format!(
                "`format` is {}, expected \"{PART_FORMAT}\" (a part file of `kestrel eval \
                 --shard` or `kestrel predict --shard`)",
                v.get("format").unwrap_or(&serde_json::Value::Null)
            )));
        }
        match v.get("version").and_then(|f| f.as_u64()) {
            Some(n) if n == u64::from(PART_VERSION) => {}
            other => {
                return Err(bad(format!(
                    "part format version {}, this kestrel reads version {PART_VERSION}",
                    other.map_or("missing".to_string(), |n| n.to_string())
                )))
            }
        }
        let part: Part = serde_json::from_value(v).map_err(|e| bad(format!("bad part ({e})")))?;
        part.check().map_err(bad)?;
        Ok(part)
    }

    /// The checks of [`Part::read`] after parsing; the message says what is wrong.
    fn check(&self) -> std::result::Result<(), String> {
        if self.shard >= self.shards {
            return Err(format!(
                "`shard` {} of `shards` {}, expected 0 ≤ shard < shards",
                self.shard, self.shards
            ));
        }
        if self.items == 0 {
            return Err("`items` 0: a split or image list is never empty".into());
        }
        let want = shard_range(self.items, self.batch, self.shard());
        if self.batch == 0 || (self.first..self.end) != want {
            return Err(format!(
                "items {}..{} in batches of {}, expected {}..{} for shard {} of {} items",
                self.first,
                self.end,
                self.batch,
                want.start,
                want.end,
                self.shard(),
                self.items
            ));
        }
        let n = self.end - self.first;
        let got = match &self.job {
            Job::Eval(e) => {
                if e.split != EvalSplit::Val.name() && e.split != EvalSplit::Test.name() {
                    return Err(format!("split `{}`, expected `val` or `test`", e.split));
                }
                e.partial.images()
            }
            Job::Predict(p) => Some(p.predictions.len()),
        };
        match got {
            Some(got) if got != n => Err(format!(
                "{got} results for the {n} items {}..{}",
                self.first, self.end
            )),
            _ => Ok(()),
        }
    }
}

/// Bad input naming `--out` unless the folder of the file `out` exists (the current folder
/// does): checked before the work, so that a mistyped path does not waste it.
pub fn check_out_folder(out: &Path) -> Result<()> {
    match out.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(TrainError::BadInput(format!(
            "--out {}: folder {} does not exist",
            out.display(),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// The FNV-1a input of a list of dataset indices: each as `u64` little-endian.
fn index_bytes(items: &[usize]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|&i| (i as u64).to_le_bytes())
        .collect()
}

/// The FNV-1a input of a list of image paths: each as given, followed by a 0 byte.
fn path_bytes(images: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in images {
        out.extend_from_slice(p.as_os_str().as_encoded_bytes());
        out.push(0);
    }
    out
}

/// Shard `shard` of `kestrel eval --run run --split split`: the task's partial evaluation of the
/// best checkpoint on the shard's slice of the split. Like the unsharded command, the test split
/// needs a finished run; unlike it, a shard does not set `test_evaluated`: `kestrel merge` of
/// the test parts does.
pub fn eval_shard(run: &Path, split: EvalSplit, shard: Shard) -> Result<Part> {
    if split == EvalSplit::Test {
        run_dir::read_summary(run)?;
    }
    let path = run_dir::best_checkpoint(run);
    let (bytes, model) = ModelFile::read(&path, "checkpoint")?;
    let opened = OpenRun::with_checkpoint(run, split, Checkpoint::from_bytes(&bytes, &path)?)?;
    drop(bytes);
    let items = opened.items()?;
    let batch = opened.eval_batch();
    let partial = opened.score(&items[shard_range(items.len(), batch, shard)])?;
    let job = Job::Eval(EvalJob {
        run: std::fs::canonicalize(run).unwrap_or_else(|_| run.to_path_buf()),
        split: split.name().to_string(),
        partial,
    });
    Ok(Part::new(
        shard,
        items.len(),
        batch,
        &index_bytes(items),
        model,
        job,
    ))
}

/// Shard `shard` of `kestrel predict --run run images`: the predictions of the shard's slice of
/// `images` by the run's best checkpoint.
pub fn predict_run_shard(
    run: &Path,
    images: &[PathBuf],
    shard: Shard,
    top_k: usize,
    engine: InferenceEngine,
) -> Result<Part> {
    let path = run_dir::best_checkpoint(run);
    let (bytes, model) = ModelFile::read(&path, "checkpoint")?;
    let ckpt = Checkpoint::from_bytes(&bytes, &path)?;
    drop(bytes);
    let batch = engine.batch();
    let slice = &images[shard_range(images.len(), batch, shard)];
    let predictions = predict_checkpoint_on(&ckpt, slice, top_k, engine.clone())?;
    let job = predict_job("run".to_string(), top_k, engine, predictions);
    Ok(Part::new(
        shard,
        images.len(),
        batch,
        &path_bytes(images),
        model,
        job,
    ))
}

/// Shard `shard` of `kestrel predict --arch ... --weights weights images`: the predictions of
/// the shard's slice of `images` by `model`, the pretrained classifier `source` (its
/// architecture and width) loaded from `weights`.
pub fn predict_imagenet_shard(
    model: Classifier,
    source: String,
    weights: &Path,
    images: &[PathBuf],
    shard: Shard,
    top_k: usize,
    engine: InferenceEngine,
) -> Result<Part> {
    let (_, file) = ModelFile::read(weights, "weights")?;
    let batch = engine.batch();
    let slice = &images[shard_range(images.len(), batch, shard)];
    let predictions =
        super::classify::imagenet::predict_imagenet_on(model, slice, top_k, engine.clone())?;
    let job = predict_job(source, top_k, engine, predictions);
    Ok(Part::new(
        shard,
        images.len(),
        batch,
        &path_bytes(images),
        file,
        job,
    ))
}

fn predict_job(
    source: String,
    top_k: usize,
    engine: InferenceEngine,
    predictions: Vec<Prediction>,
) -> Job {
    Job::Predict(PredictJob {
        source,
        top_k,
        engine: engine.name().to_string(),
        predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ops::Range;

    fn ranges(total: usize, batch: usize, count: usize) -> Vec<Range<usize>> {
        (0..count)
            .map(|index| shard_range(total, batch, Shard { index, count }))
            .collect()
    }

    #[test]
    fn batches_are_shared_out_first_shards_first() {
        // 297 items in batches of 128: 3 batches, one each.
        assert_eq!(ranges(297, 128, 3), [0..128, 128..256, 256..297]);
        // 5 batches over 3 shards: 2, 2, 1.
        assert_eq!(ranges(10, 2, 3), [0..4, 4..8, 8..10]);
        // More shards than batches: the last ones are empty.
        assert_eq!(ranges(3, 2, 4), [0..2, 2..3, 3..3, 3..3]);
        assert_eq!(ranges(0, 8, 2), [0..0, 0..0]);
        assert_eq!(shard_range(7, 0, Shard::WHOLE), 0..7);
    }

    proptest! {
        #[test]
        fn shards_tile_the_list_in_batches(
            total in 0usize..2000,
            batch in 1usize..300,
            count in 1usize..40,
        ) {
            let batches = total.div_ceil(batch);
            prop_assume!(batches > 0);
            let ranges = ranges(total, batch, count);
            // In order, they make up the whole list.
            let all: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
            prop_assert_eq!(all, (0..total).collect::<Vec<_>>());
            // Each non-empty one starts at a batch boundary, and the batch counts differ by at
            // most one, the larger ones first.
            let sizes: Vec<usize> = ranges.iter().map(|r| r.len().div_ceil(batch)).collect();
            for r in ranges.iter().filter(|r| !r.is_empty()) {
                prop_assert_eq!(r.start % batch, 0);
            }
            prop_assert_eq!(sizes.iter().sum::<usize>(), batches);
            prop_assert!(sizes.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            prop_assert!(sizes[0] - sizes[count - 1] <= 1);
            // The rows of training's split validation are the same slices.
            for (index, r) in ranges.iter().enumerate() {
                let rows = crate::tasks::shard_rows(total, batch, Shard { index, count });
                prop_assert_eq!(rows, r.clone().collect::<Vec<_>>());
            }
        }
    }
}
