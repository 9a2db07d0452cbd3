//! The error type shared by every metric.

use std::path::PathBuf;

/// Everything that can go wrong while computing, reading or plotting metrics.
///
/// Invalid input (empty arrays, mismatched lengths, non-finite scores, labels
/// outside the class range, bad parameters) is always an error. A metric that
/// scikit-learn leaves undefined for *valid* input (ROC-AUC with a single class,
/// average precision without positives) is reported as
/// [`MetricsError::Undefined`]; [`MetricsError::is_undefined`] lets a caller
/// turn that case into a `null` plus a warning, as the report layer does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// An input array has no elements.
    #[error("{what} is empty: at least one sample is needed")]
    Empty {
        /// Which input was empty.
        what: &'static str,
    },
    /// Two inputs that must line up have different lengths.
    #[error("length mismatch: {what} has {got} entries, expected {expected}")]
    LengthMismatch {
        /// Which input has the wrong length.
        what: &'static str,
        /// The length it should have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// A score or probability is NaN or infinite.
    #[error("{what}[{index}] is {value}, expected a finite number")]
    NonFinite {
        /// Which input holds the value.
        what: &'static str,
        /// Position of the value in that input.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A sample weight is negative, NaN or infinite.
    #[error("sample_weight[{index}] is {value}, expected a finite weight >= 0")]
    InvalidWeight {
        /// Position of the weight.
        index: usize,
        /// The offending weight.
        value: f64,
    },
    /// A class label is negative or not below the number of classes.
    #[error("{what}[{index}] is {label}, expected a class index in 0..{n_classes}")]
    LabelOutOfRange {
        /// Which input holds the label.
        what: &'static str,
        /// Position of the label.
        index: usize,
        /// The offending label.
        label: i128,
        /// Number of classes.
        n_classes: usize,
    },
    /// A probability lies outside `[0, 1]`.
    #[error("{what}[{index}] is {value}, expected a probability in [0, 1]")]
    NotAProbability {
        /// Which input holds the value.
        what: &'static str,
        /// Flat position of the value.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A row of class probabilities does not sum to one (scikit-learn's
    /// `np.allclose` tolerance: `|sum - 1| <= 1e-8 + 1e-5`).
    #[error(
        "probability row {row} sums to {sum}, expected 1 (one-vs-rest ROC-AUC needs probabilities)"
    )]
    RowSumNotOne {
        /// Row (sample) index.
        row: usize,
        /// Its sum.
        sum: f64,
    },
    /// A parameter is outside its domain.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value, formatted.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The metric has no value for this (valid) input, e.g. ROC-AUC when only
    /// one class is present. scikit-learn returns NaN or an arbitrary value
    /// with a warning here.
    #[error("{metric} is undefined: {reason}")]
    Undefined {
        /// Metric name.
        metric: &'static str,
        /// Why it is undefined.
        reason: String,
    },
    /// Two partial states cannot be merged (different class counts or settings).
    #[error("cannot merge accumulators: {reason}")]
    IncompatibleMerge {
        /// What differs.
        reason: String,
    },
    /// A CSV input file is malformed.
    #[error("{}: line {line}, column {column}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number (1 is the header).
        line: u64,
        /// Column name (or `-` when the problem is the whole line).
        column: String,
        /// What was found and what was expected.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing or encoding a plot failed.
    #[error("plot {}: {message}", path.display())]
    Plot {
        /// The image being written.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl From<kestrel_fsio::WriteError> for MetricsError {
    /// A failed atomic write is an I/O error on its destination.
    fn from(e: kestrel_fsio::WriteError) -> Self {
        MetricsError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl MetricsError {
    /// True for [`MetricsError::Undefined`]: the input was valid but the
    /// metric has no value for it.
    pub fn is_undefined(&self) -> bool {
        matches!(self, MetricsError::Undefined { .. })
    }

    /// [`MetricsError::Undefined`] for `metric`, with the reason it has no value.
    pub(crate) fn undefined(metric: &'static str, reason: impl Into<String>) -> Self {
        MetricsError::Undefined {
            metric,
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let e = MetricsError::LengthMismatch {
            what: "scores",
            expected: 3,
            got: 2,
        };
        assert_eq!(
            e.to_string(),
            "length mismatch: scores has 2 entries, expected 3"
        );
        let e = MetricsError::Csv {
            path: "a/b.csv".into(),
            line: 7,
            column: "score".into(),
            message: "expected a number, found \"x\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "a/b.csv: line 7, column score: expected a number, found \"x\""
        );
        assert!(MetricsError::undefined("roc_auc", "one class").is_undefined());
        assert!(!e.is_undefined());
    }
}
