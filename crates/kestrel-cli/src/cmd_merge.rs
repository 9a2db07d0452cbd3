//! `kestrel merge`.

use crate::exit::{print_json, CliError};
use clap::Args;
use kestrel_train::{merge_parts, Merged};
use std::path::PathBuf;

/// Flags of `kestrel merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// The part files of `kestrel eval --shard` or `kestrel predict --shard`: shards 0 to N-1,
    /// each once, in any order.
    #[arg(required = true, value_name = "PART")]
    parts: Vec<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `kestrel merge`: checks that the parts are every shard of one evaluation or prediction,
/// puts them together and prints what the unsharded `kestrel eval` or `kestrel predict` prints.
pub fn run(a: MergeArgs) -> Result<(), CliError> {
    match merge_parts(&a.parts)? {
        Merged::Eval { report, notes } => {
            for n in notes {
                eprintln!("note: {n}");
            }
            if a.json {
                return print_json(&report);
            }
            crate::cmd_eval::print_report(&report);
        }
        Merged::Predict(predictions) => {
            if a.json {
                return print_json(&predictions);
            }
            crate::cmd_predict::print_predictions(&predictions);
        }
    }
    Ok(())
}
