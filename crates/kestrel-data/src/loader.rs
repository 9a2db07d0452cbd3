//! A batch loader that reads, decodes and augments on worker threads ahead of the consumer.
//!
//! The caller plans an epoch as a list of batches, each a list of [`PlannedSample`]s (an item and
//! its own seed), and hands the plan to [`Loader::spawn`] with a [`BatchSource`] that turns one
//! planned sample into values. Workers take batches in plan order, at most `prefetch` batches
//! ahead of the consumer, and the iterator yields them in plan order. Since every random draw of
//! a sample comes from its planned seed, the batches are the same whatever the number of
//! workers. The first error (in plan order) is yielded and ends the iteration; dropping the
//! loader stops and joins its workers.

use crate::error::DataError;
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// One sample of a planned batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedSample {
    /// The item's index in the source.
    pub index: usize,
    /// The sample's own seed: every random draw of its augmentation comes from it.
    pub seed: u64,
}

/// `indices` as planned samples, in order, each with its own seed: the next draw of `seeds`.
/// Drawing the seeds here, in epoch order, fixes every sample's augmentation whatever worker
/// loads it.
pub fn plan_samples(
    indices: impl IntoIterator<Item = usize>,
    seeds: &mut Rng,
) -> Vec<PlannedSample> {
    indices
        .into_iter()
        .map(|index| PlannedSample {
            index,
            seed: seeds.next_u64(),
        })
        .collect()
}

/// Something that turns planned samples into flat values, e.g. decoded, augmented and
/// normalised CHW images.
pub trait BatchSource: Send + Sync {
    /// Number of values of one sample (e.g. 3 · H · W).
    fn sample_len(&self) -> usize;
    /// Appends the `sample_len()` values of `sample` to `out` and returns its label. Errors name
    /// the item (its file, when it has one).
    fn load(&self, sample: PlannedSample, out: &mut Vec<f32>) -> Result<usize, DataError>;
}

/// A loaded batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Position of the batch in the plan.
    pub position: usize,
    /// `samples.len() × sample_len` values, sample after sample.
    pub values: Vec<f32>,
    /// Label of each sample.
    pub labels: Vec<usize>,
    /// The planned samples, in order.
    pub samples: Vec<PlannedSample>,
}

/// How many threads load and how far ahead they may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Batches loaded ahead of the consumer, counting the one being loaded (at least 1).
    pub prefetch: usize,
}

impl Default for LoaderOptions {
    /// Two workers, four batches ahead.
    fn default() -> Self {
        Self {
            workers: 2,
            prefetch: 4,
        }
    }
}

/// Progress shared by the workers and the consumer.
struct Window {
    /// The next batch a worker may claim.
    next: usize,
    /// Batches the consumer has taken.
    consumed: usize,
    /// Set when the consumer stops early or an error ends the epoch.
    stop: bool,
}

struct Shared {
    window: Mutex<Window>,
    wake: Condvar,
}

impl Shared {
    /// Blocks until batch `next` is within `prefetch` of the consumer, claims it and returns
    /// its position; `None` once the plan is exhausted or the loader stops.
    fn claim(&self, total: usize, prefetch: usize) -> Option<usize> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if w.stop || w.next >= total {
                return None;
            }
            if w.next < w.consumed + prefetch {
                w.next += 1;
                return Some(w.next - 1);
            }
            w = self.wake.wait(w).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn update(&self, f: impl FnOnce(&mut Window)) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut w);
        self.wake.notify_all();
    }
}

type Outcome = (usize, Result<Batch, DataError>);

/// An iterator of batches loaded on worker threads; see the module documentation.
pub struct Loader {
    shared: Arc<Shared>,
    results: Receiver<Outcome>,
    pending: BTreeMap<usize, Result<Batch, DataError>>,
    next: usize,
    total: usize,
    workers: Vec<JoinHandle<()>>,
    finished: bool,
}

/// Loads one planned batch.
fn load_batch(
    source: &dyn BatchSource,
    position: usize,
    samples: &[PlannedSample],
) -> Result<Batch, DataError> {
    let mut values = Vec::with_capacity(samples.len() * source.sample_len());
    let mut labels = Vec::with_capacity(samples.len());
    for &s in samples {
        let before = values.len();
        labels.push(source.load(s, &mut values)?);
        if values.len() - before != source.sample_len() {
            return Err(DataError::value(
                "sample",
                format!(
                    "item {} gave {} values: expected {}",
                    s.index,
                    values.len() - before,
                    source.sample_len()
                ),
            ));
        }
    }
    Ok(Batch {
        position,
        values,
        labels,
        samples: samples.to_vec(),
    })
}

impl Loader {
    /// Starts loading `plan` (a list of batches) from `source`.
    pub fn spawn(
        source: Arc<dyn BatchSource>,
        plan: Vec<Vec<PlannedSample>>,
        options: LoaderOptions,
    ) -> Self {
        let total = plan.len();
        let prefetch = options.prefetch.max(1);
        let plan = Arc::new(plan);
        let shared = Arc::new(Shared {
            window: Mutex::new(Window {
                next: 0,
                consumed: 0,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let (tx, results) = mpsc::channel::<Outcome>();
        let workers = (0..options.workers.max(1).min(total.max(1)))
            .map(|_| {
                let (source, plan, shared, tx) =
                    (source.clone(), plan.clone(), shared.clone(), tx.clone());
                std::thread::spawn(move || {
                    while let Some(b) = shared.claim(plan.len(), prefetch) {
                        let outcome = load_batch(source.as_ref(), b, &plan[b]);
                        if tx.send((b, outcome)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Self {
            shared,
            results,
            pending: BTreeMap::new(),
            next: 0,
            total,
            workers,
            finished: false,
        }
    }

    /// Number of batches in the plan.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the plan has no batches.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn stop(&mut self) {
        self.finished = true;
        self.shared.update(|w| w.stop = true);
        for h in self.workers.drain(..) {
            // A worker that panicked has already reported nothing more; the consumer saw the
            // channel close.
            let _ = h.join();
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished || self.next >= self.total {
            if !self.finished {
                self.stop();
            }
            return None;
        }
        let outcome = loop {
            if let Some(o) = self.pending.remove(&self.next) {
                break o;
            }
            match self.results.recv() {
                Ok((b, o)) => {
                    self.pending.insert(b, o);
                }
                Err(_) => {
                    // Every worker is gone without sending this batch: one panicked.
                    self.stop();
                    return Some(Err(DataError::value(
                        "loader",
                        format!("a worker thread died before loading batch {}", self.next),
                    )));
                }
            }
        };
        self.next += 1;
        let consumed = self.next;
        self.shared.update(|w| w.consumed = consumed);
        if outcome.is_err() {
            self.stop();
        }
        Some(outcome)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Splits `samples` into batches of `batch_size`, dropping an incomplete last batch when
/// `drop_last` is set.
pub fn chunk_plan(
    samples: &[PlannedSample],
    batch_size: usize,
    drop_last: bool,
) -> Vec<Vec<PlannedSample>> {
    let batch_size = batch_size.max(1);
    samples
        .chunks(batch_size)
        .filter(|c| !drop_last || c.len() == batch_size)
        .map(<[PlannedSample]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Item `i` is `len` values drawn from its seed, labelled `i % 3`; item `bad` fails as a
    /// named file; every load sleeps a little, at random, so workers finish out of order.
    struct Synthetic {
        len: usize,
        bad: Option<usize>,
        loads: AtomicUsize,
    }

    impl BatchSource for Synthetic {
        fn sample_len(&self) -> usize {
            self.len
        }
        fn load(&self, s: PlannedSample, out: &mut Vec<f32>) -> Result<usize, DataError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            if Some(s.index) == self.bad {
                return Err(DataError::Image {
                    path: PathBuf::from(format!("data/item{}.png", s.index)),
                    reason: "truncated".into(),
                });
            }
            let mut rng = Rng::new(s.seed);
            std::thread::sleep(std::time::Duration::from_micros(rng.below(300) as u64));
            out.extend((0..self.len).map(|_| rng.next_f64() as f32 + s.index as f32));
            Ok(s.index % 3)
        }
    }

    fn plan(n: usize, batch: usize) -> Vec<Vec<PlannedSample>> {
        let mut rng = Rng::new(11);
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        chunk_plan(&plan_samples(order, &mut rng), batch, true)
    }

    fn source(bad: Option<usize>) -> Arc<Synthetic> {
        Arc::new(Synthetic {
            len: 5,
            bad,
            loads: AtomicUsize::new(0),
        })
    }

    #[test]
    fn batches_are_the_same_for_any_number_of_workers() {
        let p = plan(103, 8);
        assert_eq!(p.len(), 12, "the incomplete 13th batch is dropped");
        // Reference: one batch after another on this thread.
        let src = source(None);
        let want: Vec<Batch> = p
            .iter()
            .enumerate()
            .map(|(i, b)| load_batch(src.as_ref(), i, b).unwrap())
            .collect();
        for workers in [1, 2, 4, 7] {
            for prefetch in [1, 3] {
                let got: Vec<Batch> =
                    Loader::spawn(source(None), p.clone(), LoaderOptions { workers, prefetch })
                        .collect::<Result<_, _>>()
                        .unwrap();
                assert_eq!(got, want, "{workers} workers, prefetch {prefetch}");
            }
        }
        assert_eq!(want[3].labels[0], want[3].samples[0].index % 3);
        assert_eq!(want[3].values.len(), 8 * 5);
    }

    #[test]
    fn prefetch_stays_bounded_and_ends_cleanly() {
        let src = source(None);
        let p = plan(200, 4);
        let mut loader = Loader::spawn(
            src.clone(),
            p.clone(),
            LoaderOptions {
                workers: 4,
                prefetch: 3,
            },
        );
        let first = loader.next().unwrap().unwrap();
        assert_eq!(first.position, 0);
        std::thread::sleep(std::time::Duration::from_millis(50));
        // One consumed, so at most 1 + 3 batches may have been started.
        let loads = src.loads.load(Ordering::SeqCst);
        assert!(
            loads <= 4 * 4,
            "{loads} samples loaded ahead of a slow consumer"
        );
        assert_eq!(loader.by_ref().count(), p.len() - 1);
        assert!(loader.next().is_none(), "stays finished");
        drop(loader);
        // Early drop: workers stop and join (the test would hang otherwise).
        let mut early = Loader::spawn(source(None), p, LoaderOptions::default());
        assert!(early.next().unwrap().is_ok());
        drop(early);
        assert_eq!(
            Loader::spawn(source(None), Vec::new(), LoaderOptions::default()).count(),
            0
        );
    }

    #[test]
    fn an_error_is_yielded_in_order_naming_the_file_and_ends_the_epoch() {
        let p = plan(64, 8);
        let bad_batch = 5;
        let bad = p[bad_batch][2].index;
        let out: Vec<Result<Batch, DataError>> = Loader::spawn(
            source(Some(bad)),
            p,
            LoaderOptions {
                workers: 4,
                prefetch: 4,
            },
        )
        .collect();
        assert_eq!(out.len(), bad_batch + 1, "nothing after the error");
        assert!(out[..bad_batch].iter().all(Result::is_ok));
        let e = out[bad_batch].as_ref().unwrap_err().to_string();
        assert!(e.contains(&format!("data/item{bad}.png")), "{e}");
    }
}
