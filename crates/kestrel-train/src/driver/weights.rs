//! `--weights FILE`: a run that starts from trained weights, a torchvision state dict or a
//! kestrel checkpoint, instead of a random initialisation (see [`kestrel_nn::import::fit`]).

use super::checkpoint::{is_checkpoint, Checkpoint};
use crate::error::{Result, TrainError};
use burn::tensor::Device;
use kestrel_nn::import::mismatch::shortened;
use kestrel_nn::import::{
    fit_weights, model_state_dict, read_state_dict, FitReport, HasBackbone, ImportError, Naming,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `--weights` loaded, as `summary.json` records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsRecord {
    /// The weights file.
    pub file: PathBuf,
    /// Tensors set from the file.
    pub loaded: usize,
    /// The model's tensors left as initialised (heads the file lacks or holds in another shape).
    pub reinitialised: Vec<String>,
    /// Keys of the file that the model has no place for.
    pub unused: Vec<String>,
}

impl WeightsRecord {
    fn new(file: &Path, r: FitReport) -> Self {
        Self {
            file: file.to_path_buf(),
            loaded: r.loaded,
            reinitialised: r.reinitialised,
            unused: r.unused,
        }
    }

    /// The lines a run prints about it.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "weights: {} tensors loaded from {}",
            self.loaded,
            self.file.display()
        );
        if !self.reinitialised.is_empty() {
            out.push_str(&format!(
                "\nweights: {} re-initialised (not in the file, or another shape): {}",
                self.reinitialised.len(),
                shortened(&self.reinitialised)
            ));
        }
        if !self.unused.is_empty() {
            out.push_str(&format!(
                "\nweights: {} keys of the file unused: {}",
                self.unused.len(),
                shortened(&self.unused)
            ));
        }
        out
    }
}

/// `model` with the weights of `path` fitted in: a kestrel checkpoint (by its magic) through
/// kestrel's names, any other file as a torchvision state dict. A file that does not fit the
/// backbone is bad input saying why.
pub(crate) fn fit<M: HasBackbone>(model: M, path: &Path) -> Result<(M, WeightsRecord)> {
    let (sd, naming) = if is_checkpoint(path) {
        let trained = Checkpoint::load(path)?.load_model(&Device::flex())?;
        (model_state_dict(&trained), Naming::Kestrel)
    } else {
        (read_state_dict(path).map_err(bad)?, Naming::Torchvision)
    };
    let (model, report) = fit_weights(model, &sd, naming).map_err(|e| match e {
        ImportError::Mismatch { mismatch, .. } => bad(ImportError::Mismatch {
            path: Some(path.to_path_buf()),
            mismatch,
        }),
        e => TrainError::BadInput(format!("{}: {e}", path.display())),
    })?;
    Ok((model, WeightsRecord::new(path, report)))
}

fn bad(e: ImportError) -> TrainError {
    TrainError::BadInput(format!("--weights: {e}"))
}
