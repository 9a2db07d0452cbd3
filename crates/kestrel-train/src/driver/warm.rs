//! Keeping the rayon pool's other workers awake through a training loop.
//!
//! A training step is hundreds of parallel operations (Burn's and kestrel's kernels, each split
//! over the pool) separated by short serial stretches: autodiff bookkeeping, allocation, the
//! optimiser's per-tensor calls. A rayon worker that finds no work for a few dozen rounds goes to
//! sleep, and the next operation then waits for it to be woken: a futex call and, on a virtual
//! machine, the host rescheduling the idle virtual CPU — tens of microseconds, hundreds of times a
//! step. For as long as a [`WarmWorkers`] lives, every other worker of the caller's pool runs a
//! job that takes whatever work the pool has (`rayon::yield_now`) and otherwise spins, handing its
//! core to any other runnable thread every 64 idle polls, never sleeping.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// While alive, the other workers of the calling worker's rayon pool poll for work instead of
/// sleeping. Dropping it lets them sleep again (it waits until they have stopped polling).
pub struct WarmWorkers {
    state: Option<Arc<State>>,
}

struct State {
    stop: AtomicBool,
    polling: AtomicUsize,
}

impl WarmWorkers {
    /// Starts polling on every worker of the caller's pool but the caller's own. Does nothing
    /// outside a pool or in a pool of one thread.
    pub fn start() -> WarmWorkers {
        let Some(me) = rayon::current_thread_index() else {
            return WarmWorkers { state: None };
        };
        if rayon::current_num_threads() < 2 {
            return WarmWorkers { state: None };
        }
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            polling: AtomicUsize::new(0),
        });
        let s = Arc::clone(&state);
        rayon::spawn_broadcast(move |ctx| {
            // The caller's own copy returns at once (it runs whenever the caller next waits
            // inside rayon), as does a late one after the guard is gone.
            if ctx.index() == me || s.stop.load(Ordering::Acquire) {
                return;
            }
            s.polling.fetch_add(1, Ordering::AcqRel);
            let mut idle = 0u32;
            while !s.stop.load(Ordering::Acquire) {
                match rayon::yield_now() {
                    Some(rayon::Yield::Executed) => idle = 0,
                    // Nothing to take: now and then let any other thread of this core (a data
                    // loader) run.
                    _ => {
                        idle = idle.wrapping_add(1);
                        if idle.is_multiple_of(64) {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
            s.polling.fetch_sub(1, Ordering::AcqRel);
        });
        WarmWorkers { state: Some(state) }
    }
}

impl Drop for WarmWorkers {
    fn drop(&mut self) {
        if let Some(s) = &self.state {
            s.stop.store(true, Ordering::Release);
            while s.polling.load(Ordering::Acquire) > 0 {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn work_still_runs_on_every_worker_and_the_guard_lets_go() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            let warm = WarmWorkers::start();
            let s = Arc::clone(warm.state.as_ref().expect("inside a pool of three"));
            // The two other workers take up polling (the caller does not).
            let t0 = std::time::Instant::now();
            while s.polling.load(Ordering::Acquire) < 2 {
                assert!(
                    t0.elapsed().as_secs() < 10,
                    "the other workers never polled"
                );
                std::thread::yield_now();
            }
            // Parallel work still runs to the right result while the others poll.
            for round in 0..200usize {
                let sum: usize = (0..64usize).into_par_iter().map(|i| i * round).sum();
                assert_eq!(sum, round * 64 * 63 / 2);
            }
            assert_eq!(s.polling.load(Ordering::Acquire), 2);
            drop(warm);
            assert_eq!(s.polling.load(Ordering::Acquire), 0);
            assert!(s.stop.load(Ordering::Acquire));
        });
        // Outside a pool: nothing to keep awake.
        assert!(WarmWorkers::start().state.is_none());
    }
}
