//! Splitting work across the engine's fixed thread pool.

/// Where a kernel may run its parts: serially, or on a rayon pool owned by the engine.
#[derive(Clone, Copy)]
pub struct Par<'a> {
    pool: Option<&'a rayon::ThreadPool>,
    team: Option<&'a crate::team::Team>,
    threads: usize,
}

impl<'a> Par<'a> {
    /// Runs everything on the calling thread.
    pub const SERIAL: Par<'static> = Par {
        pool: None,
        team: None,
        threads: 1,
    };

    /// Uses `pool` (which has `threads` workers).
    pub fn new(pool: Option<&'a rayon::ThreadPool>, threads: usize) -> Self {
        Par {
            pool,
            team: None,
            threads: threads.max(1),
        }
    }

    /// Uses `team` (serially without one).
    pub(crate) fn team(team: Option<&'a crate::team::Team>) -> Self {
        Par {
            pool: None,
            team,
            threads: team.map_or(1, |t| t.threads()),
        }
    }

    /// Number of threads available.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(i, item)` for every item, in parallel when a pool or a team is present and there
    /// is more than one item. Items are typically disjoint `&mut` chunks of an output buffer.
    pub fn run<T: Send>(&self, items: Vec<T>, f: impl Fn(usize, T) + Sync) {
        if let Some(team) = self.team.filter(|_| items.len() > 1) {
            // Thread `t` takes items `t`, `t + threads`, …
            let (n, step) = (items.len(), team.threads());
            let slots: Vec<std::sync::Mutex<Option<T>>> = items
                .into_iter()
                .map(|x| std::sync::Mutex::new(Some(x)))
                .collect();
            team.run(&|tid| {
                for i in (tid..n).step_by(step) {
                    let item = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(item) = item {
                        f(i, item);
                    }
                }
            });
            return;
        }
        match self.pool {
            Some(pool) if items.len() > 1 && self.threads > 1 => {
                let f = &f;
                pool.scope(|s| {
                    for (i, item) in items.into_iter().enumerate() {
                        s.spawn(move |_| f(i, item));
                    }
                });
            }
            _ => {
                for (i, item) in items.into_iter().enumerate() {
                    f(i, item);
                }
            }
        }
    }
}

/// A raw output pointer handed to the threads of one [`Par::run`], each of which writes only its
/// own disjoint elements (column blocks, channel ranges) of the buffer behind it.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the threads sharing a `SendPtr` touch disjoint elements (the callers' contract).
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`: sharing a `&SendPtr` only hands out the pointer, and the threads that
// write through it touch disjoint elements.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// The engines' worker count (`0`: every available core) and their team (none for one thread),
/// its helpers named `prefix-i`.
pub(crate) fn engine_team(
    threads: usize,
    prefix: &str,
) -> crate::error::Result<(usize, Option<crate::team::Team>)> {
    let threads = resolve_threads(threads);
    if threads == 1 {
        return Ok((1, None));
    }
    let team = crate::team::Team::new(threads, prefix)
        .map_err(|e| crate::error::RuntimeError::Threads(e.to_string()))?;
    Ok((threads, Some(team)))
}

/// `threads`, or every available core for 0.
pub(crate) fn resolve_threads(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
}

/// Splits `rows` rows into at most `parts` contiguous ranges of nearly equal size, each a multiple
/// of `align` rows except possibly the last. Returns the row count of each range.
pub fn split_rows(rows: usize, parts: usize, align: usize) -> Vec<usize> {
    let parts = parts.max(1);
    let align = align.max(1);
    let per = rows.div_ceil(parts).div_ceil(align) * align;
    let mut out = Vec::with_capacity(parts);
    let mut left = rows;
    while left > 0 {
        let take = per.min(left);
        out.push(take);
        left -= take;
    }
    out
}

/// Cuts `buf` into consecutive chunks of `sizes[i] * row_len` elements.
pub fn chunks_by<'b, T>(mut buf: &'b mut [T], sizes: &[usize], row_len: usize) -> Vec<&'b mut [T]> {
    let mut out = Vec::with_capacity(sizes.len());
    for &s in sizes {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(s * row_len);
        out.push(head);
        buf = tail;
    }
    out
}

/// Splits `n` items into at most `parts` contiguous ranges as [`split_rows`] does (each a multiple
/// of `align` items but possibly the last).
pub(crate) fn split_ranges(n: usize, parts: usize, align: usize) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    split_rows(n, parts, align)
        .into_iter()
        .map(|k| {
            start += k;
            start - k..start
        })
        .collect()
}

/// Cuts `buf` into consecutive pieces of `sizes[i]` rows of `row_len` elements: each piece with
/// the index of its first row.
pub(crate) fn pieces<'b>(
    buf: &'b mut [f32],
    sizes: &[usize],
    row_len: usize,
) -> Vec<(&'b mut [f32], usize)> {
    let rows: usize = sizes.iter().sum();
    let mut first = 0;
    chunks_by(&mut buf[..rows * row_len], sizes, row_len)
        .into_iter()
        .zip(sizes)
        .map(|(chunk, &p)| {
            first += p;
            (chunk, first - p)
        })
        .collect()
}

/// Splits the first `rows` rows of `row_len` elements of `buf` into one contiguous range per
/// thread (see [`split_rows`]): each piece with the index of its first row.
pub(crate) fn row_pieces(
    buf: &mut [f32],
    rows: usize,
    row_len: usize,
    threads: usize,
) -> Vec<(&mut [f32], usize)> {
    pieces(buf, &split_rows(rows, threads, 1), row_len)
}

/// Calls `f(row, chunk)` for each of the `rows` consecutive rows of `row_len` elements of `out`,
/// the rows split into one contiguous range per thread.
pub(crate) fn for_rows(
    par: Par,
    out: &mut [f32],
    rows: usize,
    row_len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    par.run(
        row_pieces(out, rows, row_len, par.threads()),
        |_, (chunk, first)| {
            for (i, row) in chunk.chunks_exact_mut(row_len.max(1)).enumerate() {
                f(first + i, row);
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rows_covers_all_rows() {
        for rows in 0..40 {
            for parts in 1..5 {
                for align in 1..4 {
                    let s = split_rows(rows, parts, align);
                    assert_eq!(s.iter().sum::<usize>(), rows);
                    assert!(s.len() <= parts);
                    assert!(s.iter().all(|&x| x > 0));
                }
            }
        }
    }

    #[test]
    fn run_visits_every_item_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut data = vec![0u32; 10];
        let sizes = split_rows(10, 3, 1);
        let chunks = chunks_by(&mut data, &sizes, 1);
        Par::new(Some(&pool), 2).run(chunks, |i, c| {
            for v in c.iter_mut() {
                *v += i as u32 + 1;
            }
        });
        assert_eq!(data, vec![1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
    }
}
