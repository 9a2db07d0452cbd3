//! The int8 plan file: an fp32 plan file and its quantisation table in one checksummed container.
//!
//! Layout (integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `KESTINT8` |
//! | 4 | format version (`u32`, currently 1) |
//! | 8 | plan length `P` (`u64`) |
//! | P | the fp32 plan file (see [`crate::format`]), weights in `f32`: the int8 weights are derived from them and the scales when the engine is built, so the file also runs in fp32 |
//! | 8 | table length `T` (`u64`) |
//! | T | the [`QuantTable`] as JSON |
//! | 8 | FNV-1a 64 checksum of everything before it |
//!
//! Loading checks every length against the file, the checksum, the plan, and then the table
//! against the plan ([`QuantTable::validate`]): a scale that is zero, negative, infinite or NaN,
//! a zero point outside `0..=255`, or a missing entry is an error naming the value or op.

use super::table::QuantTable;
use crate::error::{Result, RuntimeError};
use crate::format::{fnv1a, Sections};
use crate::plan::Plan;
use std::path::Path;

/// File magic.
pub const MAGIC: &[u8; 8] = b"KESTINT8";
/// Current format version.
pub const VERSION: u32 = 1;

/// An fp32 plan with the quantisation that runs it in int8.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantPlan {
    /// The BN-folded fp32 plan.
    pub plan: Plan,
    /// Scales and zero points.
    pub table: QuantTable,
}

/// Whether `bytes` start like an int8 plan file (rather than an fp32 one).
pub fn is_int8_plan(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

impl QuantPlan {
    /// Checks the plan and the table against it.
    pub fn validate(&self) -> Result<()> {
        self.plan.validate()?;
        self.table.validate(&self.plan)
    }

    /// Serialises to the file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let plan = self.plan.to_bytes();
        let table = serde_json::to_vec(&self.table).expect("a table always serialises");
        let mut out = Vec::with_capacity(36 + plan.len() + table.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(plan.len() as u64).to_le_bytes());
        out.extend_from_slice(&plan);
        out.extend_from_slice(&(table.len() as u64).to_le_bytes());
        out.extend_from_slice(&table);
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses and validates the file format; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<QuantPlan> {
        let mut f = Sections::new(bytes, path);
        if f.take(8, "magic")? != MAGIC {
            return Err(f.err("not an int8 kestrel plan (magic KESTINT8 missing)".into()));
        }
        let version = f.u32("version")?;
        if version != VERSION {
            return Err(f.err(format!(
                "int8 format version {version}, this build reads version {VERSION}"
            )));
        }
        let mut section = |what: &str| -> Result<&[u8]> {
            let n = f.u64(&format!("{what} length"))?;
            // A length past `usize` cannot fit in the file: `take` reports it as such.
            f.take(usize::try_from(n).unwrap_or(usize::MAX), what)
        };
        let plan_bytes = section("plan")?;
        let table_bytes = section("quantisation table")?;
        f.checksum()?;
        let plan = Plan::from_bytes(plan_bytes, path)?;
        let table: QuantTable = serde_json::from_slice(table_bytes)
            .map_err(|e| f.err(format!("quantisation table JSON: {e}")))?;
        let q = QuantPlan { plan, table };
        q.table
            .validate(&q.plan)
            .map_err(|e| f.err(e.to_string()))?;
        Ok(q)
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        kestrel_fsio::write_atomic(path, &self.to_bytes()).map_err(|e| RuntimeError::Format {
            path: path.to_path_buf(),
            message: format!("write failed: {e}"),
        })
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<QuantPlan> {
        QuantPlan::from_bytes(&crate::format::read_file(path)?, path)
    }
}
