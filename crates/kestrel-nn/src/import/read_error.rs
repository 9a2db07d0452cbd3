//! What can go wrong while decoding weights from bytes, before a file name is attached
//! (see [`super::ImportError`], which adds it).

/// A decoding failure of a weights file's bytes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// The bytes end early or contradict themselves (bad lengths, offsets, opcodes).
    #[error("truncated or corrupt: {0}")]
    Corrupt(String),
    /// A pickle names a global outside the weights-only allow-list (e.g. `os.system`).
    #[error("refusing to load: the pickle references `{0}`, which is not on the allow-list of a weights-only load (it could run arbitrary code)")]
    Forbidden(String),
    /// Well-formed, but something kestrel does not read (a dtype, a tensor subclass, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// One tensor's description or data is wrong.
    #[error("tensor `{key}`: {detail}")]
    Tensor {
        /// The state-dict key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// Shorthand for a [`ReadError::Corrupt`].
pub(crate) fn corrupt(what: impl Into<String>) -> ReadError {
    ReadError::Corrupt(what.into())
}
