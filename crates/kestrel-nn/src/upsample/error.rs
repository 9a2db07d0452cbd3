//! The one error type of the upsampling family: a configuration or an input shape that cannot
//! work, named with the field and what was expected.

/// Why an upsampler cannot be built, or cannot take an input of some shape.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UpsampleError {
    /// A configuration field has a value the upsampler cannot use.
    #[error("upsampler `{upsampler}`: field `{field}` is {got}, expected {expected}")]
    BadField {
        /// The upsampler's name (`nearest`, `carafe`, …).
        upsampler: &'static str,
        /// The configuration field.
        field: &'static str,
        /// The value it has, as text.
        got: String,
        /// What it should be.
        expected: String,
    },
    /// An input tensor's shape does not fit the upsampler.
    #[error("upsampler `{upsampler}`: input of shape {got:?} does not fit, expected {expected}")]
    BadInput {
        /// The upsampler's name.
        upsampler: &'static str,
        /// The input's shape (N, C, H, W).
        got: [usize; 4],
        /// What it should be.
        expected: String,
    },
    /// An unknown upsampler name (see [`crate::upsample::UpsamplerKind`]).
    #[error("unknown upsampler `{0}`, expected one of nearest, bilinear, bicubic, transposed, pixelshuffle, carafe, meta")]
    UnknownKind(String),
}

impl UpsampleError {
    /// Shorthand for [`UpsampleError::BadField`].
    pub(crate) fn field(
        upsampler: &'static str,
        field: &'static str,
        got: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        UpsampleError::BadField {
            upsampler,
            field,
            got: got.to_string(),
            expected: expected.into(),
        }
    }
}
