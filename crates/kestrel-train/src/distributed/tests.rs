//! The exchanges of data-parallel training between replicas that are threads of one process
//! (summing in replica order, as a reduction would), without MPI.

use super::{gradients, model_sync, Collective, Replicas};
use crate::error::Result;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use kestrel_nn::{Arch, ClassifierSpec};
use std::rc::Rc;
use std::sync::{Arc, Barrier, Mutex};

/// Replicas as threads: every sum waits for all, then each reads the elementwise sum.
struct Threads {
    rank: usize,
    parts: Arc<Mutex<Vec<Vec<f64>>>>,
    barrier: Arc<Barrier>,
}

impl Threads {
    fn group(n: usize) -> Vec<Threads> {
        let parts = Arc::new(Mutex::new(vec![Vec::new(); n]));
        let barrier = Arc::new(Barrier::new(n));
        (0..n)
            .map(|rank| Threads {
                rank,
                parts: parts.clone(),
                barrier: barrier.clone(),
            })
            .collect()
    }

    fn sum(&self, values: &mut [f64]) {
        self.parts.lock().unwrap()[self.rank] = values.to_vec();
        self.barrier.wait();
        {
            let parts = self.parts.lock().unwrap();
            for (i, v) in values.iter_mut().enumerate() {
                *v = parts.iter().map(|p| p[i]).sum();
            }
        }
        self.barrier.wait();
    }
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.parts.lock().unwrap().len()
    }
    fn sum_f32(&self, values: &mut [f32], _: &str) -> Result<()> {
        let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
        self.sum(&mut v);
        values.iter_mut().zip(v).for_each(|(x, s)| *x = s as f32);
        Ok(())
    }
    fn sum_f64(&self, values: &mut [f64], _: &str) -> Result<()> {
        self.sum(values);
        Ok(())
    }
    fn seconds(&self) -> f64 {
        0.0
    }
}

/// Every float of a module (parameters and running statistics), in order.
fn floats<M: Module>(m: &M) -> Vec<f32> {
    struct V(Vec<f32>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .extend(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut v = V(Vec::new());
    m.visit(&mut v);
    v.0
}

/// Each replica builds its own model (different seeds), takes replica 0's, computes gradients
/// on its own input and averages them: the models end equal to replica 0's, and every replica's
/// averaged gradients are the mean of the replicas' own.
#[test]
fn replicas_share_replica_0s_model_and_average_their_gradients() {
    let spec = ClassifierSpec {
        arch: Arch::MobileNetV2,
        width: 0.25,
        num_classes: 3,
        activation: Default::default(),
    };
    let results: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = Threads::group(2)
            .into_iter()
            .map(|t| {
                let spec = &spec;
                scope.spawn(move || {
                    let rank = t.rank;
                    let replicas = Replicas {
                        world: Rc::new(t),
                        sync_bn: false,
                    };
                    let device = Device::flex().autodiff();
                    let model = spec.init(&device);
                    let model = model_sync::from_leader(&replicas, model).unwrap();
                    // Different images on each replica, and a loss that depends on the class.
                    let values: Vec<f32> = (0..2 * 3 * 32 * 32)
                        .map(|i| ((i * (rank + 2)) as f32 * 0.37).sin())
                        .collect();
                    let x = Tensor::<4>::from_data(
                        burn::tensor::TensorData::new(values, [2, 3, 32, 32]),
                        &device,
                    );
                    let weights =
                        Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0]], &device);
                    let loss = (model.forward(x) * weights).sum();
                    let own = GradientsParams::from_grads(loss.backward(), &model);
                    let own_values = grad_values(&model, &own);
                    let avg = gradients::average(&replicas, &model, own).unwrap();
                    (floats(&model), own_values, grad_values(&model, &avg))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (m0, g0, a0) = &results[0];
    let (m1, g1, a1) = &results[1];
    assert!(m0 == m1, "replica 1 holds replica 0's model");
    assert!(g0 != g1, "different inputs, different gradients");
    assert!(g0.iter().any(|&v| v != 0.0), "gradients");
    assert!(a0 == a1, "the same averaged gradients everywhere");
    for ((a, x), y) in a0.iter().zip(g0).zip(g1) {
        assert!(
            (a - (x + y) / 2.0).abs() <= 1e-6 * (1.0 + a.abs()),
            "{a} {x} {y}"
        );
    }
}

/// The gradients of `model`'s parameters in `grads`, in parameter order.
fn grad_values<M: Module>(model: &M, grads: &GradientsParams) -> Vec<f32> {
    struct G<'a>(&'a GradientsParams, Vec<f32>);
    impl crate::param_walk::OnParam for G<'_> {
        fn on<const D: usize>(&mut self, _: &str, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(p.id) {
                self.1.extend(g.into_data().try_to_vec::<f32>().unwrap());
            }
        }
    }
    crate::param_walk::walk(model, G(grads, Vec::new())).1
}

/// Replicas that disagree on how much they exchange stop with an error instead of pairing up
/// unrelated numbers.
#[test]
fn replicas_that_disagree_on_a_count_stop() {
    let errors: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = Threads::group(2)
            .into_iter()
            .map(|t| {
                scope.spawn(move || {
                    let rank = t.rank;
                    let replicas = Replicas {
                        world: Rc::new(t),
                        sync_bn: false,
                    };
                    let same = replicas.check_same(7.0, "a count").is_ok();
                    let differ = replicas.check_same(7.0 + rank as f64, "a count").is_err();
                    same && differ
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(errors, vec![true, true]);
}
