//! [`ExportError`]: why a model could not be exported.

use std::path::PathBuf;

/// Everything that can stop an export; messages name the layer or file involved.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model uses a setting the export formats cannot express.
    #[error("layer `{layer}`: {message}")]
    Unsupported {
        /// Module path of the layer, e.g. `blocks.3.depthwise`.
        layer: String,
        /// What is unsupported and what would be.
        message: String,
    },
    /// A weight tensor holds NaN or an infinity.
    #[error("layer `{layer}`: {what} contains a non-finite value")]
    NonFinite {
        /// Module path of the layer.
        layer: String,
        /// Which tensor (`weight`, `bias`, `batch norm`).
        what: String,
    },
    /// A tensor could not be read back from the model.
    #[error("layer `{layer}`: reading {what}: {message}")]
    Read {
        /// Module path of the layer.
        layer: String,
        /// Which tensor.
        what: String,
        /// The underlying error.
        message: String,
    },
    /// The input size is unusable (zero, or too small for some layer).
    #[error("resolution {resolution}: {message}")]
    Resolution {
        /// The requested input height and width.
        resolution: usize,
        /// What went wrong.
        message: String,
    },
    /// The runtime rejected the plan built from the model.
    #[error("building the runtime plan: {0}")]
    Plan(#[from] kestrel_runtime::RuntimeError),
    /// Writing the output file failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The underlying error.
        message: String,
    },
}
