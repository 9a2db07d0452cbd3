//! Process-wide thread settings.
//!
//! Burn's operations and kestrel's kernels split their work over rayon's global pool. Called
//! from a thread outside the pool (the main thread, by default), every parallel operation hands
//! its work to the pool's threads, wakes them and sleeps until they finish: two context switches
//! and a wake-up latency per operation, and hundreds of operations per training step on small
//! tensors. With the main thread as one of the pool's threads, it works on its own operations
//! and the others steal from it, as PyTorch's OpenMP team includes its calling thread.

/// Makes the calling (main) thread one of the global pool's threads: the pool keeps its size
/// (`RAYON_NUM_THREADS`, or one thread per core) and spawns one thread fewer. Left alone when the
/// pool would have one thread: work handed to the pool from another thread (a loader) would then
/// wait for the main thread to enter rayon.
pub fn main_thread_joins_pool() {
    // What rayon would choose (asking rayon itself would build the pool).
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    if threads < 2 {
        return;
    }
    // An error means the global pool exists already; then it stays as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .build_global();
}
