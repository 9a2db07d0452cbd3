//! Turning a pickled tensor (a strided view of a storage) into a [`TensorEntry`], with every
//! index checked against the storage before anything is allocated.

use super::budget::Budget;
use super::pickle::Value;
use super::read_error::{corrupt, ReadError};
use super::state_dict::{StateDict, TensorEntry, Values};
use super::torch_globals::{StorageRef, TensorRef};

/// Copies the elements of `t` out of `storage` (the bytes of its whole root storage), within
/// what `budget` allows.
pub fn materialize(
    key: &str,
    t: &TensorRef,
    storage: &[u8],
    budget: &mut Budget,
) -> Result<TensorEntry, ReadError> {
    let err = |detail: String| ReadError::Tensor {
        key: key.to_string(),
        detail,
    };
    let dtype = t.storage.dtype;
    let avail = (storage.len() / dtype.size()) as u64;
    let shape: Vec<usize> = t
        .size
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("dimension {d} too large"))))
        .collect::<Result<_, _>>()?;
    let numel = t
        .size
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("shape {:?} overflows", t.size)))?;
    let base = t
        .storage
        .view_offset
        .checked_add(t.offset)
        .ok_or_else(|| err("storage offset overflows".into()))?;
    if numel == 0 {
        let values = if dtype.is_float() {
            Values::F32(Vec::new())
        } else {
            Values::I64(Vec::new())
        };
        return Ok(TensorEntry {
            shape,
            dtype,
            values,
        });
    }
    let mut last = base;
    for (&d, &s) in t.size.iter().zip(&t.stride) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|x| last.checked_add(x))
            .ok_or_else(|| err("strides overflow".into()))?;
    }
    if last >= avail {
        return Err(err(format!(
            "shape {:?} with strides {:?} at offset {base} reaches element {last}, but its \
             storage `{}` holds {avail}",
            t.size, t.stride, t.storage.key
        )));
    }
    if numel > avail {
        return Err(err(format!(
            "{numel} elements from a storage of {avail} (expanded, overlapping views are not \
             supported)"
        )));
    }
    budget.take(key, numel)?;
    let indices = StridedIndices::new(base as usize, &shape, &t.stride);
    let values = if dtype.is_float() {
        Values::F32(dtype.gather_f32(storage, indices))
    } else {
        Values::I64(dtype.gather_i64(storage, indices))
    };
    Ok(TensorEntry {
        shape,
        dtype,
        values,
    })
}

/// Row-major element indices of a strided view (all checked to be in range by the caller).
struct StridedIndices<'a> {
    shape: &'a [usize],
    stride: Vec<usize>,
    counter: Vec<usize>,
    next: Option<usize>,
}

impl<'a> StridedIndices<'a> {
    fn new(base: usize, shape: &'a [usize], stride: &[u64]) -> Self {
        StridedIndices {
            shape,
            stride: stride.iter().map(|&s| s as usize).collect(),
            counter: vec![0; shape.len()],
            next: Some(base),
        }
    }
}

impl Iterator for StridedIndices<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let cur = self.next?;
        // Advance the odometer from the last dimension.
        let mut at = cur;
        let mut dim = self.shape.len();
        self.next = loop {
            if dim == 0 {
                break None;
            }
            dim -= 1;
            if self.counter[dim] + 1 < self.shape[dim] {
                self.counter[dim] += 1;
                break Some(at + self.stride[dim]);
            }
            at -= self.counter[dim] * self.stride[dim];
            self.counter[dim] = 0;
        };
        Some(cur)
    }
}

/// The dict of tensors in an unpickled object: the object itself, or — for a training
/// checkpoint — its `state_dict` / `model` entry when the top level holds no tensors.
fn tensor_dict(root: &Value) -> Result<&Value, ReadError> {
    let Value::Dict(map) = root else {
        return Err(ReadError::Unsupported(format!(
            "the file holds a {}, not a state dict",
            root.kind()
        )));
    };
    let has_tensors = map.items.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
    if !has_tensors {
        for (k, v) in &map.items {
            if matches!(k, Value::Str(s) if &**s == "state_dict" || &**s == "model")
                && matches!(v, Value::Dict(_))
            {
                return Ok(v);
            }
        }
    }
    Ok(root)
}

/// Builds the state dict of an unpickled torch object; `bytes_of` gives each storage's bytes
/// (all of its root storage); `budget` bounds what the tensors may decode to.
pub fn state_dict_from_pickle<'s>(
    root: &Value,
    bytes_of: &mut dyn FnMut(&StorageRef) -> Result<&'s [u8], ReadError>,
    budget: &mut Budget,
) -> Result<StateDict, ReadError> {
    let Value::Dict(map) = tensor_dict(root)? else {
        unreachable!("tensor_dict returns dicts")
    };
    let mut sd = StateDict::new();
    for (k, v) in &map.items {
        let Value::Str(key) = k else {
            return Err(corrupt(format!(
                "state dict key is a {}, not a str",
                k.kind()
            )));
        };
        let Value::Tensor(t) = v else {
            return Err(ReadError::Tensor {
                key: key.to_string(),
                detail: format!("is a {}, not a tensor", v.kind()),
            });
        };
        let bytes = bytes_of(&t.storage)?;
        sd.insert(key.to_string(), materialize(key, t, bytes, budget)?)?;
    }
    Ok(sd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::dtype::DType;
    use std::rc::Rc;

    fn view(offset: u64, size: &[u64], stride: &[u64]) -> TensorRef {
        TensorRef {
            storage: Rc::new(StorageRef {
                key: "0".into(),
                dtype: DType::F32,
                numel: 12,
                view_offset: 0,
            }),
            offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn bytes() -> Vec<u8> {
        (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    /// Materialises `t` out of [`bytes`] as tensor `w`, with a generous budget.
    fn read(t: &TensorRef) -> Result<TensorEntry, ReadError> {
        materialize("w", t, &bytes(), &mut Budget::for_file(1000))
    }

    #[test]
    fn strided_views_match_numpy() {
        // np.arange(12.)[1:].reshape(...) equivalents: as_strided(offset 1, (2, 3), (4, 2))
        // = [[1, 3, 5], [5, 7, 9]]; a transposed (3, 4) view: arange(12).reshape(3, 4).T.
        let t = read(&view(1, &[2, 3], &[4, 2])).unwrap();
        assert_eq!(t.as_f32().unwrap(), [1.0, 3.0, 5.0, 5.0, 7.0, 9.0]);
        let t = read(&view(0, &[4, 3], &[1, 4])).unwrap();
        assert_eq!(
            t.as_f32().unwrap(),
            [0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
        );
        // A 0-d tensor and an empty one.
        let t = read(&view(7, &[], &[])).unwrap();
        assert_eq!((t.shape.len(), t.as_f32().unwrap()), (0, &[7.0f32][..]));
        let t = read(&view(99, &[0, 5], &[5, 1])).unwrap();
        assert!(t.values.is_empty());
    }

    #[test]
    fn out_of_range_views_are_errors() {
        // Views of one storage, each within it, are refused once they add up past the budget.
        let mut budget = Budget::for_file(30);
        let whole = view(0, &[12], &[1]);
        materialize("a", &whole, &bytes(), &mut budget).unwrap();
        materialize("b", &whole, &bytes(), &mut budget).unwrap();
        let e = materialize("c", &whole, &bytes(), &mut budget).unwrap_err();
        assert!(e.to_string().contains("limit of 30 elements"), "{e}");
        for (o, size, stride) in [
            (1u64, vec![12u64], vec![1u64]),
            (0, vec![3, 5], vec![5, 1]),
            (u64::MAX, vec![1], vec![1]),
            (0, vec![u64::MAX, 2], vec![1, 1]),
            (0, vec![2, 1 << 62], vec![1 << 62, 4]),
            (0, vec![100], vec![0]),
        ] {
            let e = read(&view(o, &size, &stride)).unwrap_err();
            assert!(
                matches!(&e, ReadError::Tensor { key, .. } if key == "w"),
                "{e}"
            );
        }
    }
}
