//! The pieces of a training loop around the model and the optimiser: the order of an epoch, the
//! running statistics it reports, and the guard that stops a run whose loss has blown up. Both
//! trainers (MNIST in chapter 3, cats and dogs in chapter 9) use them.

use crate::model::StepStats;
use crate::tensor::init::{Rng, rng};
use rand::seq::SliceRandom;

// ANCHOR: epoch_order
/// The order in which the epochs visit the training examples: every epoch is a fresh random
/// permutation of `0..n`, drawn from a generator seeded once, so that a run is reproducible from
/// its seed and two epochs never see the examples in the same order.
#[derive(Clone, Debug)]
pub struct EpochOrder {
    order: Vec<usize>,
    rng: Rng,
}

impl EpochOrder {
    pub fn new(n: usize, seed: u64) -> Self {
        EpochOrder { order: (0..n).collect(), rng: rng(seed) }
    }

    /// Shuffles again and returns the order of the next epoch.
    pub fn next_epoch(&mut self) -> &[usize] {
        self.order.shuffle(&mut self.rng);
        &self.order
    }
}
// ANCHOR_END: epoch_order

// ANCHOR: epoch_stats
/// Mean loss and accuracy over the batches of one epoch so far. Each batch's mean loss is
/// weighted by its size, so a short last batch counts for what it is:
///
/// ```text
/// mean_loss = sum_b(loss_b * size_b) / sum_b(size_b)      accuracy = correct / seen
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochStats {
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

impl EpochStats {
    /// Adds one step's statistics for a batch of `batch` examples.
    pub fn add(&mut self, step: StepStats, batch: usize) {
        self.loss_sum += f64::from(step.loss) * batch as f64;
        self.correct += step.correct;
        self.seen += batch;
    }

    /// Examples seen so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Mean loss per example (0 before the first batch).
    pub fn mean_loss(&self) -> f64 {
        if self.seen == 0 { 0.0 } else { self.loss_sum / self.seen as f64 }
    }

    /// Fraction of examples classified right (0 before the first batch).
    pub fn accuracy(&self) -> f64 {
        if self.seen == 0 { 0.0 } else { self.correct as f64 / self.seen as f64 }
    }

    /// The running sums `(sum_b(loss_b * size_b), correct, seen)`, which a checkpoint saved in
    /// the middle of an epoch keeps so that the epoch's figures come out the same after a resume.
    pub fn sums(&self) -> (f64, usize, usize) {
        (self.loss_sum, self.correct, self.seen)
    }

    /// Statistics restored from [`EpochStats::sums`].
    pub fn from_sums(loss_sum: f64, correct: usize, seen: usize) -> Self {
        EpochStats { loss_sum, correct, seen }
    }
}
// ANCHOR_END: epoch_stats

// ANCHOR: loss_guard
/// Stops a run whose loss has blown up, before it wastes the rest of its epochs, without stopping
/// a healthy run over one bad batch. Two signs count:
///
/// - a batch loss that is NaN or infinite: nothing recovers from it, so the guard stops at once;
/// - a loss that *stays* far above where it started: the median of the last
///   [`LossGuard::WINDOW`] batch losses (fewer in a short run, see [`LossGuard::with_window`])
///   above [`LossGuard::FACTOR`] times the first batch's (or above `FACTOR` itself, if the first
///   loss was below 1).
///
/// A single batch may spike far higher (a small batch of hard examples right after a large
/// step does that, and the next steps bring it back down); the median ignores any spike shorter
/// than half the window. A learning rate that is too high keeps the loss up, batch after batch,
/// and then overflows.
#[derive(Clone, Debug)]
pub struct LossGuard {
    first: Option<f32>,
    /// How many batch losses the median is taken over.
    window: usize,
    /// The last `window` batch losses, oldest first.
    recent: std::collections::VecDeque<f32>,
}

impl Default for LossGuard {
    fn default() -> Self {
        LossGuard::with_window(Self::WINDOW)
    }
}

impl LossGuard {
    /// How many times the first loss the typical recent loss may reach.
    pub const FACTOR: f32 = 10.0;
    /// How many batches the guard looks at before it judges a finite loss.
    pub const WINDOW: usize = 16;

    pub fn new() -> Self {
        LossGuard::default()
    }

    /// A guard that judges the median of `window` batches (at least 3): a run of a few batches
    /// per epoch passes the number of its batches, so that a diverged epoch is caught within it.
    pub fn with_window(window: usize) -> Self {
        LossGuard { first: None, window: window.max(3), recent: Default::default() }
    }

    /// `Ok` while the loss looks sane; the first call sets the reference.
    pub fn check(&mut self, loss: f32) -> Result<(), Divergence> {
        if !loss.is_finite() {
            return Err(if loss.is_nan() { Divergence::NaN } else { Divergence::Infinite });
        }
        let first = *self.first.get_or_insert(loss);
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(loss);
        if self.recent.len() < self.window {
            return Ok(());
        }
        let mut sorted: Vec<f32> = self.recent.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[self.window / 2];
        if median > Self::FACTOR * first.max(1.0) {
            return Err(Divergence::Rose { first, median, window: self.window });
        }
        Ok(())
    }
}
// ANCHOR_END: loss_guard

/// A loss that stopped being a number, or stayed out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum Divergence {
    #[error("the loss is NaN")]
    NaN,
    #[error("the loss is infinite")]
    Infinite,
    /// The median of the last `window` batch losses reached [`LossGuard::FACTOR`] times the
    /// first batch's loss.
    #[error("the loss rose from {first:.4} to {median:.4} (the median of the last {window} batches)")]
    Rose { first: f32, median: f32, window: usize },
}
