//! Reading and making Flex `f32` tensors as plain slices and vectors.

use burn::backend::flex::FlexTensor;
use burn::backend::TensorMetadata;
use burn::tensor::TensorData;
use std::borrow::Cow;

/// The elements of `t` in row-major order: borrowed when the tensor is contiguous, copied
/// otherwise (a permuted or sliced view).
pub(crate) fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous f32")
                .to_vec(),
        ),
    }
}

/// A contiguous Flex tensor of shape `shape` holding `v`.
pub(crate) fn tensor(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

/// The shape of `t` as a vector.
pub(crate) fn dims(t: &FlexTensor) -> Vec<usize> {
    t.shape().to_vec()
}

/// The shape of a 4-D `t` (the convolution ops' inputs and weights, checked by their callers).
pub(crate) fn dims4(t: &FlexTensor) -> [usize; 4] {
    dims(t).try_into().expect("a 4-D tensor")
}

/// A vector of `len` floats written by `fill`, without zeroing them first.
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub(crate) unsafe fn filled(
    len: usize,
    fill: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `fill` initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Runs `f` on the elements of `t` for writing in place and returns the tensor they make: `t`'s
/// own buffer when `t` is contiguous from offset 0 and no other tensor shares it (the usual case
/// for an op's fresh output or a consumed gradient), else a contiguous copy.
pub(crate) fn modify<R>(mut t: FlexTensor, f: impl FnOnce(&mut [f32]) -> R) -> (FlexTensor, R) {
    if let Some(v) = unique_values(&mut t) {
        let r = f(v);
        return (t, r);
    }
    let mut v = values(&t).into_owned();
    let r = f(&mut v);
    (tensor(v, &dims(&t)), r)
}

/// The elements of `t` for writing in place: `Some` when `t` is contiguous `f32` data from
/// offset 0 that no other tensor shares (so a kernel may overwrite its input), else `None`.
fn unique_values(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n: usize = t.shape().iter().product();
    if !t.is_contiguous() || t.as_slice::<f32>().map(<[f32]>::len) != Some(n) {
        return None;
    }
    let s = t.try_storage_mut::<f32>()?;
    (s.len() == n).then_some(s)
}
