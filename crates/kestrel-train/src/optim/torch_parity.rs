//! kestrel's optimisers, parameter groups, weight-decay scope, L1 penalty and schedules against
//! PyTorch: `tools/optim_fixtures.py` runs torch.optim.SGD / Adam / AdamW with the param groups a
//! configuration describes, in float64, and StepLR / CosineAnnealingLR; here the same tiny model,
//! built from the fixture's configuration text, must follow the same trajectories.

use super::{LrSchedule, Optim, ScheduleKind};
use crate::config::TrainConfig;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use kestrel_nn::{BatchNorm2d, BatchNorm2dConfig};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f64>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    toml: String,
    losses: Vec<f64>,
    trajectory: Vec<BTreeMap<String, Array>>,
}

#[derive(Deserialize)]
struct StepFixture {
    lr: f64,
    step_size: usize,
    gamma: f64,
    epochs: usize,
    lrs: Vec<f64>,
}

#[derive(Deserialize)]
struct CosineFixture {
    lr: f64,
    total: usize,
    lrs: Vec<f64>,
}

#[derive(Deserialize)]
struct Schedules {
    step: StepFixture,
    cosine: CosineFixture,
}

#[derive(Deserialize)]
struct Fixture {
    x: Array,
    y: Array,
    initial: BTreeMap<String, Array>,
    cases: Vec<Case>,
    schedules: Schedules,
}

fn fixture() -> Fixture {
    let text = include_str!("../../tests/fixtures/optim.json");
    serde_json::from_str(text).expect("fixture parses")
}

/// body: Linear(4 → 3); norm: BatchNorm γ/β used as an affine map; head: Linear(3 → 2).
#[derive(Module, Debug)]
struct Tiny {
    body: Linear,
    norm: BatchNorm2d,
    head: Linear,
}

fn tensor<const D: usize>(a: &Array, device: &Device) -> Tensor<D> {
    let data: Vec<f32> = a.data.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, a.shape.clone()), device)
}

fn param<const D: usize>(f: &Fixture, name: &str, device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(tensor(&f.initial[name], device))
}

impl Tiny {
    fn new(f: &Fixture, device: &Device) -> Self {
        let mut norm = BatchNorm2dConfig::new(3).init(device);
        norm.gamma = param(f, "norm.gamma", device);
        norm.beta = param(f, "norm.beta", device);
        Tiny {
            body: Linear {
                weight: param(f, "body.weight", device),
                bias: Some(param(f, "body.bias", device)),
            },
            norm,
            head: Linear {
                weight: param(f, "head.weight", device),
                bias: Some(param(f, "head.bias", device)),
            },
        }
    }

    fn loss(&self, x: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
        let h = self.body.forward(x);
        let h = h * self.norm.gamma.val().unsqueeze::<2>() + self.norm.beta.val().unsqueeze::<2>();
        let out = self.head.forward(h.tanh());
        (out - y).square().mean()
    }

    fn values(&self) -> BTreeMap<String, Vec<f32>> {
        let v = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let flat = |t: Tensor<2>| {
            let n = t.shape().num_elements();
            v(t.reshape([n]))
        };
        [
            ("body.weight", flat(self.body.weight.val())),
            ("body.bias", v(self.body.bias.as_ref().unwrap().val())),
            ("norm.gamma", v(self.norm.gamma.val())),
            ("norm.beta", v(self.norm.beta.val())),
            ("head.weight", flat(self.head.weight.val())),
            ("head.bias", v(self.head.bias.as_ref().unwrap().val())),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t))
        .collect()
    }
}

#[test]
fn optimiser_steps_follow_torch_optim() {
    let f = fixture();
    let device = Device::flex().autodiff();
    let x: Tensor<2> = tensor(&f.x, &device);
    let y: Tensor<2> = tensor(&f.y, &device);
    assert_eq!(f.cases.len(), 9);
    for case in &f.cases {
        let cfg: TrainConfig = toml::from_str(&case.toml)
            .unwrap_or_else(|e| panic!("{}: config {e}\n{}", case.name, case.toml));
        let mut model = Tiny::new(&f, &device);
        let mut optim = Optim::new(&cfg, &model, 1).unwrap();
        for (step, want) in case.trajectory.iter().enumerate() {
            let loss = optim.regularize(model.loss(x.clone(), y.clone()), &model);
            let l = loss.clone().into_scalar::<f32>() as f64;
            assert!(
                (l - case.losses[step]).abs() < 1e-6,
                "{} step {step}: loss {l} vs torch {}",
                case.name,
                case.losses[step]
            );
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(step, model, grads);
            let got = model.values();
            for (name, w) in want {
                let g = &got[name];
                assert_eq!(g.len(), w.data.len(), "{name}");
                for (i, (a, b)) in g.iter().zip(&w.data).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-6,
                        "{} step {step} {name}[{i}]: kestrel {a} vs torch {b}",
                        case.name
                    );
                }
            }
        }
    }
}

#[test]
fn groups_report_their_learning_rates() {
    let f = fixture();
    let case = f.cases.iter().find(|c| c.name == "adamw_groups").unwrap();
    let cfg: TrainConfig = toml::from_str(&case.toml).unwrap();
    let model = Tiny::new(&f, &Device::flex());
    let optim = Optim::new(&cfg, &model, 1).unwrap();
    let lrs = optim.lrs(0);
    assert_eq!(lrs.keys().collect::<Vec<_>>(), ["default", "head", "norm"]);
    assert_eq!(lrs["default"], 0.01);
    assert_eq!(lrs["head"], 0.05);
    assert_eq!(lrs["norm"], 0.005);
}

#[test]
fn step_and_cosine_schedules_match_torch_schedulers() {
    let f = fixture();
    let s = &f.schedules.step;
    let mut cfg = TrainConfig {
        schedule: ScheduleKind::Step,
        lr: s.lr,
        step_size: s.step_size,
        gamma: s.gamma,
        epochs: s.epochs,
        warmup_epochs: 0.0,
        ..TrainConfig::default()
    };
    for spe in [1, 4] {
        let sched = LrSchedule::from_config(&cfg, spe);
        for (epoch, want) in s.lrs.iter().enumerate() {
            for k in 0..spe {
                let got = s.lr * sched.factor(epoch * spe + k);
                assert!((got - want).abs() < 1e-12, "epoch {epoch}: {got} vs {want}");
            }
        }
    }
    let c = &f.schedules.cosine;
    cfg.schedule = ScheduleKind::Cosine;
    cfg.epochs = c.total;
    let sched = LrSchedule::from_config(&cfg, 1);
    for (step, want) in c.lrs.iter().enumerate() {
        let got = c.lr * sched.factor(step);
        assert!((got - want).abs() < 1e-12, "step {step}: {got} vs {want}");
    }
}

#[test]
fn optimiser_state_with_groups_survives_a_checkpoint() {
    let f = fixture();
    let device = Device::flex().autodiff();
    let x: Tensor<2> = tensor(&f.x, &device);
    let y: Tensor<2> = tensor(&f.y, &device);
    let case = f.cases.iter().find(|c| c.name == "adamw_groups").unwrap();
    let cfg: TrainConfig = toml::from_str(&case.toml).unwrap();
    let mut model = Tiny::new(&f, &device);
    let mut optim = Optim::new(&cfg, &model, 1).unwrap();
    let step = |optim: &mut Optim, model: Tiny, k: usize| {
        let grads =
            GradientsParams::from_grads(model.loss(x.clone(), y.clone()).backward(), &model);
        optim.step(k, model, grads)
    };
    for k in 0..2 {
        model = step(&mut optim, model, k);
    }
    let bytes = optim.module_optimizer().into_bytes().unwrap();
    let mut restored = Optim::new(&cfg, &model, 1)
        .unwrap()
        .restore(|o| Ok(o.from_bytes(bytes).unwrap()))
        .unwrap();
    let a = step(&mut optim, model.clone(), 2).values();
    let b = step(&mut restored, model.clone(), 2).values();
    assert_eq!(a, b);
    // Against the torch trajectory's third step too.
    for (name, w) in &case.trajectory[2] {
        for (g, t) in a[name].iter().zip(&w.data) {
            assert!((*g as f64 - t).abs() < 1e-6, "{name}: {g} vs {t}");
        }
    }
}
