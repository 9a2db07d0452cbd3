//! The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
//! name to `{dtype, shape, data_offsets: [begin, end]}` (offsets into the data after the
//! header; `__metadata__` holds free-form strings), then the raw little-endian data.

use super::budget::Budget;
use super::dtype::DType;
use super::read_error::{corrupt, ReadError};
use super::state_dict::{StateDict, TensorEntry, Values};
use serde_json::Value as Json;

/// Whether `data` looks like a safetensors file (a plausible header length, then `{`).
pub fn looks_like_safetensors(data: &[u8]) -> bool {
    data.len() >= 10
        && u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) <= (data.len() - 8) as u64
        && data[8] == b'{'
}

fn tensor_err(key: &str, detail: String) -> ReadError {
    ReadError::Tensor {
        key: key.to_string(),
        detail,
    }
}

/// Reads a safetensors file held in memory. Tensors come in data order.
pub fn read_safetensors(data: &[u8]) -> Result<StateDict, ReadError> {
    let head = data
        .get(..8)
        .ok_or_else(|| corrupt("safetensors file shorter than its 8-byte header length"))?;
    let n = u64::from_le_bytes(head.try_into().expect("8 bytes"));
    let header = usize::try_from(n)
        .ok()
        .and_then(|n| data.get(8..8usize.checked_add(n)?))
        .ok_or_else(|| {
            corrupt(format!(
                "safetensors header of {n} bytes, but the file has {} (cut short?)",
                data.len()
            ))
        })?;
    let body = &data[8 + header.len()..];
    let json: Json = serde_json::from_slice(header)
        .map_err(|e| corrupt(format!("safetensors header is not valid JSON: {e}")))?;
    let Json::Object(map) = json else {
        return Err(corrupt("safetensors header is not a JSON object"));
    };
    let mut budget = Budget::for_file(data.len());
    let mut tensors = Vec::new();
    for (key, spec) in &map {
        if key == "__metadata__" {
            continue;
        }
        let dtype_name = spec["dtype"]
            .as_str()
            .ok_or_else(|| tensor_err(key, "header entry without a dtype".into()))?;
        let dtype = DType::from_safetensors(dtype_name)
            .ok_or_else(|| tensor_err(key, format!("unsupported dtype {dtype_name}")))?;
        let dims = |v: &Json, what: &str| -> Result<Vec<u64>, ReadError> {
            v.as_array()
                .ok_or_else(|| tensor_err(key, format!("{what} is not an array")))?
                .iter()
                .map(|d| {
                    d.as_u64()
                        .ok_or_else(|| tensor_err(key, format!("{what} holds {d}")))
                })
                .collect()
        };
        let shape = dims(&spec["shape"], "shape")?;
        let offsets = dims(&spec["data_offsets"], "data_offsets")?;
        let [begin, end] = offsets[..] else {
            return Err(tensor_err(key, "data_offsets is not [begin, end]".into()));
        };
        if begin > end || end > body.len() as u64 {
            return Err(tensor_err(
                key,
                format!(
                    "data [{begin}, {end}) is outside the {} data bytes (cut short?)",
                    body.len()
                ),
            ));
        }
        let bytes = &body[begin as usize..end as usize];
        let numel = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| tensor_err(key, format!("shape {shape:?} overflows")))?;
        dtype
            .check_len(bytes, numel, "data")
            .map_err(|e| tensor_err(key, e.to_string()))?;
        budget.take(key, numel as u64)?;
        let values = if dtype.is_float() {
            Values::F32(dtype.gather_f32(bytes, 0..numel))
        } else {
            Values::I64(dtype.gather_i64(bytes, 0..numel))
        };
        let shape = shape.iter().map(|&d| d as usize).collect();
        tensors.push((
            begin,
            key.clone(),
            TensorEntry {
                shape,
                dtype,
                values,
            },
        ));
    }
    tensors.sort_by_key(|(begin, _, _)| *begin);
    let mut sd = StateDict::new();
    for (_, key, t) in tensors {
        sd.insert(key, t)?;
    }
    Ok(sd)
}
