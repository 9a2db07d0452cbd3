//! Process-wide allocator settings.
//!
//! A training step allocates and frees tensors of tens of megabytes. glibc serves blocks above its
//! mmap threshold with fresh `mmap`s and returns them on `free`, so every such tensor costs page
//! faults and kernel zeroing of its pages, step after step (several percent of a MobileNet step
//! here). Raising the threshold to its maximum (32 MiB on 64-bit) and the trim threshold keeps
//! freed buffers in the heap for the next step, as PyTorch's caching allocators do.

/// Keeps freed large buffers for reuse (glibc on Linux; nothing elsewhere).
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
