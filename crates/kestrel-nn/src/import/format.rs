//! Recognising a weights file's format from its first bytes, and reading any of them.

use super::read_error::ReadError;
use super::safetensors::{looks_like_safetensors, read_safetensors};
use super::state_dict::StateDict;
use super::torch_legacy::{has_legacy_magic, read_torch_legacy};
use super::torch_zip::read_torch_zip;

/// The weight file formats kestrel reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PyTorch ≥ 1.6 `torch.save` (a zip archive).
    TorchZip,
    /// PyTorch's legacy `torch.save` (pickles followed by raw storages).
    TorchLegacy,
    /// safetensors.
    Safetensors,
}

impl Format {
    /// A human name of the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::TorchZip => "PyTorch zip checkpoint",
            Format::TorchLegacy => "legacy PyTorch checkpoint",
            Format::Safetensors => "safetensors file",
        }
    }

    /// The format of `data`, from its first bytes: `PK` zip signatures, a pickle `PROTO`
    /// opcode, or a safetensors header length followed by `{`.
    pub fn sniff(data: &[u8]) -> Option<Format> {
        if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
            Some(Format::TorchZip)
        } else if has_legacy_magic(data) || data.first() == Some(&0x80) {
            Some(Format::TorchLegacy)
        } else if looks_like_safetensors(data) {
            Some(Format::Safetensors)
        } else {
            None
        }
    }

    /// Reads `data` as this format.
    pub fn read(self, data: &[u8]) -> Result<StateDict, ReadError> {
        match self {
            Format::TorchZip => read_torch_zip(data),
            Format::TorchLegacy => read_torch_legacy(data),
            Format::Safetensors => read_safetensors(data),
        }
    }
}
