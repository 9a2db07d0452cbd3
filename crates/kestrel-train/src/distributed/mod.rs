//! Data-parallel training over several processes (replicas), as PyTorch's
//! `DistributedDataParallel` does it: every replica holds the whole model, takes its part of
//! every batch ([`kestrel_data::Shard`] of the batch, in the same seeded epoch order), and the
//! replicas average their gradients before every optimiser step, so they stay identical and
//! together take the step one process would take on the whole batch.
//!
//! - [`collective`]: what the replicas exchange ([`Collective`]: elementwise sums), the one-process
//!   [`Solo`], and the adapter that lets SyncBatchNorm sum through it;
//! - `gradients`: the gradient all-reduce, in buckets, in the model's parameter order;
//! - `model_sync`: replica 0's model values (parameters and BatchNorm running statistics) to
//!   every replica: at the start, and before validation;
//! - `mpi` (cargo feature `mpi`): the [`Collective`] of an MPI job (Open MPI through the `mpi`
//!   crate), with a timeout on every collective.
//!
//! The driver (`driver/`, behind [`crate::train_replicated`]) decides what is exchanged when; replica 0 alone writes the run
//! folder.

pub mod collective;
pub(crate) mod gradients;
pub(crate) mod model_sync;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(test)]
mod tests;

pub use collective::{Collective, Replicas, Solo};
