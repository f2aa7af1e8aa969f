//! Chapter 9: where a training run stands, the part of a checkpoint that is neither weights nor
//! velocities: its position, its hyperparameters and the figures of every epoch done.

use crate::kernels::{ConvAlgorithm, Precision};
use crate::model::StepStats;
use crate::train::{EpochStats, LrSchedule};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ANCHOR: train_state
/// Where a training run stands, everything `--resume` needs to continue it exactly, beyond
/// the weights and the velocities. The other hyperparameters live where they act and are saved
/// from there: the learning rate and momentum in [`Sgd`](crate::train::Sgd), the image size in
/// [`CatDogCnn`](crate::model::CatDogCnn).
///
/// A trainer calls [`TrainState::record_batch`] after every step and
/// [`TrainState::finish_epoch`] after every epoch; a checkpoint saved between two batches
/// resumes at the next one.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Identifies the run: drawn when it starts, the same in all its checkpoints.
    pub run_id: u64,
    /// Optimiser steps since the start of the run, over all epochs.
    pub step: u64,
    /// The seed of every random choice of the run (initial weights, epoch order, augmentation).
    pub seed: u64,
    pub hyper: Hyperparameters,
    /// Epochs completed.
    pub epoch: usize,
    /// Batches completed in the current epoch (number `epoch`, counting from 0).
    pub batch: usize,
    /// The running loss and accuracy of the current epoch's batches so far.
    pub current: EpochStats,
    /// Seconds spent training in the current epoch so far.
    pub current_seconds: f64,
    /// One entry per completed epoch, for the curves.
    pub history: Vec<EpochMetrics>,
}

/// The choices of a run that neither the model nor the optimiser holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyperparameters {
    /// Images per step.
    pub batch_size: usize,
    /// Random crops and horizontal flips of the training images.
    pub augment: bool,
    /// The fraction of the training images held out for validation, in [0, 1).
    pub val_fraction: f64,
    /// Epochs the run was asked for.
    pub epochs: usize,
    /// The learning rate the schedule starts from (the optimiser holds the current one).
    pub base_lr: f32,
    pub schedule: LrSchedule,
    /// Only this many images of the data set (a seeded choice), if set.
    pub limit: Option<usize>,
    /// How the convolutions are computed (chapter 10); a resumed run keeps it.
    pub conv: ConvAlgorithm,
    /// What the convolutions multiply, fp32 or bf16 (chapter 11); a resumed run keeps it.
    pub precision: Precision,
}

/// What one epoch measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1 for the first epoch.
    pub epoch: usize,
    /// Mean loss over the epoch's training batches (weights changing under it).
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    /// Fraction of training images classified right during the epoch.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_accuracy: f64,
    /// Mean loss on the validation images after the epoch, if there are any.
    pub val_loss: Option<f64>,
    /// Fraction of validation images classified right after the epoch, if there are any.
    pub val_accuracy: Option<f64>,
    /// Seconds of training (without the validation).
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
}
// ANCHOR_END: train_state

/// JSON has no NaN: serde_json writes it as `null`, which reads back as NaN here.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl EpochMetrics {
    /// The figures as a JSON object (`null` for a missing validation figure): the form of the
    /// history in a checkpoint and of the trainer's per-epoch lines.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl TrainState {
    /// The state of a run about to start: a fresh run id, nothing done yet.
    pub fn new(seed: u64, hyper: Hyperparameters) -> Self {
        TrainState {
            run_id: new_run_id(),
            step: 0,
            seed,
            hyper,
            epoch: 0,
            batch: 0,
            current: EpochStats::default(),
            current_seconds: 0.0,
            history: Vec::new(),
        }
    }

    /// Counts one optimiser step on a batch of `batch_len` images.
    pub fn record_batch(&mut self, stats: StepStats, batch_len: usize) {
        self.step += 1;
        self.batch += 1;
        self.current.add(stats, batch_len);
    }

    /// Closes the current epoch: its training figures and the given validation figures go into
    /// [`TrainState::history`], and the next epoch starts at batch 0. `seconds` is the epoch's
    /// whole training time, [`TrainState::current_seconds`] included when the epoch was resumed.
    pub fn finish_epoch(&mut self, val_loss: Option<f64>, val_accuracy: Option<f64>, seconds: f64) -> EpochMetrics {
        let metrics = EpochMetrics {
            epoch: self.epoch + 1,
            train_loss: self.current.mean_loss(),
            train_accuracy: self.current.accuracy(),
            val_loss,
            val_accuracy,
            seconds,
        };
        self.history.push(metrics);
        self.epoch += 1;
        self.batch = 0;
        self.current = EpochStats::default();
        self.current_seconds = 0.0;
        metrics
    }
}

/// A run id that differs from one run to the next: std's per-process random hash keys, mixed
/// with the clock.
fn new_run_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    hasher.write_u128(now);
    hasher.finish()
}
