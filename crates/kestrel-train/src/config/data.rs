//! The data of a run: opening its source and splitting it.

use super::TrainConfig;
use crate::error::{Result, TrainError};
use kestrel_data::DataSpec;

impl TrainConfig {
    /// The train/val/test split of `ds`: the manifest's when one is set, else a stratified split
    /// (honouring a source's own test set).
    pub fn split(&self, ds: &dyn kestrel_data::Dataset) -> Result<kestrel_data::Split> {
        Ok(match &self.split_manifest {
            Some(path) => kestrel_data::manifest::Manifest::load_split(path, ds)?,
            None => kestrel_data::split::split_dataset(
                ds,
                self.val_fraction,
                self.test_fraction,
                self.seed,
            )?,
        })
    }

    /// Opens the data `spec` names, leaving out unreadable items when `skip_bad` is set and then
    /// (with `report`) listing the first few on stderr with their count.
    pub fn open_data(
        &self,
        spec: &DataSpec,
        report: bool,
    ) -> Result<Box<dyn kestrel_data::Dataset>> {
        let opened = kestrel_data::open_with(
            spec,
            kestrel_data::OpenOptions {
                skip_bad: self.skip_bad,
            },
        )?;
        if self.skip_bad && report {
            const SHOWN: usize = 5;
            for s in opened.skipped.iter().take(SHOWN) {
                eprintln!("skipped {}: {}", s.key, s.reason);
            }
            if opened.skipped.len() > SHOWN {
                eprintln!("... and {} more", opened.skipped.len() - SHOWN);
            }
            eprintln!(
                "--skip-bad: skipped {} unreadable item(s) of {}",
                opened.skipped.len(),
                opened.skipped.len() + opened.dataset.len()
            );
        }
        Ok(opened.dataset)
    }

    /// [`TrainConfig::split`] for training: bad input unless it gives at least one batch to
    /// train on and one image to validate on.
    pub fn training_split(&self, ds: &dyn kestrel_data::Dataset) -> Result<kestrel_data::Split> {
        let split = self.split(ds)?;
        if split.train.len() < self.batch_size || split.val.is_empty() {
            return Err(TrainError::BadInput(format!(
                "data `{}` gives {} training and {} validation images; expected at least one batch ({}) to train on and one image to validate on",
                self.data,
                split.train.len(),
                split.val.len(),
                self.batch_size
            )));
        }
        Ok(split)
    }
}
