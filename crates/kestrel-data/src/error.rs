//! Errors of the data layer. Every variant is bad input: the message names the file, field or value
//! and says what was expected.

use std::path::PathBuf;

/// An error reading or describing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A `--data` specification that cannot be parsed.
    #[error("bad data spec `{spec}`: {reason}")]
    Spec {
        /// The specification as given.
        spec: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// An option value out of its range.
    #[error("bad value for `{field}`: {reason}")]
    Value {
        /// The option's name.
        field: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A file that cannot be read or decoded.
    #[error("cannot read image {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file or folder whose content or layout is not what its format expects.
    #[error("{path}: {reason}")]
    Format {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// Any other I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl From<kestrel_fsio::WriteError> for DataError {
    /// A failed atomic write is an I/O error on its destination.
    fn from(e: kestrel_fsio::WriteError) -> Self {
        DataError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl DataError {
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn value(field: &str, reason: impl Into<String>) -> Self {
        DataError::Value {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}
