//! Weight penalties added to the loss: L1 (λ·Σ|w|, which drives weights to exactly zero) and
//! coupled L2 (λ/2·Σw², whose gradient λ·w is SGD's classic weight decay), and the share of
//! near-zero weights that an L1 run reports.
//!
//! By default BatchNorm parameters and biases are not penalised: decaying γ, β or a bias does
//! not limit a network's capacity, only shifts its activations (the convention of torchvision's
//! reference training scripts, `norm_weight_decay = 0`, and of most papers since Goyal et al.
//! 2017). A parameter is recognised by the last segment of its module path, as kestrel-nn's
//! `params::for_each_tensor` writes it: `bias` (Conv2d, Linear), `gamma` / `beta` (kestrel's
//! `BatchNorm2d`, Burn's `BatchNorm`, `LayerNorm`, `GroupNorm`). BatchNorm running statistics are
//! buffers and never penalised.

use crate::param_walk::{walk, OnParam};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use kestrel_nn::layers::params::is_buffer;

/// Which parameters a penalty or a sparsity report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PenaltyScope {
    /// Every parameter except BatchNorm γ/β and biases (see [`is_norm_or_bias`]).
    #[default]
    WeightsOnly,
    /// Every parameter (buffers excluded).
    All,
}

/// Weights with |w| below this count as zero in [`sparsity`] by default.
pub const NEAR_ZERO: f64 = 1e-3;

/// Whether a parameter path names a normalisation parameter or a bias: its last segment is
/// `bias`, `gamma` or `beta`.
pub fn is_norm_or_bias(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    matches!(last, "bias" | "gamma" | "beta")
}

impl PenaltyScope {
    /// Whether the parameter at `path` is covered.
    pub fn covers(self, path: &str) -> bool {
        !is_buffer(path)
            && match self {
                PenaltyScope::WeightsOnly => !is_norm_or_bias(path),
                PenaltyScope::All => true,
            }
    }
}

/// Hands the covered parameters, flattened, to `f` with their paths.
struct Covered<F> {
    scope: PenaltyScope,
    f: F,
}

impl<F: FnMut(&str, Tensor<1>)> OnParam for Covered<F> {
    fn on<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        if self.scope.covers(path) {
            let t = param.val();
            let n = t.shape().num_elements();
            (self.f)(path, t.reshape([n]));
        }
    }
}

/// Calls `f(path, flattened value)` for each parameter of `model` in `scope`. The values are
/// the parameters themselves (tracked on an autodiff device), so penalties built from them
/// reach the gradients.
pub fn for_each_covered<M: Module>(model: &M, scope: PenaltyScope, f: impl FnMut(&str, Tensor<1>)) {
    walk(model, Covered { scope, f });
}

/// Σ over covered parameters of `term(w)`, as a `[1]` tensor on the model's device (zero on
/// the model's device, or on `Device::flex()` for a model without tensors, if none is covered).
fn penalty<M: Module>(
    model: &M,
    scope: PenaltyScope,
    term: impl Fn(Tensor<1>) -> Tensor<1>,
) -> Tensor<1> {
    let mut acc: Option<Tensor<1>> = None;
    for_each_covered(model, scope, |_, w| {
        let s = term(w);
        acc = Some(match acc.take() {
            Some(a) => a.add(s),
            None => s,
        });
    });
    acc.unwrap_or_else(|| {
        let device = model
            .devices()
            .into_iter()
            .next()
            .unwrap_or_else(Device::flex);
        Tensor::zeros([1], &device)
    })
}

/// The L1 penalty λ·Σ|w| over the covered parameters, shape `[1]`; add it to the loss.
pub fn l1_penalty<M: Module>(model: &M, lambda: f64, scope: PenaltyScope) -> Tensor<1> {
    penalty(model, scope, |w| w.abs().sum()).mul_scalar(lambda)
}

#[cfg(test)]
/// The coupled L2 penalty λ/2·Σw² over the covered parameters, shape `[1]`; added to the loss
/// its gradient is λ·w, plain SGD weight decay λ.
pub fn l2_penalty<M: Module>(model: &M, lambda: f64, scope: PenaltyScope) -> Tensor<1> {
    penalty(model, scope, |w| w.square().sum()).mul_scalar(lambda / 2.0)
}

/// Near-zero counts of one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSparsity {
    /// Parameter path.
    pub path: String,
    /// Elements with |w| < threshold.
    pub near_zero: usize,
    /// Elements.
    pub total: usize,
}

/// Near-zero counts of a model's covered parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sparsity {
    /// Per parameter, in visiting order.
    pub per_tensor: Vec<TensorSparsity>,
}

impl Sparsity {
    /// Near-zero elements over all covered parameters.
    pub fn near_zero(&self) -> usize {
        self.per_tensor.iter().map(|t| t.near_zero).sum()
    }
    /// Elements of all covered parameters.
    pub fn total(&self) -> usize {
        self.per_tensor.iter().map(|t| t.total).sum()
    }
    /// The share of near-zero elements in [0, 1] (0 for a model with none covered).
    pub fn share(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            t => self.near_zero() as f64 / t as f64,
        }
    }
}

/// Counts the covered weights with |w| < `threshold` ([`NEAR_ZERO`] by default); a NaN weight is
/// not near zero.
pub fn sparsity<M: Module>(model: &M, threshold: f64, scope: PenaltyScope) -> Sparsity {
    let mut per_tensor = Vec::new();
    for_each_covered(model, scope, |path, w| {
        let v = w.into_data().convert::<f32>();
        let v = v.as_slice::<f32>().unwrap_or(&[]);
        per_tensor.push(TensorSparsity {
            path: path.to_string(),
            near_zero: v.iter().filter(|x| (x.abs() as f64) < threshold).count(),
            total: v.len(),
        });
    });
    Sparsity { per_tensor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::Linear;
    use burn::tensor::TensorData;
    use kestrel_nn::{BatchNorm2dConfig, ConvBnAct, ConvBnActConfig};

    #[derive(Module, Debug)]
    struct Small {
        stem: ConvBnAct,
        fc: Linear,
    }

    /// conv weight (2, 1, 1, 1) = [1, −2]; BN γ = [3, 4], β = [−5, 0]; fc weight [[0.5, −6e-4],
    /// [2e-4, −7]], bias [9, −9].
    fn small(device: &Device) -> Small {
        let mut stem = ConvBnActConfig::new(1, 2).with_kernel(1).init(device);
        stem.conv.weight =
            Param::from_tensor(Tensor::<1>::from_floats([1.0, -2.0], device).reshape([2, 1, 1, 1]));
        let mut bn = BatchNorm2dConfig::new(2).init(device);
        bn.gamma = Param::from_tensor(Tensor::from_floats([3.0, 4.0], device));
        bn.beta = Param::from_tensor(Tensor::from_floats([-5.0, 0.0], device));
        stem.bn = Some(bn);
        let w = TensorData::new(vec![0.5f32, -6e-4, 2e-4, -7.0], [2, 2]);
        let fc = Linear {
            weight: Param::from_tensor(Tensor::from_data(w, device)),
            bias: Some(Param::from_tensor(Tensor::from_floats([9.0, -9.0], device))),
        };
        Small { stem, fc }
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    #[test]
    fn paths_of_conv_bn_act_and_linear_are_classified() {
        let m = small(&Device::flex());
        let mut seen = Vec::new();
        for_each_covered(&m, PenaltyScope::WeightsOnly, |p, _| {
            seen.push(p.to_string())
        });
        assert_eq!(seen, ["stem.conv.weight", "fc.weight"]);
        let mut all = Vec::new();
        for_each_covered(&m, PenaltyScope::All, |p, _| all.push(p.to_string()));
        assert_eq!(
            all,
            [
                "stem.conv.weight",
                "stem.bn.gamma",
                "stem.bn.beta",
                "fc.weight",
                "fc.bias"
            ]
        );
    }

    #[test]
    fn penalties_match_hand_computation() {
        let m = small(&Device::flex());
        // Σ|w| over weights: 1 + 2 + 0.5 + 6e-4 + 2e-4 + 7 = 10.5008
        let l1 = scalar(l1_penalty(&m, 0.1, PenaltyScope::WeightsOnly));
        assert!((l1 - 1.05008).abs() < 1e-6, "{l1}");
        // All: + 3 + 4 + 5 + 0 + 9 + 9 = 40.5008
        let l1_all = scalar(l1_penalty(&m, 1.0, PenaltyScope::All));
        assert!((l1_all - 40.5008).abs() < 1e-5, "{l1_all}");
        // Σw²: 1 + 4 + 0.25 + 3.6e-7 + 4e-8 + 49 = 54.2500004; λ/2 = 0.01
        let l2 = scalar(l2_penalty(&m, 0.02, PenaltyScope::WeightsOnly));
        assert!((l2 - 0.542500004).abs() < 1e-6, "{l2}");
    }

    #[test]
    fn l2_gradient_is_weight_decay_and_skips_biases() {
        let device = Device::flex().autodiff();
        let m = small(&device);
        let grads = l2_penalty(&m, 0.5, PenaltyScope::WeightsOnly).backward();
        let g = m.fc.weight.val().grad(&grads).unwrap();
        let g = g
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let want = [0.25f32, -3e-4, 1e-4, -3.5];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{g:?}");
        }
        assert!(m.fc.bias.as_ref().unwrap().val().grad(&grads).is_none());
        assert!(m
            .stem
            .bn
            .as_ref()
            .unwrap()
            .gamma
            .val()
            .grad(&grads)
            .is_none());
    }

    #[test]
    fn sparsity_counts_near_zero_weights() {
        let m = small(&Device::flex());
        let s = sparsity(&m, NEAR_ZERO, PenaltyScope::WeightsOnly);
        assert_eq!((s.near_zero(), s.total()), (2, 6));
        assert!((s.share() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.per_tensor[1].path, "fc.weight");
        assert_eq!(s.per_tensor[1].near_zero, 2);
        let s = sparsity(&m, 1e-4, PenaltyScope::All);
        assert_eq!((s.near_zero(), s.total()), (1, 12)); // β = 0
    }
}
