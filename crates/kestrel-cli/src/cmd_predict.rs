//! `kestrel predict`.

use crate::exit::{print_json, CliError};
use clap::Args;
use kestrel_train::predict_run;
use std::path::PathBuf;

/// Flags of `kestrel predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The run folder written by `kestrel train`.
    #[arg(long)]
    run: PathBuf,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Image files (png, jpg, bmp).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run(a: PredictArgs) -> Result<(), CliError> {
    let predictions = predict_run(&a.run, &a.images, a.top_k)?;
    if a.json {
        return print_json(&predictions);
    }
    for p in &predictions {
        let tops: Vec<String> = p
            .top
            .iter()
            .map(|t| format!("{} {:.3}", t.label, t.prob))
            .collect();
        println!("{}: {}", p.image.display(), tops.join(", "));
    }
    Ok(())
}
