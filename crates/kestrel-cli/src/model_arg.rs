//! The `MODEL` / `--arch` and `--width` arguments shared by `info`, `bench`, `predict` and
//! `export`.

use crate::exit::CliError;
use kestrel_nn::zoo::{Arch, ARCH_NAMES};

/// Parses a classifier name and checks the width multiplier against it: only the MobileNets
/// have one (a ResNet accepts only 1). `flag` names the argument in the message.
pub fn arch_and_width(name: &str, width: Option<f64>, flag: &str) -> Result<(Arch, f64), CliError> {
    let arch: Arch = name.parse().map_err(|_| {
        CliError::BadInput(format!(
            "unknown model `{name}`{flag}; expected one of: {}",
            ARCH_NAMES.join(", ")
        ))
    })?;
    match width {
        Some(w) if !arch.has_width() && w != 1.0 => Err(CliError::BadInput(format!(
            "bad value for `--width`: {arch} has no width multiplier (expected 1, got {w})"
        ))),
        Some(w) => Ok((arch, w)),
        None => Ok((arch, 1.0)),
    }
}
