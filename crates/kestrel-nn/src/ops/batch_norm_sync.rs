//! Synchronised BatchNorm (PyTorch's `SyncBatchNorm`) for data-parallel training: the replicas of
//! a model, each holding a shard of the batch, normalise with the statistics of the whole batch.
//!
//! A data-parallel driver installs a [`ReplicaSum`] on the thread that runs the model
//! ([`install`]); while it is installed, the fused training BatchNorm
//! ([`super::batch_norm_train`]) sums across replicas:
//!
//! - forward: `(n, Σx)` per channel give the global mean μ; then `Σ (x − μ)²`, computed locally
//!   as `M2_r + n_r·(μ_r − μ)²` from the replica's own shifted statistics, gives the global
//!   biased variance;
//! - backward: `Σ dy` and `Σ dy·(x − μ)` per channel, and the input gradient uses the global
//!   count. γ's and β's gradients stay local: the driver's gradient all-reduce averages them
//!   with every other parameter's.
//!
//! If each replica's loss is its shard's mean scaled by `shard / (batch / replicas)`, the
//! all-reduced mean gradient equals that of one process on the whole batch.
//!
//! Every replica must run the same layers in the same order (the same model and graph), so the
//! sums pair up; the autodiff backward runs on the calling thread in a fixed order.

use std::cell::RefCell;
use std::rc::Rc;

/// Elementwise sums over every replica of a data-parallel job.
pub trait ReplicaSum {
    /// Replaces `values` by their elementwise sum over all replicas; the result is identical on
    /// every replica. Every replica calls this with the same length at the same point. A
    /// failure (a lost replica, a timeout) must not return: it ends the process with a message.
    fn sum(&self, values: &mut [f64]);
}

thread_local! {
    static INSTALLED: RefCell<Option<Rc<dyn ReplicaSum>>> = const { RefCell::new(None) };
}

/// Makes training BatchNorm on this thread synchronise through `sum` until the guard is dropped.
pub fn install(sum: Rc<dyn ReplicaSum>) -> Installed {
    let before = INSTALLED.with(|s| s.borrow_mut().replace(sum));
    Installed { before }
}

/// Restores the previous state of this thread when dropped (see [`install`]).
pub struct Installed {
    before: Option<Rc<dyn ReplicaSum>>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let before = self.before.take();
        INSTALLED.with(|s| *s.borrow_mut() = before);
    }
}

/// The replica sum installed on this thread, if any.
pub fn installed() -> Option<Rc<dyn ReplicaSum>> {
    INSTALLED.with(|s| s.borrow().clone())
}

/// Whether BatchNorm on this thread synchronises across replicas.
pub fn is_active() -> bool {
    INSTALLED.with(|s| s.borrow().is_some())
}

/// The number of values per channel over every replica, given this replica's `local` count.
pub fn total_count(local: usize) -> usize {
    match installed() {
        Some(sum) => {
            let mut v = [local as f64];
            sum.sum(&mut v);
            v[0] as usize
        }
        None => local,
    }
}

/// Global `(mean, biased variance, count)` per channel from each replica's `(mean, biased
/// variance)` over `n` values per channel, through `sum`.
pub fn combine_stats(
    sum: &dyn ReplicaSum,
    mean: &[f32],
    var: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>, f64) {
    let c = mean.len();
    let nf = n as f64;
    // Round 1: count and Σx.
    let mut first = Vec::with_capacity(c + 1);
    first.push(nf);
    first.extend(mean.iter().map(|&m| m as f64 * nf));
    sum.sum(&mut first);
    let total = first[0];
    let global_mean: Vec<f64> = first[1..]
        .iter()
        .map(|&s| if total > 0.0 { s / total } else { 0.0 })
        .collect();
    // Round 2: Σ (x − μ)² = M2_r + n_r·(μ_r − μ)² per replica.
    let mut m2: Vec<f64> = (0..c)
        .map(|ch| {
            let d = mean[ch] as f64 - global_mean[ch];
            var[ch] as f64 * nf + nf * d * d
        })
        .collect();
    sum.sum(&mut m2);
    let global_var = m2
        .iter()
        .map(|&s| if total > 0.0 { (s / total) as f32 } else { 0.0 })
        .collect();
    (
        global_mean.iter().map(|&m| m as f32).collect(),
        global_var,
        total,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    /// Replicas as threads of one process: each `sum` waits for all of them, then every
    /// replica reads the elementwise sum (added in replica order, as a reduction would).
    pub(crate) struct ThreadSum {
        shared: Arc<Shared>,
        rank: usize,
    }

    pub(crate) struct Shared {
        parts: Mutex<Vec<Vec<f64>>>,
        barrier: Barrier,
    }

    impl ThreadSum {
        /// One handle per replica of an `n`-replica group.
        pub(crate) fn group(n: usize) -> Vec<ThreadSum> {
            let shared = Arc::new(Shared {
                parts: Mutex::new(vec![Vec::new(); n]),
                barrier: Barrier::new(n),
            });
            (0..n)
                .map(|rank| ThreadSum {
                    shared: shared.clone(),
                    rank,
                })
                .collect()
        }
    }

    impl ReplicaSum for ThreadSum {
        fn sum(&self, values: &mut [f64]) {
            self.shared.parts.lock().unwrap()[self.rank] = values.to_vec();
            self.shared.barrier.wait();
            {
                let parts = self.shared.parts.lock().unwrap();
                for (i, v) in values.iter_mut().enumerate() {
                    *v = parts.iter().map(|p| p[i]).sum();
                }
            }
            self.shared.barrier.wait();
        }
    }

    #[test]
    fn combined_statistics_equal_the_whole_batch() {
        // Channel values split unevenly over two replicas: 1, 2, 3 | 10 (and a constant channel).
        let sums = ThreadSum::group(2);
        let handles: Vec<_> = sums
            .into_iter()
            .map(|s| {
                std::thread::spawn(move || {
                    let (mean, var, n) = if s.rank == 0 {
                        (vec![2.0f32, 5.0], vec![2.0f32 / 3.0, 0.0], 3)
                    } else {
                        (vec![10.0f32, 5.0], vec![0.0f32, 0.0], 1)
                    };
                    combine_stats(&s, &mean, &var, n)
                })
            })
            .collect();
        for h in handles {
            let (mean, var, total) = h.join().unwrap();
            // 1, 2, 3, 10: mean 4, biased variance (9 + 4 + 1 + 36) / 4 = 12.5.
            assert_eq!(total, 4.0);
            assert_eq!(mean, vec![4.0, 5.0]);
            assert!((var[0] - 12.5).abs() < 1e-5 && var[1] == 0.0, "{var:?}");
        }
    }
}
