//! Deterministic, non-trivial weights and inputs for export tests: every tensor drawn from
//! kestrel's own seeded generator (so exports are byte-for-byte reproducible), batch-norm
//! statistics far from the identity (so an unfolded or wrongly folded batch norm shows).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use kestrel_data::rng::Rng;
use kestrel_runtime::{Engine, EngineOptions, KernelPath, Plan};

/// Replaces every tensor of a module with seeded random values, by field name.
struct Randomize {
    rng: Rng,
    path: Vec<String>,
}

impl ModuleMapper for Randomize {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let field = self.path.last().cloned().unwrap_or_default();
        let parent = self.path.iter().rev().nth(1).cloned().unwrap_or_default();
        let rng = &mut self.rng;
        param.map(|t| {
            let dims: [usize; D] = t.dims();
            let n: usize = dims.iter().product();
            let (lo, hi) = match field.as_str() {
                "running_var" => (0.5, 2.0),
                "running_mean" | "beta" => (-0.3, 0.3),
                "gamma" => (0.5, 1.5),
                "bias" => (-0.1, 0.1),
                // He-uniform: keeps activations of order 1 through deep ReLU networks.
                "weight" if D == 4 => {
                    let a = (6.0 / (dims[1] * dims[2] * dims[3]) as f64).sqrt();
                    (-a, a)
                }
                // Linear layers, `[in, out]`.
                "weight" => {
                    let a = (3.0 / dims[0] as f64).sqrt();
                    (-a, a)
                }
                other => panic!("unexpected tensor `{parent}.{other}`"),
            };
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(lo, hi) as f32).collect();
            let fresh = Tensor::from_data(TensorData::new(v, dims), &t.device());
            // A parameter that trains (on an autodiff device) keeps training.
            if t.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// `model` (a classifier, an FCN, ...) with every tensor replaced by values drawn from `seed`.
pub(crate) fn randomized<M: Module>(model: M, seed: u64) -> M {
    model.map(&mut Randomize {
        rng: Rng::new(seed),
        path: Vec::new(),
    })
}

/// A deterministic NCHW batch of `batch` square images, values in [-2, 2).
pub(crate) fn input_nchw(batch: usize, res: usize, channels: usize) -> Vec<f32> {
    let mut rng = Rng::new(12345);
    (0..batch * channels * res * res)
        .map(|_| rng.uniform(-2.0, 2.0) as f32)
        .collect()
}

/// `forward` of the batch [`input_nchw`]`(batch, res, 3)` on the Flex device: the model's
/// output values, row-major.
pub(crate) fn burn_output<const D: usize>(
    batch: usize,
    res: usize,
    forward: impl FnOnce(Tensor<4>) -> Tensor<D>,
) -> Vec<f32> {
    let x = TensorData::new(input_nchw(batch, res, 3), [batch, 3, res, res]);
    forward(Tensor::from_data(x, &Device::flex()))
        .into_data()
        .try_to_vec()
        .unwrap()
}

/// `plan` run on the NHWC batch `nhwc` on two threads, once on each kernel path: (path, output).
pub(crate) fn engine_outputs(
    plan: &Plan,
    nhwc: &[f32],
    batch: usize,
) -> Vec<(KernelPath, Vec<f32>)> {
    [KernelPath::Auto, KernelPath::Scalar]
        .into_iter()
        .map(|path| {
            let options = EngineOptions {
                threads: 2,
                kernel_path: path,
                ..Default::default()
            };
            let mut engine = Engine::new(plan.clone(), options).unwrap();
            (path, engine.run(nhwc, batch).unwrap().to_vec())
        })
        .collect()
}

/// Largest |a − b| relative to the largest |b|.
pub(crate) fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}
