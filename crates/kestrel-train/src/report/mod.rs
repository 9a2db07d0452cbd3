//! The training report of a run folder: `report.html` (self-contained, every plot inlined as a
//! base64 PNG) and the same plots as files in `plots/`.
//!
//! Inputs ([`ReportInputs`]) come from the run folder itself — `metrics.jsonl` (read, not passed
//! in, so the report always matches the log on disk), the optional `grad_norms.jsonl` and
//! `summary.json` — plus the best checkpoint's validation results ([`val_results`]), which the
//! caller passes in because computing them needs the model and the data. [`write_run_report`]
//! does all of it for `kestrel report --run DIR`; a trainer that has the results at hand builds
//! [`ReportInputs::read`]`(run)`, sets `val`, and calls [`write`].

pub mod base64;
pub mod epoch_log;
pub mod grad_norms;
pub mod grad_table;
pub mod html;
pub mod plots;
pub mod step_log;
pub mod val_results;

pub use epoch_log::EpochPoint;
pub use grad_norms::GradSample;
pub use val_results::{val_results, ValResults};

use crate::driver::run_dir::{self, Summary};
use crate::error::{Result, TrainError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// File name of the report inside a run folder.
pub const REPORT: &str = "report.html";

/// Everything the report shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportInputs {
    /// The epoch log (`metrics.jsonl`).
    pub epochs: Vec<EpochPoint>,
    /// The step log (`steps.jsonl`); empty for runs written before it existed.
    pub steps: Vec<step_log::StepPoint>,
    /// Gradient-norm samples (`grad_norms.jsonl`); empty when the run has none.
    pub grad_norms: Vec<GradSample>,
    /// `summary.json`, when the run finished.
    pub summary: Option<Summary>,
    /// Validation results of the best checkpoint, when available.
    pub val: Option<ValResults>,
}

impl ReportInputs {
    /// Reads the epoch log, the gradient norms and the summary of `run`; `val` is left `None`.
    ///
    /// # Errors
    /// Bad input naming the file when `metrics.jsonl` is missing or a log line is malformed.
    pub fn read(run: &Path) -> Result<ReportInputs> {
        let summary = if run.join(run_dir::SUMMARY).exists() {
            Some(run_dir::read_summary(run)?)
        } else {
            None
        };
        Ok(ReportInputs {
            epochs: epoch_log::read_epochs(run)?,
            steps: step_log::read_steps(run)?,
            grad_norms: grad_norms::read_grad_norms(run)?,
            summary,
            val: None,
        })
    }
}

/// What [`write`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportFiles {
    /// `<run>/report.html`.
    pub report: PathBuf,
    /// The PNG files in `<run>/plots/`, in report order.
    pub plots: Vec<PathBuf>,
    /// What could not be shown (no gradient norms, no validation results, ...).
    pub notes: Vec<String>,
}

/// Writes `<run>/plots/*.png` and `<run>/report.html` (atomically, each file) from `inputs`.
///
/// # Errors
/// Bad input when the run folder is not writable; runtime error when a plot fails.
pub fn write(run: &Path, inputs: &ReportInputs) -> Result<ReportFiles> {
    let dir = run.join(plots::PLOTS);
    let (plots, notes) = plots::write_all(&dir, inputs)?;
    let mut images = Vec::with_capacity(plots.len());
    for p in plots {
        let path = dir.join(&p.file);
        let bytes = std::fs::read(&path)
            .map_err(|e| TrainError::Runtime(format!("{}: {e}", path.display())))?;
        images.push((p, bytes));
    }
    let run_name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.display().to_string());
    let page = html::render(&html::Page {
        run_name: &run_name,
        summary: inputs.summary.as_ref(),
        epochs: &inputs.epochs,
        plots: &images,
        notes: &notes,
    });
    let report = run.join(REPORT);
    run_dir::write(&report, page.as_bytes())?;
    Ok(ReportFiles {
        report,
        plots: images.iter().map(|(p, _)| dir.join(&p.file)).collect(),
        notes,
    })
}

/// (Re)writes the report of an existing run: reads its logs, computes the best checkpoint's
/// validation results, and writes `report.html` and `plots/`.
///
/// # Errors
/// Bad input when the run folder, its log, checkpoint or data cannot be read.
pub fn write_run_report(run: &Path) -> Result<ReportFiles> {
    let mut inputs = ReportInputs::read(run)?;
    // What a run killed while writing its report (or anything else) left behind.
    run_dir::remove_stale_temporaries(run)?;
    // A multi-task run's confusion and IoU plots are not drawn yet: its report has the curves.
    let multitask = inputs
        .summary
        .as_ref()
        .is_some_and(|s| s.task == "multitask");
    if !multitask {
        inputs.val = Some(val_results(run)?);
    }
    write(run, &inputs)
}

#[cfg(test)]
mod tests;
