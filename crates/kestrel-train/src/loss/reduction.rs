//! How a loss combines its per-element values: PyTorch's `reduction` argument.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How per-element losses are combined (PyTorch's `reduction='mean' | 'sum' | 'none'`).
///
/// Every kestrel loss returns a `Tensor<1>`: of shape `[1]` for [`Reduction::Mean`] and
/// [`Reduction::Sum`], and for [`Reduction::None`] the per-element losses flattened in row-major
/// order of the target's shape (`(N)`, or `(N, H, W)` for a segmentation loss); reshape it to
/// recover that shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The mean over the elements (a loss may define the divisor, e.g. Σ class weights).
    #[default]
    Mean,
    /// The sum over the elements.
    Sum,
    /// No reduction: one value per element.
    None,
}

impl Reduction {
    /// Reduces `per_element` with a plain mean or sum (the divisor of the mean is the element count).
    pub fn apply(self, per_element: Tensor<1>) -> Tensor<1> {
        match self {
            Reduction::Mean => per_element.mean(),
            Reduction::Sum => per_element.sum(),
            Reduction::None => per_element,
        }
    }

    /// Reduces `per_element` with a mean whose divisor is `divisor` (Σ weights, or the count of
    /// non-ignored elements). When every element is ignored both are 0 and the mean is
    /// 0 / 0 = NaN, as in PyTorch.
    pub fn apply_with_divisor(self, per_element: Tensor<1>, divisor: f64) -> Tensor<1> {
        match self {
            Reduction::Mean => per_element.sum().div_scalar(divisor),
            Reduction::Sum => per_element.sum(),
            Reduction::None => per_element,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn vals(t: Tensor<1>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn mean_sum_none_follow_their_definitions() {
        let d = Device::flex();
        let x = || Tensor::<1>::from_floats([1.0, 2.0, 6.0], &d);
        assert_eq!(vals(Reduction::Mean.apply(x())), [3.0]);
        assert_eq!(vals(Reduction::Sum.apply(x())), [9.0]);
        assert_eq!(vals(Reduction::None.apply(x())), [1.0, 2.0, 6.0]);
        assert_eq!(vals(Reduction::Mean.apply_with_divisor(x(), 4.5)), [2.0]);
        let zeros = Tensor::<1>::zeros([3], &d);
        assert!(vals(Reduction::Mean.apply_with_divisor(zeros, 0.0))[0].is_nan());
    }

    #[test]
    fn parses_pytorch_names() {
        let r: Reduction = serde_json::from_str("\"none\"").unwrap();
        assert_eq!(r, Reduction::None);
        assert_eq!(Reduction::default(), Reduction::Mean);
    }
}
