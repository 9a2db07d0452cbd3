//! kestrel's BatchNorm2d against PyTorch's `torch.nn.BatchNorm2d` (fixture written by
//! `tools/torch_bn_fixture.py`): train-mode outputs and running statistics after one and after two
//! forward passes, then the eval-mode output, all within 1e-5.

use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use kestrel_nn::BatchNorm2dConfig;
use serde::Deserialize;

#[derive(Deserialize)]
struct Step {
    input: Vec<f32>,
    output: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

#[derive(Deserialize)]
struct Eval {
    input: Vec<f32>,
    output: Vec<f32>,
}

#[derive(Deserialize)]
struct Fixture {
    shape: [usize; 4],
    eps: f64,
    momentum: f64,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    train: Vec<Step>,
    eval: Eval,
}

fn assert_close(what: &str, got: Tensor<1>, want: &[f32]) {
    let got: Vec<f32> = got.into_data().try_to_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5,
            "{what}[{i}]: kestrel {a}, PyTorch {b}"
        );
    }
}

#[test]
fn batch_norm_matches_pytorch_in_train_and_eval_mode() {
    let f: Fixture =
        serde_json::from_str(include_str!("fixtures/torch_bn.json")).expect("fixture parses");
    let c = f.shape[1];
    let ad = Device::flex().autodiff();
    let vec1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [c]), &ad);
    let mut bn = BatchNorm2dConfig::new(c)
        .with_epsilon(f.eps)
        .with_momentum(f.momentum)
        .init(&ad);
    bn.gamma = Param::from_tensor(vec1(&f.gamma));
    bn.beta = Param::from_tensor(vec1(&f.beta));
    bn.running_mean = RunningState::new(vec1(&f.running_mean));
    bn.running_var = RunningState::new(vec1(&f.running_var));
    assert_eq!(f.train.len(), 2);
    for (k, step) in f.train.iter().enumerate() {
        let x = Tensor::<4>::from_data(TensorData::new(step.input.clone(), f.shape), &ad);
        let y = bn.forward(x).flatten::<1>(0, 3);
        assert_close(&format!("train pass {} output", k + 1), y, &step.output);
        assert_close(
            &format!("running_mean after pass {}", k + 1),
            bn.running_mean.value_sync(),
            &step.running_mean,
        );
        assert_close(
            &format!("running_var after pass {}", k + 1),
            bn.running_var.value_sync(),
            &step.running_var,
        );
    }
    let eval = bn.valid();
    let x = Tensor::<4>::from_data(
        TensorData::new(f.eval.input.clone(), f.shape),
        &Device::flex(),
    );
    assert_close(
        "eval output",
        eval.forward(x).flatten::<1>(0, 3),
        &f.eval.output,
    );
}
