//! `kestrel report`: (re)writes `report.html` and `plots/` of a run folder.

use crate::exit::{print_json, CliError};
use clap::Args;
use std::path::PathBuf;

/// Flags of `kestrel report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The run folder written by `kestrel train`.
    #[arg(long)]
    run: PathBuf,
    /// One JSON document on stdout: `{"report", "plots", "notes"}`.
    #[arg(long)]
    json: bool,
}

/// Runs `kestrel report`: (re)writes the run folder's `report.html` and plots and lists the
/// files written; `--run` that is not a folder is bad input (exit 2).
pub fn run(a: ReportArgs) -> Result<(), CliError> {
    if !a.run.is_dir() {
        return Err(CliError::BadInput(format!(
            "--run {}: not a folder; expected a run folder from `kestrel train`",
            a.run.display()
        )));
    }
    let files = kestrel_train::write_run_report(&a.run)?;
    if a.json {
        return print_json(&files);
    }
    println!("wrote {}", files.report.display());
    for p in &files.plots {
        println!("  {}", p.display());
    }
    for n in &files.notes {
        eprintln!("note: {n}");
    }
    Ok(())
}
