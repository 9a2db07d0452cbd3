//! A fixed team of threads that run one job together and wait for each other by spinning.
//!
//! An engine running one image splits every layer over its threads, and a small network meets at
//! a barrier dozens of times per image, a few microseconds of work apart. A rayon pool parks
//! idle workers, and waking a parked worker costs a system call and a scheduler hand-off each
//! time, several microseconds: a tenth of MobileNetV2's batch-1 time on two threads. The team's
//! helpers instead spin on a counter between jobs (as OpenMP and ONNX Runtime's pools do) and
//! park only after [`SPINS`] idle rounds, so a job that follows another within tens of
//! microseconds starts at once; one after a longer pause pays one wake-up.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Idle rounds (each a spin-loop hint) a helper waits for the next job before it parks: some
/// tens of microseconds.
const SPINS: u32 = 20_000;

/// A job: called once on every thread with the thread's index (the caller's is 0).
type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Bumped to start a job.
    epoch: AtomicU64,
    /// Helpers that have finished the current job.
    done: AtomicUsize,
    /// Helpers parked (or about to park) on `wake`.
    parked: AtomicUsize,
    quit: AtomicBool,
    /// The current job, set before `epoch` is bumped and valid until every helper is done.
    job: UnsafeCell<Option<*const Job>>,
    /// The first panic of a helper in the current job.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the team's owner while no helper reads it (before bumping
// `epoch`, after every helper reported `done`), and read by helpers only between those points;
// the job it points to is `Sync`. Everything else is atomics and mutexes.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A team of `threads` threads: the caller of [`Team::run`] and `threads − 1` helpers.
pub(crate) struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
}

impl Team {
    /// Starts `threads − 1` helpers named `prefix-i`.
    pub(crate) fn new(threads: usize, prefix: &str) -> std::io::Result<Team> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            quit: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            panic: Mutex::new(None),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut helpers = Vec::new();
        for tid in 1..threads.max(1) {
            let sh = Arc::clone(&shared);
            let h = std::thread::Builder::new()
                .name(format!("{prefix}-{tid}"))
                .spawn(move || helper(&sh, tid));
            match h {
                Ok(h) => helpers.push(h),
                Err(e) => {
                    stop(&shared, std::mem::take(&mut helpers));
                    return Err(e);
                }
            }
        }
        Ok(Team { shared, helpers })
    }

    /// Threads in the team, the caller included.
    pub(crate) fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `f(i)` on every thread `i` of the team (the caller is 0) and returns when all have
    /// finished. A panic in any of them is resumed here once all have finished.
    pub(crate) fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        let sh = &*self.shared;
        let helpers = self.helpers.len();
        if helpers == 0 {
            return f(0);
        }
        // SAFETY: every helper finished the last job (`run` waits for them below), so none reads
        // `job` now. The pointer's lifetime is erased: it is used only until every helper has
        // reported `done` for this job, before `run` returns and `f` goes out of scope.
        unsafe {
            let p: *const (dyn Fn(usize) + Sync + '_) = f;
            *sh.job.get() = Some(std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const Job,
            >(p));
        }
        sh.done.store(0, SeqCst);
        sh.epoch.fetch_add(1, SeqCst);
        if sh.parked.load(SeqCst) > 0 {
            let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        let mut spins = 0u32;
        while sh.done.load(SeqCst) < helpers {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: every helper is done with the job.
        unsafe { *sh.job.get() = None };
        let theirs = sh.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        stop(&self.shared, std::mem::take(&mut self.helpers));
    }
}

/// Tells the helpers to leave and joins them.
fn stop(sh: &Shared, helpers: Vec<JoinHandle<()>>) {
    sh.quit.store(true, SeqCst);
    {
        let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
        sh.wake.notify_all();
    }
    for h in helpers {
        let _ = h.join();
    }
}

/// A helper's life: wait for a new epoch (spinning, then parked), run the job, report.
fn helper(sh: &Shared, tid: usize) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        loop {
            if sh.quit.load(SeqCst) {
                return;
            }
            if sh.epoch.load(SeqCst) != seen {
                break;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            // Park. `parked` goes up before `epoch` is read again, so an owner that bumps the
            // epoch either sees a parked helper (and wakes it under the lock) or is seen here.
            let mut g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.parked.fetch_add(1, SeqCst);
            while sh.epoch.load(SeqCst) == seen && !sh.quit.load(SeqCst) {
                g = sh.wake.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            sh.parked.fetch_sub(1, SeqCst);
            drop(g);
            spins = 0;
        }
        seen = sh.epoch.load(SeqCst);
        // SAFETY: the owner set `job` before bumping the epoch and keeps it (and the closure)
        // alive until this helper reports `done` below.
        let job = unsafe { (*sh.job.get()).expect("a job is set for a new epoch") };
        // SAFETY: as above.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)(tid) }));
        if let Err(p) = r {
            let mut slot = sh.panic.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(p);
        }
        sh.done.fetch_add(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_thread_runs_every_job_once() {
        let team = Team::new(3, "t").unwrap();
        assert_eq!(team.threads(), 3);
        let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        for round in 0..2000 {
            if round == 1000 {
                // Long enough for the helpers to park: the next job must wake them.
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            team.run(&|tid| {
                hits[tid].fetch_add(1, SeqCst);
            });
        }
        for h in &hits {
            assert_eq!(h.load(SeqCst), 2000);
        }
    }

    #[test]
    fn a_helper_panic_reaches_the_caller_and_the_team_goes_on() {
        let team = Team::new(2, "t").unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(&|tid| {
                if tid == 1 {
                    panic!("helper failed");
                }
            })
        }));
        let msg = r.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"helper failed"));
        let n = AtomicUsize::new(0);
        team.run(&|_| {
            n.fetch_add(1, SeqCst);
        });
        assert_eq!(n.load(SeqCst), 2);
    }
}
