//! `kestrel metrics`: score predictions already made, from a CSV.

use crate::exit::{print_json, CliError};
use clap::Args;
use kestrel_metrics::{csv_input, plot, Report};
use std::path::PathBuf;

/// Flags of `kestrel metrics`.
#[derive(Args)]
pub struct MetricsArgs {
    /// CSV with a header: `y_true` plus `score` (binary) or one `p_<class>` column per class.
    #[arg(long)]
    input: PathBuf,
    /// Binary decision threshold: predicted positive when score >= T.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Write roc.png, pr.png and confusion.png into this folder.
    #[arg(long)]
    plots: Option<PathBuf>,
}

/// Runs `kestrel metrics`: loads the predictions CSV, prints the report (JSON with `--json`,
/// its warnings on stderr) and, with `--plots DIR`, writes the plots there. A bad CSV or
/// undefined metric is bad input (exit 2).
pub fn run(a: MetricsArgs) -> Result<(), CliError> {
    let bad = |e: kestrel_metrics::MetricsError| CliError::BadInput(e.to_string());
    let predictions = csv_input::load(&a.input).map_err(bad)?;
    let report = Report::from_predictions(&predictions, a.threshold).map_err(bad)?;
    if a.json {
        print_json(&report)?;
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    } else {
        println!("{}", report.to_text().trim_end());
    }
    if let Some(dir) = &a.plots {
        plot::write_plots(&predictions, &report, dir).map_err(bad)?;
        eprintln!("plots written to {}", dir.display());
    }
    Ok(())
}
