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
