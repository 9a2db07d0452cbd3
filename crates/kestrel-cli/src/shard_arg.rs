//! `--shard I/N --out PART`, shared by `eval` and `predict`: one shard's share of the work,
//! written to a part file that `kestrel merge` puts together with the others.

use crate::exit::{print_json, CliError};
use clap::Args;
use kestrel_data::Shard;
use kestrel_train::Part;
use std::path::{Path, PathBuf};

/// The shard flags.
#[derive(Args)]
pub struct ShardArgs {
    /// Do shard I of N (0 ≤ I < N): a contiguous slice of the items, cut where a batch starts,
    /// written to --out for `kestrel merge` instead of printed.
    #[arg(long, value_name = "I/N", requires = "out")]
    shard: Option<String>,
    /// The part file of --shard (JSON, written atomically).
    #[arg(long, value_name = "PART", requires = "shard")]
    out: Option<PathBuf>,
}

impl ShardArgs {
    /// The shard and its part file, or `None` without `--shard`. A bad `I/N`, or a part file in
    /// a folder that does not exist, is bad input (before any work is done).
    pub fn get(&self) -> Result<Option<(Shard, &Path)>, CliError> {
        match (&self.shard, &self.out) {
            (Some(shard), Some(out)) => {
                let shard: Shard = shard
                    .parse()
                    .map_err(|e| CliError::BadInput(format!("--shard {e}")))?;
                kestrel_train::check_out_folder(out)?;
                Ok(Some((shard, out)))
            }
            // clap's `requires` refuses one without the other.
            _ => Ok(None),
        }
    }
}

/// Writes `part` to `out` and says so: one line, or with `json` one JSON document `{"out",
/// "shard", "shards", "first", "end", "items"}`.
pub fn write_part(part: &Part, out: &Path, json: bool) -> Result<(), CliError> {
    part.write(out)?;
    if json {
        return print_json(&serde_json::json!({
            "out": out,
            "shard": part.shard,
            "shards": part.shards,
            "first": part.first,
            "end": part.end,
            "items": part.items,
        }));
    }
    println!(
        "shard {}: items {}..{} of {}, written to {}",
        part.shard(),
        part.first,
        part.end,
        part.items,
        out.display()
    );
    Ok(())
}
