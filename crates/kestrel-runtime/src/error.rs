//! Errors of the runtime: bad plans, bad plan files, bad inputs.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running a plan.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The plan is inconsistent (a shape, a weight size or a value reference is wrong).
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    /// A builder call got arguments that do not fit together.
    #[error("plan builder: {0}")]
    Builder(String),
    /// A plan file could not be parsed.
    #[error("plan file {path}: {message}")]
    Format {
        /// The file being read.
        path: PathBuf,
        /// What was wrong and what was expected.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("plan file {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input given to [`crate::Engine::run`] does not match the plan.
    #[error("input: {0}")]
    Input(String),
    /// Setting up the thread pool failed.
    #[error("thread pool: {0}")]
    Threads(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, RuntimeError>;
