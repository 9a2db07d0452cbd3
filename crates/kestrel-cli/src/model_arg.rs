//! The `MODEL` / `--arch` and `--width` arguments shared by `info`, `bench`, `predict` and
//! `export`: kestrel-nn's model names ([`kestrel_nn::info::named`]), errors as bad input naming
//! the flag.

use crate::exit::CliError;
use kestrel_nn::info::named::{self, NamedError};
use kestrel_nn::models::fcn::SegmenterSpec;
use kestrel_nn::models::zoo::Arch;

/// Parses a classifier name and checks the width multiplier against it; `flag` names the
/// argument in the message.
pub fn arch_and_width(name: &str, width: Option<f64>, flag: &str) -> Result<(Arch, f64), CliError> {
    named::arch_and_width(name, width).map_err(|e| match e {
        NamedError::Name(m) if !flag.is_empty() => {
            CliError::BadInput(m.replacen(&format!("`{name}`"), &format!("`{name}`{flag}"), 1))
        }
        e => bad_input(e),
    })
}

/// The segmentation model `name` with its settings (see [`named::segmenter_spec`]).
pub fn segmenter_spec(
    name: &str,
    width: Option<f64>,
    classes: Option<usize>,
    output_stride: usize,
    upsampler: &str,
) -> Result<SegmenterSpec, CliError> {
    named::segmenter_spec(name, width, classes, output_stride, upsampler).map_err(bad_input)
}

/// A naming error as bad input; a setting is named as its flag (`--width`).
pub fn bad_input(e: NamedError) -> CliError {
    match e {
        NamedError::Setting { setting, detail } => {
            CliError::BadInput(format!("bad value for `--{setting}`: {detail}"))
        }
        e => CliError::BadInput(e.to_string()),
    }
}
