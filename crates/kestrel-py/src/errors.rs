//! kestrel's errors as Python exceptions: bad input is `ValueError` (a missing or unreadable
//! file `OSError`), with kestrel's own message.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// A metrics error: always the caller's input.
pub fn metrics(e: kestrel_metrics::MetricsError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A training-side error: bad input is `ValueError` (`OSError` when a file is missing or cannot
/// be read), a failure while running `RuntimeError`.
pub fn train(e: kestrel_train::TrainError) -> PyErr {
    match e {
        kestrel_train::TrainError::BadInput(m) if is_file_problem(&m) => PyOSError::new_err(m),
        kestrel_train::TrainError::BadInput(m) => PyValueError::new_err(m),
        kestrel_train::TrainError::Runtime(m) => PyRuntimeError::new_err(m),
    }
}

/// A runtime (plan or engine) error: a plan that cannot be read is `ValueError`, or `OSError`
/// when the file is missing.
pub fn runtime(e: kestrel_runtime::RuntimeError) -> PyErr {
    let m = e.to_string();
    if is_file_problem(&m) {
        PyOSError::new_err(m)
    } else {
        PyValueError::new_err(m)
    }
}

/// A data error (an image that cannot be read or preprocessed).
pub fn data(e: kestrel_data::DataError) -> PyErr {
    let m = e.to_string();
    if is_file_problem(&m) {
        PyOSError::new_err(m)
    } else {
        PyValueError::new_err(m)
    }
}

/// Whether an error message is the operating system's about a file.
fn is_file_problem(message: &str) -> bool {
    [
        "No such file or directory",
        "Permission denied",
        "Is a directory",
    ]
    .iter()
    .any(|m| message.contains(m))
}
