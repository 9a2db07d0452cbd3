//! PyTorch's legacy checkpoint format (before 1.6, or `_use_new_zipfile_serialization=False`),
//! which torchvision still uses for some published weights. Back to back:
//!
//! 1. a pickle of the magic number `0x1950a86a20f9469cfc6c`;
//! 2. a pickle of the protocol version, 1001;
//! 3. a pickle of `sys_info` (`little_endian`, type sizes);
//! 4. the pickled object; its persistent ids
//!    `('storage', StorageClass, key, location, numel, view_metadata)` name storages;
//! 5. a pickle of the list of storage keys;
//! 6. per key, in that order: the element count as 8 bytes little-endian, then the raw bytes.

use super::budget::Budget;
use super::dtype::DType;
use super::pickle::{unpickle, Value};
use super::read_error::{corrupt, ReadError};
use super::state_dict::StateDict;
use super::tensor_view::state_dict_from_pickle;
use super::torch_globals::{storage_from_pid, StorageRef};
use std::collections::HashMap;

/// The magic number, as the little-endian bytes of its `LONG1` encoding.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The only legacy protocol version.
const PROTOCOL: i64 = 1001;

/// Whether `data` starts with the pickled legacy magic number.
pub fn has_legacy_magic(data: &[u8]) -> bool {
    data.len() > 14 && data[0] == 0x80 && data[2] == 0x8a && data[3] == 10 && data[4..14] == MAGIC
}

fn no_pid(_: Value) -> Result<Value, ReadError> {
    Err(corrupt("persistent id in a legacy header pickle"))
}

/// Reads a legacy `.pth` held in memory.
pub fn read_torch_legacy(data: &[u8]) -> Result<StateDict, ReadError> {
    let mut at = 0;
    let mut next = |pid: &mut dyn FnMut(Value) -> Result<Value, ReadError>| {
        let (v, n) = unpickle(&data[at..], pid)?;
        at += n;
        Ok::<_, ReadError>(v)
    };
    let magic = next(&mut no_pid)?;
    if !matches!(&magic, Value::BigInt(b) if **b == MAGIC) {
        return Err(corrupt(
            "the first pickle is not PyTorch's magic number: not a legacy .pth",
        ));
    }
    match next(&mut no_pid)? {
        Value::Int(PROTOCOL) => {}
        v => {
            return Err(ReadError::Unsupported(format!(
                "legacy protocol version {v:?} (expected {PROTOCOL})"
            )))
        }
    }
    if let Value::Dict(info) = next(&mut no_pid)? {
        for (k, v) in &info.items {
            if matches!(k, Value::Str(s) if &**s == "little_endian")
                && matches!(v, Value::Bool(false))
            {
                return Err(ReadError::Unsupported(
                    "a big-endian legacy checkpoint".into(),
                ));
            }
        }
    } else {
        return Err(corrupt("legacy sys_info is not a dict"));
    }
    // The object; record the dtype each storage key is used with.
    let mut dtypes: HashMap<String, DType> = HashMap::new();
    let mut conflict = None;
    let mut record = |pid: Value| {
        let v = storage_from_pid(pid)?;
        if let Value::Storage(s) = &v {
            if let Some(&d) = dtypes.get(&s.key) {
                if d != s.dtype {
                    conflict = Some(s.key.clone());
                }
            }
            dtypes.insert(s.key.clone(), s.dtype);
        }
        Ok(v)
    };
    let root = next(&mut record)?;
    if let Some(key) = conflict {
        return Err(corrupt(format!(
            "storage `{key}` is used with two element types"
        )));
    }
    let Value::List(keys) = next(&mut no_pid)? else {
        return Err(corrupt("legacy storage key list is not a list"));
    };
    // The storages' raw records.
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for k in &keys.items {
        let Value::Str(key) = k else {
            return Err(corrupt("legacy storage key is not a str"));
        };
        let dtype = *dtypes
            .get(&**key)
            .ok_or_else(|| corrupt(format!("storage `{key}` is listed but no tensor uses it")))?;
        let head = data
            .get(at..at + 8)
            .ok_or_else(|| corrupt(format!("file ends before storage `{key}`")))?;
        let count = u64::from_le_bytes(head.try_into().expect("8 bytes"));
        at += 8;
        let len = count
            .checked_mul(dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= data.len() - at)
            .ok_or_else(|| {
                corrupt(format!(
                    "storage `{key}` claims {count} elements but the file ends first (cut short?)"
                ))
            })?;
        storages.insert(key.to_string(), &data[at..at + len]);
        at += len;
    }
    let mut bytes_of = |s: &StorageRef| -> Result<&[u8], ReadError> {
        storages
            .get(&s.key)
            .copied()
            .ok_or_else(|| corrupt(format!("storage `{}` has no data record", s.key)))
    };
    state_dict_from_pickle(&root, &mut bytes_of, &mut Budget::for_file(data.len()))
}
