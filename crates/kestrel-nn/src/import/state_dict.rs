//! A framework-neutral state dict: ordered tensor names to shapes and values.

use super::dtype::DType;
use super::read_error::ReadError;
use std::collections::HashMap;

/// The values of one tensor: floats (of any stored precision) as f32, integers as i64.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// f32 / f16 / bf16 / f64 storage, converted to f32.
    F32(Vec<f32>),
    /// Integer or bool storage (e.g. BatchNorm's `num_batches_tracked`).
    I64(Vec<i64>),
}

impl Values {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One tensor of a state dict.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEntry {
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// The element type in the file.
    pub dtype: DType,
    /// The values, row-major.
    pub values: Values,
}

impl TensorEntry {
    /// A float tensor; `values.len()` must equal the product of `shape`.
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        TensorEntry {
            shape,
            dtype: DType::F32,
            values: Values::F32(values),
        }
    }

    /// The float values, or `None` for an integer tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.values {
            Values::F32(v) => Some(v),
            Values::I64(_) => None,
        }
    }
}

/// Named tensors in file order, as PyTorch's `state_dict()`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<(String, TensorEntry)>,
    index: HashMap<String, usize>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tensor; a repeated name is an error naming it.
    pub fn insert(&mut self, name: String, tensor: TensorEntry) -> Result<(), ReadError> {
        if self.index.contains_key(&name) {
            return Err(ReadError::Tensor {
                key: name,
                detail: "appears twice".into(),
            });
        }
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push((name, tensor));
        Ok(())
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names and tensors, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TensorEntry)> {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_refuses_duplicates() {
        let mut sd = StateDict::new();
        sd.insert("b".into(), TensorEntry::f32(vec![1], vec![1.0]))
            .unwrap();
        sd.insert("a".into(), TensorEntry::f32(vec![2], vec![2.0, 3.0]))
            .unwrap();
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(sd.get("a").unwrap().as_f32().unwrap(), [2.0, 3.0]);
        let e = sd
            .insert("b".into(), TensorEntry::f32(vec![], vec![0.0]))
            .unwrap_err();
        assert!(e.to_string().contains("`b`"), "{e}");
    }
}
