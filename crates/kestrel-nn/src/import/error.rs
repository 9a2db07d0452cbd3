//! Errors of importing weights, with the file (and tensor) they concern, for the CLI to print.

use super::format::Format;
use super::mismatch::Mismatch;
use super::read_error::ReadError;
use std::path::PathBuf;

/// Why weights could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read at all.
    #[error("cannot read weights file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The file is none of the formats kestrel reads.
    #[error(
        "{}: not a weights file kestrel can read (expected a PyTorch .pth/.pt checkpoint — zip \
         or legacy — or a .safetensors file)",
        .path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is of a known format but its contents are truncated, corrupt, unsafe or
    /// unsupported.
    #[error("{} ({}): {source}", .path.display(), .format.name())]
    Read {
        /// The file.
        path: PathBuf,
        /// Its format, as sniffed.
        format: Format,
        /// What went wrong (naming the tensor where there is one).
        source: ReadError,
    },
    /// The tensors do not fit the model: missing, unexpected or mis-shaped keys.
    #[error("{}{mismatch}", .path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Mismatch {
        /// The file, when the state dict came from one.
        path: Option<PathBuf>,
        /// Every problem found.
        mismatch: Box<Mismatch>,
    },
    /// The architecture has no torchvision weights to import.
    #[error("{arch}: {detail}")]
    UnsupportedArch {
        /// The architecture's name.
        arch: String,
        /// Why.
        detail: String,
    },
}

impl ImportError {
    /// The tensor key the error concerns, if it concerns one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ImportError::Read {
                source: ReadError::Tensor { key, .. },
                ..
            } => Some(key),
            _ => None,
        }
    }
}
