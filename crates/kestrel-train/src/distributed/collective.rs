//! What the replicas of a data-parallel job exchange: elementwise sums, identical on every
//! replica. A broadcast from replica 0 is a sum to which the others add zeros (exact: `x + 0 =
//! x`), so sums are the one primitive an implementation provides.

use crate::error::{Result, TrainError};
use kestrel_data::Shard;
use kestrel_nn::ops::batch_norm_sync::ReplicaSum;
use std::rc::Rc;

/// The processes of a data-parallel job, as seen from one of them.
pub trait Collective {
    /// This process's index, `0..size`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Replaces `values` by their elementwise sum over every process. Every process calls it
    /// with the same length at the same point; the result is identical on all of them. An
    /// error (a process failed, or no answer within the timeout) ends the job: the caller
    /// stops with it.
    fn sum_f32(&self, values: &mut [f32], what: &str) -> Result<()>;
    /// [`Collective::sum_f32`] in `f64`.
    fn sum_f64(&self, values: &mut [f64], what: &str) -> Result<()>;
    /// Seconds this process has spent in collectives so far (the implementation's own clock).
    fn seconds(&self) -> f64;
}

/// One process: every sum is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32], _: &str) -> Result<()> {
        Ok(())
    }
    fn sum_f64(&self, _: &mut [f64], _: &str) -> Result<()> {
        Ok(())
    }
    fn seconds(&self) -> f64 {
        0.0
    }
}

/// How a run is spread over processes.
#[derive(Clone)]
pub struct Replicas {
    /// The processes.
    pub world: Rc<dyn Collective>,
    /// SyncBatchNorm: BatchNorm layers normalise with the statistics of the whole batch (summed
    /// over the replicas) instead of each replica's part (`--sync-bn`).
    pub sync_bn: bool,
}

impl Replicas {
    /// One process.
    pub fn solo() -> Replicas {
        Replicas {
            world: Rc::new(Solo),
            sync_bn: false,
        }
    }

    /// This process's index.
    pub fn rank(&self) -> usize {
        self.world.rank()
    }

    /// Whether this process writes the run folder and speaks: replica 0.
    pub fn is_leader(&self) -> bool {
        self.world.rank() == 0
    }

    /// Whether there is more than one process.
    pub fn is_distributed(&self) -> bool {
        self.world.size() > 1
    }

    /// This process's part of every batch.
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.world.rank(),
            count: self.world.size(),
        }
    }

    /// Replica 0's `values` on every replica.
    pub fn broadcast_f64(&self, values: &mut [f64], what: &str) -> Result<()> {
        if !self.is_leader() {
            values.fill(0.0);
        }
        self.world.sum_f64(values, what)
    }

    /// Replica 0's `values` on every replica.
    pub fn broadcast_f32(&self, values: &mut [f32], what: &str) -> Result<()> {
        if !self.is_leader() {
            values.fill(0.0);
        }
        self.world.sum_f32(values, what)
    }

    /// Replica 0's decision on every replica.
    pub fn broadcast_bool(&self, value: bool, what: &str) -> Result<bool> {
        let mut v = [f64::from(u8::from(value))];
        self.broadcast_f64(&mut v, what)?;
        Ok(v[0] != 0.0)
    }

    /// Checks that every replica passes the same `value` (e.g. the number of gradient values it
    /// is about to sum): a mismatch would pair up unrelated numbers.
    pub fn check_same(&self, value: f64, what: &str) -> Result<()> {
        let n = self.world.size() as f64;
        let mut v = [value, value * value];
        self.world.sum_f64(&mut v, what)?;
        // Σv = n·value and Σv² = n·value² only when every replica has `value` (the squares
        // compared to rounding, for values past 2²⁶).
        let squares = (v[1] - n * value * value).abs() > 1e-12 * v[1].abs();
        if v[0] != n * value || squares {
            return Err(TrainError::Runtime(format!(
                "replica {}: the replicas disagree on {what} (this one has {value}); they must run the same model on the same data",
                self.rank()
            )));
        }
        Ok(())
    }
}

/// SyncBatchNorm's sums through a [`Collective`]. A failed sum inside a forward or backward pass
/// cannot return an error through the autodiff graph: the process says why and exits with 1.
pub(crate) struct BatchNormSum(pub Rc<dyn Collective>);

impl ReplicaSum for BatchNormSum {
    fn sum(&self, values: &mut [f64]) {
        if let Err(e) = self.0.sum_f64(values, "SyncBatchNorm statistics") {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
