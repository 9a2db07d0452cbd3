//! Global average pooling, the step between a CNN's feature map and its classifier.

use burn::nn::{Dropout, Linear};
use burn::tensor::Tensor;

/// Averages each channel of an (N, C, H, W) map over H and W: (N, C).
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    x.mean_dim(3).mean_dim(2).flatten(1, 3)
}

/// The classification head of the MobileNets: `features` (N, C, H, W) globally average-pooled,
/// then `dropout`, then the linear `classifier`: logits (N, classes).
pub fn pooled_logits(features: Tensor<4>, dropout: &Dropout, classifier: &Linear) -> Tensor<2> {
    classifier.forward(dropout.forward(global_avg_pool(features)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn averages_each_channel() {
        let d = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new((0..8).map(|v| v as f32).collect(), [1, 2, 2, 2]),
            &d,
        );
        let y: Vec<f32> = global_avg_pool(x).into_data().try_to_vec().unwrap();
        assert_eq!(y, vec![1.5, 5.5]);
    }
}
