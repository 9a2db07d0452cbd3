//! The allow-list of Python globals a state-dict pickle may name, and what calling them builds.
//!
//! Allowed: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter` (and `_rebuild_parameter_with_state`), and the typed
//! storage classes `torch.FloatStorage`, `torch.HalfStorage`, `torch.BFloat16Storage`,
//! `torch.DoubleStorage`, `torch.LongStorage`, `torch.IntStorage`, `torch.ShortStorage`,
//! `torch.CharStorage`, `torch.ByteStorage`, `torch.BoolStorage` (which only ever appear inside
//! persistent ids). Every other name is refused with [`ReadError::Forbidden`].

use super::dtype::DType;
use super::pickle::Value;
use super::read_error::{corrupt, ReadError};
use std::rc::Rc;

/// A global the reader allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter` / `_rebuild_parameter_with_state`.
    RebuildParameter,
    /// A typed storage class such as `torch.FloatStorage`.
    Storage(DType),
}

/// A storage named by a persistent id: the bytes live outside the pickle (a zip entry, or a
/// record after the pickles of a legacy file).
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// The key of the bytes (`data/<key>` in a zip; the record key in a legacy file).
    pub key: String,
    /// Element type.
    pub dtype: DType,
    /// Elements the persistent id claims (a legacy view: the view's size).
    pub numel: u64,
    /// Legacy views of a larger storage: the view's first element in the root storage.
    pub view_offset: u64,
}

/// A tensor: a strided view of a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage.
    pub storage: Rc<StorageRef>,
    /// First element within the storage (elements, not bytes).
    pub offset: u64,
    /// Shape.
    pub size: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
}

/// The allowed global `module.name`, or [`ReadError::Forbidden`] naming it.
pub fn resolve(module: &str, name: &str) -> Result<Global, ReadError> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Global::RebuildParameter
        }
        ("torch", storage) => match DType::from_torch_storage(storage) {
            Some(d) => Global::Storage(d),
            None => return Err(ReadError::Forbidden(format!("{module}.{name}"))),
        },
        _ => return Err(ReadError::Forbidden(format!("{module}.{name}"))),
    };
    Ok(g)
}

fn int(v: &Value, what: &str) -> Result<u64, ReadError> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        other => Err(corrupt(format!(
            "{what} should be a non-negative int, found {}",
            match other {
                Value::Int(i) => i.to_string(),
                v => v.kind().to_string(),
            }
        ))),
    }
}

fn ints(v: &Value, what: &str) -> Result<Vec<u64>, ReadError> {
    match v {
        Value::Tuple(t) => t.items.iter().map(|x| int(x, what)).collect(),
        other => Err(corrupt(format!(
            "{what} should be a tuple, found {}",
            other.kind()
        ))),
    }
}

/// Calls an allowed global with `args` (the `REDUCE` opcode).
pub fn call(g: Global, args: &[Value]) -> Result<Value, ReadError> {
    match g {
        Global::OrderedDict if args.is_empty() => Ok(super::pickle::empty_dict()),
        Global::OrderedDict => Err(ReadError::Unsupported(
            "OrderedDict built from arguments".into(),
        )),
        Global::RebuildTensorV2 => {
            if !(6..=7).contains(&args.len()) {
                return Err(corrupt(format!(
                    "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                    args.len()
                )));
            }
            let Value::Storage(storage) = &args[0] else {
                return Err(corrupt(format!(
                    "_rebuild_tensor_v2's first argument should be a storage, found {}",
                    args[0].kind()
                )));
            };
            let size = ints(&args[2], "tensor size")?;
            let stride = ints(&args[3], "tensor stride")?;
            if size.len() != stride.len() {
                return Err(corrupt(format!(
                    "tensor size {size:?} and stride {stride:?} differ in rank"
                )));
            }
            Ok(Value::Tensor(Rc::new(TensorRef {
                storage: storage.clone(),
                offset: int(&args[1], "tensor storage offset")?,
                size,
                stride,
            })))
        }
        Global::RebuildParameter => match args.first() {
            Some(t @ Value::Tensor(_)) if (3..=4).contains(&args.len()) => Ok(t.clone()),
            _ => Err(corrupt("_rebuild_parameter without a tensor")),
        },
        Global::Storage(d) => Err(ReadError::Unsupported(format!(
            "constructing a {d:?} storage inside the pickle"
        ))),
    }
}

/// `BUILD`: sets an object's state. Dicts (an `OrderedDict`'s `_metadata`) and tensors keep
/// theirs; the state is dropped.
pub fn build(obj: &mut Value, _state: Value) -> Result<(), ReadError> {
    match obj {
        Value::Dict(_) | Value::Tensor(_) => Ok(()),
        other => Err(corrupt(format!("pickle BUILD on a {}", other.kind()))),
    }
}

/// Decodes a torch persistent id: `('storage', StorageClass, key, location, numel)` in zip
/// files, with a sixth item in legacy files — `None` or `(view_key, offset, view_numel)`.
pub fn storage_from_pid(pid: Value) -> Result<Value, ReadError> {
    let Value::Tuple(t) = &pid else {
        return Err(corrupt(format!(
            "persistent id should be a tuple, found {}",
            pid.kind()
        )));
    };
    let items = &t.items;
    if !(5..=6).contains(&items.len()) || !matches!(&items[0], Value::Str(s) if &**s == "storage") {
        return Err(corrupt(
            "persistent id is not ('storage', type, key, location, numel)",
        ));
    }
    let Value::Global(Global::Storage(dtype)) = items[1] else {
        return Err(corrupt("persistent id without a storage class"));
    };
    let key = match &items[2] {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        v => return Err(corrupt(format!("storage key is a {}", v.kind()))),
    };
    let mut numel = int(&items[4], "storage size")?;
    let mut view_offset = 0;
    if let Some(Value::Tuple(view)) = items.get(5) {
        if view.items.len() != 3 {
            return Err(corrupt("storage view metadata is not (key, offset, size)"));
        }
        view_offset = int(&view.items[1], "storage view offset")?;
        numel = int(&view.items[2], "storage view size")?;
    } else if let Some(v) = items.get(5).filter(|v| !matches!(v, Value::None)) {
        return Err(corrupt(format!("storage view metadata is a {}", v.kind())));
    }
    Ok(Value::Storage(Rc::new(StorageRef {
        key,
        dtype,
        numel,
        view_offset,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allow_list_resolves() {
        assert_eq!(
            resolve("torch", "HalfStorage").unwrap(),
            Global::Storage(DType::F16)
        );
        assert_eq!(
            resolve("collections", "OrderedDict").unwrap(),
            Global::OrderedDict
        );
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_device_tensor_from_numpy"),
            ("subprocess", "Popen"),
        ] {
            assert_eq!(
                resolve(m, n).unwrap_err(),
                ReadError::Forbidden(format!("{m}.{n}"))
            );
        }
    }
}
