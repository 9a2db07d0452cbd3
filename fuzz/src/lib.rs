//! kestrel-nn's byte-level weight readers, compiled without Burn (they do not use it) so the
//! fuzz targets build in seconds. The files are kestrel-nn's own, included by path.

#![allow(dead_code)]

/// The Burn-free part of `kestrel_nn::import`.
#[path = "../../crates/kestrel-nn/src/import"]
pub mod import {
    pub mod budget;
    pub mod dtype;
    pub mod format;
    pub mod pickle;
    pub mod read_error;
    pub mod safetensors;
    pub mod state_dict;
    pub mod tensor_view;
    pub mod torch_globals;
    pub mod torch_legacy;
    pub mod torch_zip;
    pub mod zip_archive;
}
