//! Epochs of batches, each assembled on a background thread while the previous one trains.

use super::split::sub_seed;
use super::{Batch, CatDog, CatDogError};
use crate::tensor::init::{Rng, rng};
use rand::seq::SliceRandom;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// What a [`Loader`] serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderOptions {
    pub batch_size: usize,
    /// A new order every epoch (else the order of the indices).
    pub shuffle: bool,
    /// A random crop and flip of every image ([`super::Augment::random`]).
    pub augment: bool,
    /// Leave out the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Seeds the shuffles and the augmentation: the same seed gives the same batches.
    pub seed: u64,
    /// Batches prepared ahead of the one being used (at least 1).
    pub prefetch: usize,
}

impl LoaderOptions {
    /// For training: shuffled, full batches only, no augmentation (see [`LoaderOptions::augmented`]).
    pub fn train(batch_size: usize, seed: u64) -> LoaderOptions {
        LoaderOptions { batch_size, shuffle: true, augment: false, drop_last: true, seed, prefetch: 2 }
    }

    /// For evaluation: every image once, in order, unchanged.
    pub fn eval(batch_size: usize) -> LoaderOptions {
        LoaderOptions { batch_size, shuffle: false, augment: false, drop_last: false, seed: 0, prefetch: 2 }
    }

    /// The same options with augmentation on.
    pub fn augmented(self) -> LoaderOptions {
        LoaderOptions { augment: true, ..self }
    }
}

/// Serves the images `indices` of a data set in batches, one epoch at a time.
#[derive(Clone)]
pub struct Loader {
    data: CatDog,
    indices: Vec<usize>,
    options: LoaderOptions,
}

/// A summary: the indices are too many to print.
impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("len", &self.len()).field("options", &self.options).finish_non_exhaustive()
    }
}

impl CatDog {
    /// A [`Loader`] of images `indices` (e.g. `split.train`) of this data set.
    pub fn loader(&self, indices: &[usize], options: LoaderOptions) -> Loader {
        Loader::new(self, indices, options)
    }
}

impl Loader {
    /// # Panics
    /// If `options.batch_size` is 0 or an index is out of range.
    pub fn new(data: &CatDog, indices: &[usize], options: LoaderOptions) -> Loader {
        assert!(options.batch_size > 0, "batches hold at least one image");
        assert!(indices.iter().all(|&i| i < data.len()), "an index is past the {} images", data.len());
        Loader { data: data.clone(), indices: indices.to_vec(), options }
    }

    /// Images per epoch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    pub fn options(&self) -> &LoaderOptions {
        &self.options
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.indices.len(), self.options.batch_size);
        if self.options.drop_last { n / b } else { n.div_ceil(b) }
    }

    /// The order of the images in `epoch`: the indices shuffled by a generator seeded from
    /// `(seed, epoch)`, or as given.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order = self.indices.clone();
        if self.options.shuffle {
            order.shuffle(&mut order_rng(self.options.seed, epoch));
        }
        order
    }

    // ANCHOR: epoch
    /// The batches of `epoch`. A background thread reads and converts them and keeps
    /// `prefetch` of them ready, so the trainer never waits for the disk or the conversion.
    /// Batch `b` is augmented with a generator seeded from `(seed, epoch, b)`, so the batches do
    /// not depend on timing. Dropping the iterator early stops the thread.
    pub fn epoch(&self, epoch: u64) -> EpochBatches {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch `first` on, as [`Loader::epoch`] would give them after
    /// `first` batches: a resumed run skips the batches it had done without reading them.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> EpochBatches {
        let (tx, rx) = sync_channel(self.options.prefetch.max(1));
        let (data, options, order) = (self.data.clone(), self.options.clone(), self.order(epoch));
        let batches = self.batches_per_epoch();
        let worker = std::thread::spawn(move || {
            for (b, indices) in order.chunks(options.batch_size).take(batches).enumerate().skip(first) {
                let mut augment = options.augment.then(|| augment_rng(options.seed, epoch, b));
                let batch = data.batch(indices, augment.as_mut());
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return; // the epoch was abandoned, or a read failed and the error is on its way
                }
            }
        });
        EpochBatches { rx: Some(rx), worker: Some(worker), remaining: batches.saturating_sub(first) }
    }
    // ANCHOR_END: epoch
}

// ANCHOR: streams
/// The generator that shuffles epoch `epoch` of a run seeded with `seed`.
fn order_rng(seed: u64, epoch: u64) -> Rng {
    rng(sub_seed(seed, 1, epoch))
}

/// The generator that augments batch `b` of epoch `epoch` (a stream of its own, unrelated to the
/// shuffles and to the other batches).
fn augment_rng(seed: u64, epoch: u64, b: usize) -> Rng {
    rng(sub_seed(sub_seed(seed, 2, epoch), 3, b as u64))
}
// ANCHOR_END: streams

/// The batches of one epoch, from [`Loader::epoch`]. A read error ends the epoch after being
/// returned once.
#[derive(Debug)]
pub struct EpochBatches {
    rx: Option<Receiver<Result<Batch, CatDogError>>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Iterator for EpochBatches {
    type Item = Result<Batch, CatDogError>;

    fn next(&mut self) -> Option<Self::Item> {
        let received = self.rx.as_ref()?.recv();
        match received {
            Ok(batch) => {
                self.remaining = if batch.is_ok() { self.remaining.saturating_sub(1) } else { 0 };
                Some(batch)
            }
            Err(_) => {
                // The thread has finished. If it panicked (a bug, not bad data), so do we.
                self.rx = None;
                self.remaining = 0;
                if let Some(Err(panic)) = self.worker.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.rx = None; // the thread's next send fails, and it returns
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
