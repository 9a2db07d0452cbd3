//! BatchNorm over the channel dimension with PyTorch's semantics.
//!
//! Burn's `BatchNorm` updates its running variance from the biased batch variance; PyTorch uses the
//! unbiased one (n / (n − 1) times larger, n = N·H·W). Models imported from or compared with
//! PyTorch drift apart in eval mode when that differs, so kestrel uses this layer instead.
//!
//! Training (autodiff device and training flag on): normalise with the batch mean and biased
//! variance over (N, H, W) per channel; update `running = (1 − m)·running + m·batch` with the
//! unbiased variance. Eval: normalise with the running statistics. While a data-parallel driver
//! has installed a replica sum ([`crate::ops::batch_norm_sync`]), the batch statistics and the
//! unbiased variance's count are those of every replica's batch together (SyncBatchNorm).
//!
//! On the Flex autodiff device the training forward and backward run kestrel's fused kernels
//! ([`crate::ops::batch_norm_train`]) unless `KESTREL_PLAIN_OPS=1`.

use burn::config::Config;
use burn::module::{Flag, Module, Param, RunningState};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

/// Configuration of [`BatchNorm2d`].
#[derive(Config, Debug)]
pub struct BatchNorm2dConfig {
    /// Number of channels.
    pub num_features: usize,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the newest batch in the running statistics.
    #[config(default = 0.1)]
    pub momentum: f64,
}

/// Batch normalisation of an (N, C, ...) tensor over every dimension but C.
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// Scale γ.
    pub gamma: Param<Tensor<1>>,
    /// Shift β.
    pub beta: Param<Tensor<1>>,
    /// Whether this layer trains (uses batch statistics) on an autodiff device.
    pub training: Param<Flag>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<1>>,
    /// Momentum of the running statistics.
    pub momentum: f64,
    /// Epsilon.
    pub epsilon: f64,
}

impl BatchNorm2dConfig {
    /// γ = 1, β = 0, running mean 0, running variance 1, as PyTorch.
    pub fn init(&self, device: &Device) -> BatchNorm2d {
        BatchNorm2d {
            gamma: Initializer::Ones.init([self.num_features], device),
            beta: Initializer::Zeros.init([self.num_features], device),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([self.num_features], device)),
            running_var: RunningState::new(Tensor::ones([self.num_features], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

impl BatchNorm2d {
    /// Normalises `input` (N, C, ...).
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if input.device().is_autodiff() && self.training.is_enabled() {
            self.forward_train(input)
        } else {
            let device = input.device();
            burn::tensor::module::batch_norm(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.epsilon,
            )
        }
    }

    /// [`BatchNorm2d::forward`] followed by a clamp to `bounds` (ReLU: `(0, ∞)`, ReLU6: `(0, 6)`),
    /// fused into the normalisation's passes when training with kestrel's kernels. Returns
    /// whether the clamp was applied; when not, the caller applies its activation itself.
    pub fn forward_clamped<const D: usize>(
        &self,
        input: Tensor<D>,
        bounds: (f64, f64),
    ) -> (Tensor<D>, bool) {
        if self.training.is_enabled() && crate::ops::use_training_kernels(&input) {
            (self.forward_train_with(input, bounds), true)
        } else {
            (self.forward(input), false)
        }
    }

    fn forward_train<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.forward_train_with(input, (f64::NEG_INFINITY, f64::INFINITY))
    }

    /// Training forward; `bounds` other than (−∞, ∞) only on the custom-kernel path.
    fn forward_train_with<const D: usize>(
        &self,
        input: Tensor<D>,
        bounds: (f64, f64),
    ) -> Tensor<D> {
        let dims = input.dims();
        let n: usize = dims
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, d)| d)
            .product();
        let device = input.device();
        let synced = crate::ops::batch_norm_sync::is_active();
        assert!(
            !synced || crate::ops::use_training_kernels(&input),
            "synchronised BatchNorm needs kestrel's training kernels (unset KESTREL_PLAIN_OPS)"
        );
        // Over every replica's batch when synchronised (the kernel sums the statistics too).
        let n = if synced {
            crate::ops::batch_norm_sync::total_count(n)
        } else {
            n
        };
        // Kestrel's fused kernels on Flex ([`crate::ops::batch_norm_train`]), Burn's otherwise.
        let out = if crate::ops::use_training_kernels(&input) {
            let o = crate::ops::batch_norm_train::batch_norm_clamp_train(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.epsilon,
                bounds,
            );
            burn::tensor::module::BatchNormTrainOutput {
                output: o.output,
                mean: o.mean,
                variance: o.variance,
            }
        } else {
            burn::tensor::module::batch_norm_train(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.epsilon,
            )
        };
        let bessel = if n > 1 {
            n as f64 / (n - 1) as f64
        } else {
            1.0
        };
        let m = self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(out.mean.detach().mul_scalar(m));
        let var = self
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(out.variance.detach().mul_scalar(m * bessel));
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        out.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn running_variance_is_unbiased_as_in_pytorch() {
        let device = Device::flex().autodiff();
        let bn = BatchNorm2dConfig::new(1).init(&device);
        // One channel, values 1, 2, 3, 4 over (N=2, H=1, W=2): mean 2.5, unbiased variance 5/3.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 1, 1, 2]),
            &device,
        );
        let y: Vec<f32> = bn.forward(x).into_data().try_to_vec().unwrap();
        // torch.nn.BatchNorm2d(1)(x) in train mode: (x − 2.5) / sqrt(1.25 + 1e-5).
        let s = (1.25f32 + 1e-5).sqrt();
        for (a, v) in y.iter().zip([1.0f32, 2.0, 3.0, 4.0]) {
            assert!((a - (v - 2.5) / s).abs() < 1e-5, "{y:?}");
        }
        let mean: Vec<f32> = bn
            .running_mean
            .value_sync()
            .into_data()
            .try_to_vec()
            .unwrap();
        let var: Vec<f32> = bn
            .running_var
            .value_sync()
            .into_data()
            .try_to_vec()
            .unwrap();
        // torch: running_mean = 0.9·0 + 0.1·2.5; running_var = 0.9·1 + 0.1·(5/3).
        assert!((mean[0] - 0.25).abs() < 1e-6, "{mean:?}");
        assert!((var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6, "{var:?}");
    }
}
