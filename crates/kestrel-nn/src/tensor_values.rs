//! A tensor's values as a plain vector, in row-major (logical) order whatever its layout: what
//! tests, reports and tools read back from Burn.

use burn::tensor::Tensor;

/// The values of `t` as `f32` (converted from the tensor's element type).
pub fn to_f32_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("converted to f32")
}

/// The values of `t` as `f64`, through [`to_f32_vec`].
pub fn to_f64_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    to_f32_vec(t).into_iter().map(f64::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn values_come_in_logical_order() {
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
            &Device::flex(),
        );
        assert_eq!(to_f32_vec(t.clone()), [1.0, 2.0, 3.0, 4.0]);
        // A transposed view reads as its own rows.
        assert_eq!(to_f64_vec(t.transpose()), [1.0, 3.0, 2.0, 4.0]);
    }
}
