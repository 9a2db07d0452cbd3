//! Errors of training and evaluation, split by who must act: bad input (exit 2) or a runtime
//! failure (exit 1).

/// An error of a training or evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The user's input is wrong: a flag, a file, a run folder. The message names it.
    #[error("{0}")]
    BadInput(String),
    /// The run failed on its own: a non-finite loss, a full disk.
    #[error("{0}")]
    Runtime(String),
}

impl From<kestrel_data::DataError> for TrainError {
    fn from(e: kestrel_data::DataError) -> Self {
        match e {
            kestrel_data::DataError::Io { .. } => TrainError::Runtime(e.to_string()),
            other => TrainError::BadInput(other.to_string()),
        }
    }
}

impl From<kestrel_metrics::MetricsError> for TrainError {
    fn from(e: kestrel_metrics::MetricsError) -> Self {
        TrainError::Runtime(format!("metrics: {e}"))
    }
}

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
