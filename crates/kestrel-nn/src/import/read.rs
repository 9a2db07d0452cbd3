//! Reading a weights file from disk, whatever its format.

use super::error::ImportError;
use super::format::Format;
use super::state_dict::StateDict;
use std::path::Path;

/// Reads the state dict in `path`: a PyTorch zip or legacy `.pth`/`.pt`, or a `.safetensors`
/// file, recognised by content (not by extension). Errors name the file, and the tensor where
/// there is one.
pub fn read_state_dict(path: &Path) -> Result<StateDict, ImportError> {
    let data = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = Format::sniff(&data).ok_or_else(|| ImportError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    format.read(&data).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        format,
        source,
    })
}
