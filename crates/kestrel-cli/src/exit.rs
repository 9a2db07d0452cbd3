//! Exit codes: 0 success, 1 runtime failure, 2 bad input or usage.

use kestrel_train::TrainError;
use std::fmt;

/// An error that ends the command, with its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad input or usage: exit 2.
    BadInput(String),
    /// Runtime failure: exit 1.
    Runtime(String),
}

impl CliError {
    /// The process exit code.
    pub fn code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::BadInput(m) | CliError::Runtime(m) => f.write_str(m),
        }
    }
}

impl From<TrainError> for CliError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::BadInput(m) => CliError::BadInput(m),
            TrainError::Runtime(m) => CliError::Runtime(m),
        }
    }
}

/// Makes a file-size limit (`ulimit -f`) an error that kestrel reports (exit 1, the file named,
/// the previous version intact) instead of a signal that kills the process mid-write: with
/// `SIGXFSZ` ignored, a write past the limit fails with `EFBIG`.
pub fn file_size_limit_is_an_error() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: setting a signal's disposition to "ignore" installs no handler; called first in
    // `main`, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Prints `value` as one JSON document on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Runtime(e.to_string()))?;
    println!("{text}");
    Ok(())
}
