//! The processes of `kestrel train`: one, or the ranks of an MPI job (`mpirun -np N kestrel
//! train …`, built with the cargo feature `mpi`).

use crate::exit::CliError;
use kestrel_train::distributed::Replicas;
use std::time::Duration;

/// The number of processes an MPI launcher started this one among (Open MPI's, or the
/// PMI/PMIx variables other launchers and schedulers set), if any.
pub fn launched_processes() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
}

/// This process's place in the run: MPI when an MPI launcher started several processes, else one
/// process. `sync_bn` is `--sync-bn`; `timeout` bounds every wait for the other processes.
pub fn join(sync_bn: bool, timeout: Duration) -> Result<Replicas, CliError> {
    let n = launched_processes().unwrap_or(1);
    if n <= 1 {
        if sync_bn {
            eprintln!("note: --sync-bn has no effect in a run of one process");
        }
        return Ok(Replicas::solo());
    }
    mpi_world(n, sync_bn, timeout)
}

/// Says on stderr (process 0 of several) how the batch is split.
pub fn announce(replicas: &Replicas, batch: usize) {
    if !(replicas.is_distributed() && replicas.is_leader()) {
        return;
    }
    let n = replicas.world.size();
    let part = if batch.is_multiple_of(n) {
        (batch / n).to_string()
    } else {
        format!("{} or {}", batch / n + 1, batch / n)
    };
    let sync = if replicas.sync_bn {
        "; BatchNorm statistics over the whole batch (--sync-bn)"
    } else {
        ""
    };
    eprintln!("{n} processes, each with {part} of every batch of {batch}{sync}");
}

#[cfg(feature = "mpi")]
fn mpi_world(n: usize, sync_bn: bool, timeout: Duration) -> Result<Replicas, CliError> {
    use kestrel_train::distributed::mpi::MpiWorld;
    let world = MpiWorld::init(timeout).ok_or_else(|| {
        CliError::Runtime(format!(
            "started as one of {n} MPI processes, but MPI did not initialise"
        ))
    })?;
    Ok(Replicas {
        world: std::rc::Rc::new(world),
        sync_bn,
    })
}

#[cfg(not(feature = "mpi"))]
fn mpi_world(n: usize, _: bool, _: Duration) -> Result<Replicas, CliError> {
    Err(CliError::BadInput(format!(
        "started as one of {n} MPI processes, but this kestrel was built without MPI; build it with `cargo build --release -p kestrel-cli --features mpi` (needs Open MPI's libopenmpi-dev and libclang)"
    )))
}
