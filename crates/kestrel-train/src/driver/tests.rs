//! The driver on a fake task: stops, clipping, early stopping, the validation metric, and
//! bit-for-bit resume.

use super::checkpoint::Checkpoint;
use super::grad_health::{check_grads, GradAlarm, GradAlarmKind, GradThresholds, ParamGradNorm};
use super::progress::{self, lasting_vanishing, warn_vanishing, whole_layers_vanishing};
use super::run_dir::GRAD_NORMS;
use super::step_guard::StepGuard;
use super::*;
use crate::error::TrainError;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::TensorData;
use std::collections::HashSet;

#[derive(Module, Debug)]
struct Tiny {
    lin: Linear,
}

/// What the fake task does to its loss at one step.
#[derive(Clone, Copy)]
enum Blow {
    Scale(f32),
    NotANumber,
}

/// A regression of 4 fixed points on a 3 → 2 linear layer, 2 steps per epoch; validation
/// returns `scripted[epoch - 1]` as accuracy (and its half as macro-F1) when scripted, else a
/// score from the model's loss.
struct Fake {
    epoch: usize,
    left: usize,
    blow_at: Option<(usize, usize, Blow)>,
    scripted: Vec<f64>,
}

impl Fake {
    fn new() -> Self {
        Self {
            epoch: 0,
            left: 0,
            blow_at: None,
            scripted: Vec::new(),
        }
    }
    fn mse(model: &Tiny, device: &Device) -> Tensor<1> {
        let x = Tensor::<2>::from_data(
            TensorData::new(
                vec![
                    1.0f32, 0.0, -1.0, 0.5, 2.0, 1.0, -1.5, 0.5, 0.0, 1.0, 1.0, 1.0,
                ],
                [4, 3],
            ),
            device,
        );
        let y = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, -1.0, 0.0, 2.0, 1.0, 1.0, -2.0, 0.5], [4, 2]),
            device,
        );
        (model.lin.forward(x) - y).powf_scalar(2.0).mean()
    }
}

impl TaskLoop for Fake {
    type Model = Tiny;
    fn name(&self) -> &'static str {
        "classify"
    }
    fn init_model(&self, device: &Device) -> Result<Tiny> {
        // Not drawn from the device RNG, which tests running in parallel share: the
        // bit-for-bit resume test must not depend on their order.
        Ok(Tiny {
            lin: LinearConfig::new(3, 2)
                .with_initializer(burn::nn::Initializer::Constant { value: 0.1 })
                .init(device),
        })
    }
    fn load_model(&self, ckpt: &Checkpoint, device: &Device) -> Result<Tiny> {
        ckpt.load_into(self.init_model(device)?)
    }
    fn model_meta(&self) -> ModelMeta {
        ModelMeta {
            spec: ModelSpec::Classifier(kestrel_nn::ClassifierSpec {
                arch: kestrel_nn::Arch::MobileNetV2,
                width: 0.25,
                num_classes: 2,
                activation: Default::default(),
            }),
            class_names: vec!["a".into(), "b".into()],
        }
    }
    fn steps_per_epoch(&self) -> usize {
        2
    }
    fn start_epoch(&mut self, epoch: usize) -> Result<()> {
        (self.epoch, self.left) = (epoch, 2);
        Ok(())
    }
    fn next_step(&mut self, model: &Tiny, device: &Device) -> Result<Option<StepLoss>> {
        if self.left == 0 {
            return Ok(None);
        }
        let index = 2 - self.left;
        self.left -= 1;
        let loss = Self::mse(model, device);
        let loss = match self.blow_at {
            Some((e, i, Blow::Scale(f))) if (e, i) == (self.epoch, index) => loss.mul_scalar(f),
            Some((e, i, Blow::NotANumber)) if (e, i) == (self.epoch, index) => {
                loss.mul_scalar(f32::NAN)
            }
            _ => loss,
        };
        Ok(Some(StepLoss { loss, samples: 4 }))
    }
    fn train_accuracy(&self) -> (&'static str, f64) {
        ("acc", 0.0)
    }
    fn validate(&self, model: &Tiny) -> Result<BTreeMap<String, f64>> {
        let score = match self.scripted.get(self.epoch - 1) {
            Some(&s) => s,
            None => {
                let l = Self::mse(model, &Device::flex()).into_scalar::<f32>() as f64;
                1.0 / (1.0 + l)
            }
        };
        Ok([
            ("accuracy".to_string(), score),
            ("macro_f1".to_string(), score / 2.0),
        ]
        .into())
    }
    fn val_text(&self, val: &BTreeMap<String, f64>) -> String {
        format!("val acc {:.4}", val["accuracy"])
    }
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        lr: 0.05,
        grad_log_every: 1,
        // Warm-up over every step: the learning rate of a step does not depend on `epochs`.
        warmup_epochs: 10.0,
        ..TrainConfig::default()
    }
}

fn quiet(resume: bool) -> RunOptions {
    RunOptions {
        progress: Progress::Quiet,
        resume,
        stop_after: None,
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Epoch 1 trains; at epoch 2, step 1 the loss (hence every gradient) is scaled by 1e9:
/// the sampled norm of `lin.weight` (the first parameter) crosses 1e4 and the run stops,
/// naming it, with `last` and `best` still those of epoch 1.
#[test]
fn an_exploding_gradient_after_an_epoch_stops_and_keeps_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut task = Fake::new();
    task.blow_at = Some((2, 1, Blow::Scale(1e9)));
    let e = run(task, &cfg(3), &out, &quiet(false)).unwrap_err();
    let TrainError::Runtime(msg) = e else {
        panic!("expected a runtime error, got {e:?}")
    };
    assert!(
        msg.contains("exploding gradient at lin.weight")
            && msg.contains("epoch 2, step 3")
            && msg.contains("last.ckpt (epoch 1"),
        "{msg}"
    );
    for path in [
        run_dir::last_checkpoint(&out),
        run_dir::best_checkpoint(&out),
    ] {
        let ckpt = Checkpoint::load(&path).unwrap();
        assert_eq!(ckpt.meta.epoch, 1);
        let model = ckpt.load_into(Fake::new().init_model(&Device::flex()).unwrap());
        assert!(model.is_ok(), "{}", path.display());
    }
    // Every step was sampled, the fatal one included; metrics.jsonl has epoch 1 only.
    let samples = lines(&out.join(GRAD_NORMS));
    let steps: Vec<u64> = samples
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 1, 2, 3]);
    let names: Vec<&str> = samples[0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lin.weight", "lin.bias"]);
    assert!(samples[3]["layers"][0]["norm"].as_f64().unwrap() > 1e4);
    assert_eq!(lines(&out.join(run_dir::METRICS)).len(), 1);
}

#[test]
fn a_non_finite_loss_before_any_checkpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut task = Fake::new();
    task.blow_at = Some((1, 1, Blow::NotANumber));
    let msg = run(task, &cfg(2), &out, &quiet(false))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("non-finite training loss (NaN) at epoch 1, step 1")
            && msg.contains("largest parameter: lin.")
            && msg.contains("no epoch finished"),
        "{msg}"
    );
    assert!(!run_dir::last_checkpoint(&out).exists());
}

/// With clipping, the same 1e9 blow-up is clipped instead of stopping the run; the log keeps
/// the pre-clip norm.
#[test]
fn clipping_replaces_the_exploding_stop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut task = Fake::new();
    task.blow_at = Some((2, 1, Blow::Scale(1e9)));
    let c = TrainConfig {
        clip_grad_norm: Some(1.0),
        ..cfg(2)
    };
    let s = run(task, &c, &out, &quiet(false)).unwrap();
    assert_eq!(s.epochs_run, 2);
    let samples = lines(&out.join(GRAD_NORMS));
    assert!(samples[3]["layers"][0]["norm"].as_f64().unwrap() > 1e4);
}

/// Scripted val accuracy 0.5, 0.7, 0.6, 0.7 (a tie is no improvement), 0.9 with patience 2:
/// best is epoch 2, and the run stops after epoch 4, never reaching 0.9.
#[test]
fn early_stopping_counts_epochs_without_a_strictly_better_metric() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut task = Fake::new();
    task.scripted = vec![0.5, 0.7, 0.6, 0.7, 0.9];
    let c = TrainConfig {
        patience: Some(2),
        ..cfg(5)
    };
    let s = run(task, &c, &out, &quiet(false)).unwrap();
    assert_eq!((s.best_epoch, s.epochs_run), (2, 4));
    assert_eq!(s.val["accuracy"], 0.7);
    assert_eq!(lines(&out.join(run_dir::METRICS)).len(), 4);
    let best = Checkpoint::load(&run_dir::best_checkpoint(&out)).unwrap();
    assert_eq!(best.meta.epoch, 2);
    let last = Checkpoint::load(&run_dir::last_checkpoint(&out)).unwrap();
    let state = last.meta.loop_state.unwrap();
    assert_eq!((state.best_epoch, state.epochs_since_best), (2, 2));
    // Resuming with the same patience has nothing to do; a larger one continues to 0.9.
    let mut task = Fake::new();
    task.scripted = vec![0.5, 0.7, 0.6, 0.7, 0.9];
    let e = run(task, &c, &out, &quiet(true)).unwrap_err().to_string();
    assert!(
        e.contains("stopped early") && e.contains("--patience"),
        "{e}"
    );
    let mut task = Fake::new();
    task.scripted = vec![0.5, 0.7, 0.6, 0.7, 0.9];
    let c = TrainConfig {
        patience: Some(3),
        ..c
    };
    let s = run(task, &c, &out, &quiet(true)).unwrap();
    assert_eq!((s.best_epoch, s.epochs_run), (5, 5));
}

/// `val_metric = macro_f1` chooses on the second metric: scripted so that it is the halved
/// accuracy, the same epochs win; the summary reports both.
#[test]
fn the_val_metric_chooses_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut task = Fake::new();
    task.scripted = vec![0.4, 0.8, 0.6];
    let c = TrainConfig {
        val_metric: Some("macro_f1".into()),
        ..cfg(3)
    };
    let s = run(task, &c, &out, &quiet(false)).unwrap();
    assert_eq!(s.best_epoch, 2);
    assert_eq!(s.val["macro_f1"], 0.4);
    let best = Checkpoint::load(&run_dir::best_checkpoint(&out)).unwrap();
    assert_eq!(best.meta.val_metric, 0.4);
}

/// Three epochs straight, and one epoch then a resume to three, give the same bits in every
/// metrics line except `seconds`, and the same gradient samples.
#[test]
fn a_resumed_run_repeats_the_straight_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(Fake::new(), &cfg(3), &a, &quiet(false)).unwrap();
    run(Fake::new(), &cfg(1), &b, &quiet(false)).unwrap();
    let s = run(Fake::new(), &cfg(3), &b, &quiet(true)).unwrap();
    assert_eq!(s.epochs_run, 3);
    let strip = |mut v: Vec<serde_json::Value>| {
        for l in &mut v {
            l.as_object_mut().unwrap().remove("seconds");
        }
        v
    };
    let (ma, mb) = (
        strip(lines(&a.join(run_dir::METRICS))),
        strip(lines(&b.join(run_dir::METRICS))),
    );
    assert_eq!(ma.len(), 3);
    assert_eq!(ma, mb);
    assert_eq!(
        std::fs::read_to_string(a.join(GRAD_NORMS)).unwrap(),
        std::fs::read_to_string(b.join(GRAD_NORMS)).unwrap()
    );
    // A setting other than epochs and patience may not change.
    let changed = TrainConfig { lr: 0.1, ..cfg(4) };
    let e = run(Fake::new(), &changed, &b, &quiet(true)).unwrap_err();
    assert!(
        matches!(&e, TrainError::BadInput(m) if m.contains("`lr`")),
        "{e}"
    );
    // Nothing left to train.
    let e = run(Fake::new(), &cfg(3), &b, &quiet(true)).unwrap_err();
    assert!(e.to_string().contains("--epochs above 3"), "{e}");
}

#[test]
fn only_layers_whose_every_parameter_vanishes_are_reported() {
    let norm = |path: &str, norm: f64| ParamGradNorm {
        path: path.into(),
        norm,
        numel: 1,
    };
    let norms = [
        norm("b1.bn.gamma", 0.3),
        norm("b1.bn.beta", 1e-9),
        norm("b2.bn.gamma", 0.0),
        norm("b2.bn.beta", 1e-9),
        norm("b2.conv.weight", 0.5),
    ];
    let alarms = check_grads(&norms, &GradThresholds::default());
    assert_eq!(alarms.len(), 3);
    let kept: Vec<String> = whole_layers_vanishing(&alarms, &norms)
        .into_iter()
        .map(|a| a.path)
        .collect();
    assert_eq!(kept, ["b2.bn.gamma", "b2.bn.beta"]);
}

#[test]
fn a_vanishing_gradient_is_reported_once() {
    let alarm = |path: &str| GradAlarm {
        path: path.into(),
        norm: 0.0,
        kind: GradAlarmKind::Vanishing,
        threshold: 1e-7,
    };
    let said = std::cell::RefCell::new(Vec::new());
    let say = |l: String| said.borrow_mut().push(l);
    let mut seen = HashSet::new();
    warn_vanishing(&[alarm("a"), alarm("b")], &mut seen, 1, 0, &say);
    warn_vanishing(&[alarm("a"), alarm("b")], &mut seen, 1, 5, &say);
    warn_vanishing(&[alarm("a"), alarm("c")], &mut seen, 2, 9, &say);
    let said = said.into_inner();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[0].contains("at a:") && said[0].contains("at b:"),
        "{}",
        said[0]
    );
    assert!(said[1].contains("step 9") && said[1].contains("at c:") && !said[1].contains("at a:"));
}

#[test]
fn epoch_seeds_differ_by_epoch_and_seed() {
    let s: Vec<u64> = (1..=3).map(|e| epoch_device_seed(0, e)).collect();
    assert!(s[0] != s[1] && s[1] != s[2]);
    assert_ne!(epoch_device_seed(1, 1), s[0]);
    assert_eq!(epoch_device_seed(0, 2), s[1]);
}

#[test]
fn only_a_gradient_that_vanishes_at_two_samples_in_a_row_is_lasting() {
    let alarm = |path: &str| GradAlarm {
        path: path.into(),
        norm: 0.0,
        kind: GradAlarmKind::Vanishing,
        threshold: 1e-7,
    };
    let mut before = HashSet::new();
    let paths = |v: Vec<GradAlarm>| v.into_iter().map(|a| a.path).collect::<Vec<_>>();
    let first = lasting_vanishing(vec![alarm("a"), alarm("b")], &mut before);
    assert!(first.is_empty());
    assert_eq!(
        paths(lasting_vanishing(vec![alarm("b"), alarm("c")], &mut before)),
        ["b"]
    );
    assert_eq!(
        paths(lasting_vanishing(vec![alarm("c")], &mut before)),
        ["c"]
    );
}

/// Two layers in a row, `body` then a zero-initialised `head` (as an FCN's score layers), and a
/// `dead` layer whose output is multiplied by 0. Over three SGD steps sampled each step: `body`
/// gets no gradient at the first step only and is not reported; `dead` never does and is.
#[test]
fn a_dead_layer_is_reported_and_a_zero_initialised_head_is_not() {
    use burn::nn::Initializer;
    use burn::optim::{GradientsParams, SgdConfig};

    #[derive(Module, Debug)]
    struct Net {
        body: Linear,
        head: Linear,
        dead: Linear,
    }
    let device = Device::flex().autodiff();
    let linear = |i: usize, o: usize, value: f64| {
        LinearConfig::new(i, o)
            .with_initializer(Initializer::Constant { value })
            .init(&device)
    };
    let mut net = Net {
        body: linear(3, 4, 0.3),
        head: linear(4, 2, 0.0),
        dead: linear(3, 2, 0.5),
    };
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, -0.5, 2.0, 0.5, 1.5, -1.0], [2, 3]),
        &device,
    );
    let y = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, -1.0, 0.5, 2.0], [2, 2]),
        &device,
    );
    let cfg = TrainConfig {
        grad_log_every: 1,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let log = progress::Log::new(&cfg, 3, Progress::Quiet, 0);
    let mut guard = StepGuard::new(&cfg, dir.path(), &log, String::new(), true);
    let mut sgd = SgdConfig::new().init();
    for step in 0..3 {
        let out = net.head.forward(net.body.forward(x.clone()))
            + net.dead.forward(x.clone()).mul_scalar(0.0);
        let loss = (out - y.clone()).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let (grads, _) = guard.gradients(&net, grads, 1, step).unwrap();
        net = sgd.step(0.1, net, grads);
    }
    let mut reported: Vec<&String> = guard.vanishing_reported().iter().collect();
    reported.sort();
    assert_eq!(reported, ["dead.bias", "dead.weight"]);
}

/// `steps.jsonl` has one line per optimiser step; each epoch's step losses average to the
/// epoch's `train_loss` (every Fake step has 4 samples) and its last step's learning rates are
/// the epoch's `lr`; a run resumed after epoch 1 writes the same lines as the straight one.
#[test]
fn every_step_is_logged_and_the_log_survives_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(Fake::new(), &cfg(3), &a, &quiet(false)).unwrap();
    let steps = lines(&a.join(run_dir::STEPS));
    let at = |i: usize, key: &str| steps[i][key].as_u64().unwrap();
    assert_eq!(
        (0..6)
            .map(|i| (at(i, "epoch"), at(i, "step")))
            .collect::<Vec<_>>(),
        [(1, 0), (1, 1), (2, 2), (2, 3), (3, 4), (3, 5)]
    );
    for (e, epoch) in lines(&a.join(run_dir::METRICS)).iter().enumerate() {
        let pair = &steps[2 * e..2 * e + 2];
        let mean = (pair[0]["loss"].as_f64().unwrap() + pair[1]["loss"].as_f64().unwrap()) / 2.0;
        let train = epoch["train_loss"]["classify"].as_f64().unwrap();
        assert!(
            (mean - train).abs() <= 1e-12 * train.abs(),
            "{mean} vs {train}"
        );
        assert_eq!(pair[1]["lr"], epoch["lr"]);
    }
    run(Fake::new(), &cfg(1), &b, &quiet(false)).unwrap();
    run(Fake::new(), &cfg(3), &b, &quiet(true)).unwrap();
    assert_eq!(
        std::fs::read_to_string(a.join(run_dir::STEPS)).unwrap(),
        std::fs::read_to_string(b.join(run_dir::STEPS)).unwrap()
    );
}
