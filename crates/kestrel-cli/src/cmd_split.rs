//! `kestrel split`: write a stratified, seeded train/val/test split manifest.

use crate::exit::{print_json, CliError};
use clap::Args;
use kestrel_data::{open_with, split_dataset, DataError, DataSpec, Manifest, OpenOptions};
use std::path::PathBuf;

/// Flags of `kestrel split`.
#[derive(Args)]
pub struct SplitArgs {
    /// Data source: `shapes[:n=..,size=..,classes=..,imbalance=..,seed=..]`, `folder:PATH`,
    /// `seg:PATH` or `idx:PATH`.
    #[arg(long)]
    data: String,
    /// Fraction of each class for validation (of the non-test items when the source has its own
    /// test set, as `idx:` does).
    #[arg(long)]
    val: f64,
    /// Fraction of each class for the test split (unused when the source has its own test set).
    #[arg(long)]
    test: f64,
    /// Seed of the per-class shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The manifest file to write (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Leave out items that cannot be read, listing them on stderr.
    #[arg(long)]
    skip_bad: bool,
    /// Print the manifest as one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

fn data_error(e: DataError) -> CliError {
    match e {
        DataError::Io { .. } => CliError::Runtime(e.to_string()),
        other => CliError::BadInput(other.to_string()),
    }
}

/// Runs `kestrel split`: opens the dataset, splits it stratified and seeded (a dataset's own
/// test set stays its test split), saves the manifest to `--out` and prints per-class counts
/// (the manifest as JSON with `--json`).
pub fn run(a: SplitArgs) -> Result<(), CliError> {
    let spec: DataSpec = a.data.parse().map_err(data_error)?;
    kestrel_train::check_out_folder(&a.out)?;
    let opened = open_with(
        &spec,
        OpenOptions {
            skip_bad: a.skip_bad,
        },
    )
    .map_err(data_error)?;
    let ds = opened.dataset.as_ref();
    if !opened.skipped.is_empty() {
        const SHOWN: usize = 20;
        for s in opened.skipped.iter().take(SHOWN) {
            eprintln!("skipped {}: {}", s.key, s.reason);
        }
        if opened.skipped.len() > SHOWN {
            eprintln!("... and {} more", opened.skipped.len() - SHOWN);
        }
        eprintln!(
            "skipped {} unreadable item(s) of {}",
            opened.skipped.len(),
            opened.skipped.len() + ds.len()
        );
    }
    if let Some(official) = ds.official_test() {
        eprintln!(
            "{spec} has its own test set: its {} items are the test split (--test {} is not used)",
            official.len(),
            a.test
        );
    }
    let split = split_dataset(ds, a.val, a.test, a.seed).map_err(data_error)?;
    let manifest = Manifest::from_split(ds, &split).map_err(data_error)?;
    manifest.save(&a.out).map_err(data_error)?;
    if a.json {
        print_json(&manifest)?;
        eprintln!("wrote {}", a.out.display());
        return Ok(());
    }
    let counts = manifest.class_counts(ds).map_err(data_error)?;
    println!(
        "{spec}: {} items, {} classes, seed {}",
        ds.len(),
        manifest.classes.len(),
        manifest.seed
    );
    let width = manifest
        .classes
        .iter()
        .map(|c| c.chars().count())
        .chain([5])
        .max()
        .unwrap_or(5);
    println!(
        "{:<width$} {:>8} {:>8} {:>8}",
        "class", "train", "val", "test"
    );
    for (c, name) in manifest.classes.iter().enumerate() {
        println!(
            "{:<width$} {:>8} {:>8} {:>8}",
            name, counts[0].1[c], counts[1].1[c], counts[2].1[c]
        );
    }
    println!(
        "{:<width$} {:>8} {:>8} {:>8}",
        "total",
        manifest.train.len(),
        manifest.val.len(),
        manifest.test.len()
    );
    println!("wrote {}", a.out.display());
    Ok(())
}
