//! Train-mode BatchNorm's input gradient (through the batch statistics) agrees with central finite
//! differences.

use burn::tensor::module::batch_norm_train;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

#[test]
fn batch_norm_train_input_gradient_matches_finite_differences() {
    let shape = [3, 2, 2, 3];
    let ad = Device::flex().autodiff();
    ad.seed(4);
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.5, 2.0), &ad).require_grad();
    let probe = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
    let gamma = Tensor::<1>::from_floats([1.5, 0.7], &ad);
    let beta = Tensor::<1>::from_floats([0.1, -0.2], &ad);
    let y = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5).output;
    let grads = (y * probe.clone()).sum().backward();
    let gx: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    let xv: Vec<f64> = x.into_data().convert::<f64>().try_to_vec().unwrap();
    let pv: Vec<f64> = probe.into_data().convert::<f64>().try_to_vec().unwrap();
    // Reference in f64: y = γ (x − μ) / sqrt(σ² + ε) + β per channel over (N, H, W).
    let loss = |x: &[f64]| -> f64 {
        let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3]);
        let (g, b) = ([1.5, 0.7], [0.1, -0.2]);
        let mut total = 0.0;
        for ch in 0..c {
            let idx: Vec<usize> = (0..n)
                .flat_map(|i| (0..hw).map(move |j| (i * c + ch) * hw + j))
                .collect();
            let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64;
            let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / idx.len() as f64;
            for &i in &idx {
                total += pv[i] * (g[ch] * (x[i] - mean) / (var + 1e-5).sqrt() + b[ch]);
            }
        }
        total
    };
    let _ = TensorData::new(vec![0f32], [1]);
    for i in 0..xv.len() {
        let (mut a, mut b) = (xv.clone(), xv.clone());
        a[i] += 1e-4;
        b[i] -= 1e-4;
        let num = (loss(&a) - loss(&b)) / 2e-4;
        assert!(
            (num - gx[i] as f64).abs() < 1e-3 * (1.0 + num.abs()),
            "element {i}: autodiff {} vs numeric {num}",
            gx[i]
        );
    }
}
