//! PyTorch's zip checkpoint format (torch ≥ 1.6): `<dir>/data.pkl` holds the pickled object,
//! whose persistent ids name storages stored as `<dir>/data/<key>` (raw little-endian bytes).
//! The folder name `<dir>` is whatever the file was called when saved.

use super::budget::Budget;
use super::pickle::unpickle;
use super::read_error::{corrupt, ReadError};
use super::state_dict::StateDict;
use super::tensor_view::state_dict_from_pickle;
use super::torch_globals::{storage_from_pid, StorageRef};
use super::zip_archive::ZipArchive;

/// Reads a zip `.pth` held in memory.
pub fn read_torch_zip(data: &[u8]) -> Result<StateDict, ReadError> {
    let zip = ZipArchive::new(data)?;
    let pkl = zip
        .names()
        .iter()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .or_else(|| zip.names().iter().find(|n| n.as_str() == "data.pkl"))
        .ok_or_else(|| corrupt("zip archive without a data.pkl: not a PyTorch checkpoint"))?
        .clone();
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(order) = zip.get(&format!("{prefix}byteorder"))? {
        if order != b"little" {
            return Err(ReadError::Unsupported(format!(
                "byte order `{}` (only little-endian checkpoints are read)",
                String::from_utf8_lossy(order)
            )));
        }
    }
    let pickle = zip.get(&pkl)?.expect("listed above");
    let (root, _) = unpickle(pickle, &mut storage_from_pid)?;
    let mut bytes_of = |s: &StorageRef| -> Result<&[u8], ReadError> {
        let name = format!("{prefix}data/{}", s.key);
        let bytes = zip
            .get(&name)?
            .ok_or_else(|| corrupt(format!("storage `{name}` is missing from the archive")))?;
        if s.view_offset != 0 {
            return Err(corrupt("zip checkpoint with a legacy storage view"));
        }
        let want = s.numel.checked_mul(s.dtype.size() as u64);
        if want != Some(bytes.len() as u64) {
            return Err(corrupt(format!(
                "storage `{name}` has {} bytes, but the pickle says {} elements of {:?}",
                bytes.len(),
                s.numel,
                s.dtype
            )));
        }
        Ok(bytes)
    };
    state_dict_from_pickle(&root, &mut bytes_of, &mut Budget::for_file(data.len()))
}
