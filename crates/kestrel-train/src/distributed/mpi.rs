//! The [`Collective`] of an MPI job (cargo feature `mpi`): Open MPI, or any MPI the `mpi` crate
//! builds against, started by `mpirun -np N kestrel train …` or a scheduler's launcher.
//!
//! Failure handling: MPI's error handler on the world communicator is set to return errors
//! instead of aborting the job, and every sum is a non-blocking all-reduce polled against a
//! deadline, so a replica that died or hangs ends the others' waits with an error naming the
//! collective and the timeout (the caller exits with 1) instead of a hang.

use super::Collective;
use crate::error::{Result, TrainError};
use mpi::ffi;
use mpi::topology::Communicator;
use mpi::traits::AsRaw;
use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::time::{Duration, Instant};

/// The MPI world of this process. MPI is initialised once per process: keep this alive for the
/// whole run, and end the process with [`std::process::exit`] after a failed collective (MPI's
/// finalisation would wait for the replicas that failed).
pub struct MpiWorld {
    _universe: mpi::environment::Universe,
    comm: ffi::MPI_Comm,
    rank: usize,
    size: usize,
    timeout: Duration,
    seconds: Cell<f64>,
}

impl MpiWorld {
    /// Initialises MPI; `None` when this process was not started by an MPI launcher or MPI was
    /// already initialised. `timeout` bounds every collective's wait.
    pub fn init(timeout: Duration) -> Option<MpiWorld> {
        let universe = mpi::initialize()?;
        let world = universe.world();
        let comm = world.as_raw();
        // SAFETY: `comm` is the live world communicator and `RSMPI_ERRORS_RETURN` a predefined
        // handler; the call only changes how later errors are reported.
        unsafe {
            ffi::MPI_Comm_set_errhandler(comm, ffi::RSMPI_ERRORS_RETURN);
        }
        Some(MpiWorld {
            rank: world.rank() as usize,
            size: world.size() as usize,
            comm,
            _universe: universe,
            timeout,
            seconds: Cell::new(0.0),
        })
    }

    /// The elementwise sum of `values` (of MPI type `datatype`, `T` of the same layout) over
    /// every process, into `values`.
    fn all_reduce<T: Copy + Default>(
        &self,
        values: &mut [T],
        datatype: ffi::MPI_Datatype,
        what: &str,
    ) -> Result<()> {
        let started = mpi::time();
        let count = c_int::try_from(values.len()).map_err(|_| {
            TrainError::Runtime(format!("{what}: {} values in one sum", values.len()))
        })?;
        // The buffers are owned here and leaked if the collective does not finish: MPI may still
        // write into them after a timeout.
        let send = values.to_vec();
        let mut recv = vec![T::default(); values.len()];
        // SAFETY: an MPI_Request is a plain handle that MPI_Iallreduce initialises.
        let mut request: ffi::MPI_Request = unsafe { std::mem::zeroed() };
        // SAFETY: `send` and `recv` hold `count` values of `datatype` and outlive the request
        // (they are leaked below unless it completes); `comm` is the world communicator.
        let rc = unsafe {
            ffi::MPI_Iallreduce(
                send.as_ptr() as *const c_void,
                recv.as_mut_ptr() as *mut c_void,
                count,
                datatype,
                ffi::RSMPI_SUM,
                self.comm,
                &mut request,
            )
        };
        if rc != 0 {
            std::mem::forget((send, recv));
            return Err(self.failed(what, &format!("MPI error {rc}")));
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut done: c_int = 0;
            // SAFETY: `request` is the live request started above; the status is ignored.
            let rc = unsafe { ffi::MPI_Test(&mut request, &mut done, ffi::RSMPI_STATUS_IGNORE) };
            if rc != 0 {
                std::mem::forget((send, recv));
                return Err(self.failed(what, &format!("MPI error {rc}")));
            }
            if done != 0 {
                break;
            }
            if Instant::now() > deadline {
                std::mem::forget((send, recv));
                return Err(self.failed(
                    what,
                    &format!(
                        "no answer within {} s (--collective-timeout)",
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
            std::thread::yield_now();
        }
        values.copy_from_slice(&recv);
        self.seconds
            .set(self.seconds.get() + (mpi::time() - started));
        Ok(())
    }

    fn failed(&self, what: &str, why: &str) -> TrainError {
        TrainError::Runtime(format!(
            "replica {} of {}: {what} failed: {why}; another replica has probably failed (see its message), so this one stops too",
            self.rank, self.size
        ))
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, values: &mut [f32], what: &str) -> Result<()> {
        // SAFETY: reading a predefined datatype handle.
        let t = unsafe { ffi::RSMPI_FLOAT };
        self.all_reduce(values, t, what)
    }
    fn sum_f64(&self, values: &mut [f64], what: &str) -> Result<()> {
        // SAFETY: reading a predefined datatype handle.
        let t = unsafe { ffi::RSMPI_DOUBLE };
        self.all_reduce(values, t, what)
    }
    fn seconds(&self) -> f64 {
        self.seconds.get()
    }
}
