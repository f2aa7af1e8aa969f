//! Chapter 9: the cat/dog training loop.
//!
//! The loop that `cargo run --example train_catdog` runs, in the library so that tests can run
//! it on small data sets: fresh runs and resumed ones, a validation pass and a checkpoint after
//! every epoch, a stop flag (Ctrl-C) that saves the exact position, and a guard that stops a run
//! whose loss blows up. The example adds the command line, the progress bars and the pictures.
//!
//! Every random choice of a run is drawn from its seed: the initial weights, the subset of
//! `--limit`, the split, the order of each epoch and the augmentation of each batch (a stream per
//! `(epoch, batch)`). Batches do not depend on timing and the parallel step does not depend on the
//! number of threads, so a run resumed from a checkpoint continues exactly as if it had never
//! stopped: the same weights, bit for bit.

use super::state::{EpochMetrics, Hyperparameters, TrainState};
use crate::checkpoint::{self, CheckpointError};
use crate::data::catdog::{CatDog, CatDogError, LoaderOptions, Split, sub_seed};
use crate::files;
use crate::kernels::{ConvAlgorithm, Isa, IsaError, Kernels, Precision};
use crate::model::{CatDogCnn, StepStats};
use crate::nn::loss;
use crate::parallel::{DataParallel, ParallelError};
use crate::tensor::init::rng;
use crate::train::{Divergence, EpochStats, LossGuard, LrSchedule, Sgd};
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Images per batch of the validation pass (it only runs forward, so larger batches are fine).
const EVAL_BATCH: usize = 64;

// ANCHOR: config
/// What a run is asked for. The default is the original recipe.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub momentum: f32,
    pub schedule: LrSchedule,
    pub seed: u64,
    /// Random horizontal flips and crops of the training images.
    pub augment: bool,
    /// Fraction of the images held out for validation.
    pub val_fraction: f64,
    /// Use only this many images (a seeded choice), for quick runs.
    pub limit: Option<usize>,
    pub threads: usize,
    /// The instruction set; the best available when `None`.
    pub isa: Option<Isa>,
    /// The convolutions (chapter 10); when `None`, for a new run the fastest the instruction set
    /// has ([`ConvAlgorithm::fastest_for`]; direct with bf16, which has no Winograd kernels), for
    /// a resumed one the checkpoint's.
    pub conv: Option<ConvAlgorithm>,
    /// What the convolutions multiply (chapter 11); when `None`, fp32 for a new run, the
    /// checkpoint's for a resumed one.
    pub precision: Option<Precision>,
    /// Where to save a checkpoint after every epoch and when stopped.
    pub save: Option<PathBuf>,
    /// Whether a new run may replace a checkpoint already at `save` (of another run, or of this
    /// one when it is not resumed). Without it, such a run refuses to start.
    pub overwrite: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            epochs: 10,
            batch_size: 16,
            lr: 0.01,
            momentum: 0.0,
            schedule: LrSchedule::Constant,
            seed: 0,
            augment: false,
            val_fraction: 0.2,
            limit: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            isa: None,
            conv: None,
            precision: None,
            save: None,
            overwrite: false,
        }
    }
}
// ANCHOR_END: config

/// Why a run could not start or go on, one line each.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Isa(#[from] IsaError),
    #[error("{0}")]
    Data(#[from] CatDogError),
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("{0}")]
    Threads(#[from] ParallelError),
    #[error("{0}")]
    Config(String),
    #[error(
        "{} already holds a checkpoint: continue it with --resume {}, or start over with --overwrite (it is replaced at the first save) or another --save",
        path.display(), path.display()
    )]
    WouldReplace { path: PathBuf },
    #[error("{}: cannot save there: {source}", path.display())]
    Unwritable { path: PathBuf, source: std::io::Error },
    #[error(
        "epoch {epoch}, batch {batch}: {divergence}. The run stopped{saved}; try a smaller --lr (this run had {lr}){momentum_hint}"
    )]
    Diverged { epoch: usize, batch: usize, divergence: Divergence, lr: f32, saved: String, momentum_hint: String },
}

/// What the trainer reports as it goes, for the caller to show.
#[derive(Debug)]
pub enum Event<'a> {
    /// An epoch begins (`epoch` counts from 1); `skip` batches of it were done before a resume.
    EpochStart { epoch: usize, batches: usize, skip: usize },
    /// A training step is done.
    Step { epoch: usize, batch: usize, stats: StepStats, running: &'a EpochStats, images_per_second: f64, lr: f32 },
    /// An epoch and its validation pass are done.
    EpochEnd { metrics: &'a EpochMetrics },
    /// A checkpoint was written.
    Saved { path: &'a Path },
}

/// How [`Trainer::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every epoch is done.
    Finished,
    /// The stop flag was raised; the position was saved if a save path was given.
    Stopped { epoch: usize, batch: usize },
}

/// A training run: the data, the network, the optimiser and where the run stands.
pub struct Trainer {
    config: Config,
    k: &'static Kernels,
    par: DataParallel,
    data: CatDog,
    split: Split,
    model: CatDogCnn,
    opt: Sgd,
    state: TrainState,
    /// The position (epochs done, batches done in the next) of the last checkpoint on disk.
    saved_at: Option<(usize, usize)>,
}

impl Trainer {
    /// A new run on `data`, as `config` asks.
    pub fn new(config: Config, data: CatDog) -> Result<Trainer, TrainError> {
        check(&config)?;
        check_outputs(&config, None)?;
        let config = Config { conv: Some(new_run_conv(&config)?), ..config };
        let size = data.image_size();
        let hyper = hyperparameters(&config);
        let model = CatDogCnn::new(size, size, config.seed);
        let opt = Sgd::new(config.lr, config.momentum);
        let state = TrainState::new(config.seed, hyper);
        Trainer::assemble(config, data, model, opt, state)
    }

    /// The run saved at `path`, to be continued. Everything that shapes the run (seed,
    /// learning rate, schedule, batch size, momentum, augmentation, split, limit) comes from
    /// the checkpoint, and `config` must not ask for something else; it may ask for more epochs
    /// (with a constant learning rate), other threads or another instruction set (the last
    /// changes the rounding, so the continuation is then no longer bit-identical).
    pub fn resume(path: &Path, config: Config, data: CatDog) -> Result<Trainer, TrainError> {
        check(&config)?;
        check_outputs(&config, Some(path))?;
        let size = data.image_size();
        let (model, opt, state) = checkpoint::load(path, Some((size, size)))?;
        let saved = &state.hyper;
        let mut differences = Vec::new();
        let mut differ = |what: &str, ours: String, theirs: String| {
            if ours != theirs {
                differences.push(format!("{what} {theirs} (asked: {ours})"));
            }
        };
        differ("--seed", config.seed.to_string(), state.seed.to_string());
        differ("--batch-size", config.batch_size.to_string(), saved.batch_size.to_string());
        differ("--lr", config.lr.to_string(), saved.base_lr.to_string());
        differ("--momentum", config.momentum.to_string(), opt.momentum.to_string());
        differ("--augment", config.augment.to_string(), saved.augment.to_string());
        differ("--val-fraction", config.val_fraction.to_string(), saved.val_fraction.to_string());
        differ("--schedule", config.schedule.to_string(), saved.schedule.to_string());
        differ("--limit", format!("{:?}", config.limit), format!("{:?}", saved.limit));
        if config.epochs != saved.epochs && saved.schedule != LrSchedule::Constant {
            differ("--epochs (fixed by the schedule)", config.epochs.to_string(), saved.epochs.to_string());
        }
        if !differences.is_empty() {
            return Err(TrainError::Config(format!(
                "{} was trained with {}; resume with the same settings",
                path.display(),
                differences.join(", ")
            )));
        }
        let mut state = state;
        state.hyper.epochs = config.epochs;
        state.hyper.conv = config.conv.unwrap_or(state.hyper.conv);
        state.hyper.precision = config.precision.unwrap_or(state.hyper.precision);
        let config = Config { conv: Some(state.hyper.conv), precision: Some(state.hyper.precision), ..config };
        let position = (state.epoch, state.batch);
        let mut trainer = Trainer::assemble(config, data, model, opt, state)?;
        // The position must be one this data set can reach: the same batches per epoch.
        let (batches, s) = (trainer.batches_per_epoch(), &trainer.state);
        let step = (s.epoch as u64).checked_mul(batches as u64).and_then(|n| n.checked_add(s.batch as u64));
        if s.batch >= batches.max(1) || step != Some(s.step) {
            return Err(TrainError::Config(format!(
                "{}: epoch {}, batch {}, step {} is not a position of a run with {batches} batches per epoch; \
                 was it trained on other photos?",
                path.display(),
                s.epoch,
                s.batch,
                s.step
            )));
        }
        trainer.saved_at = Some(position);
        Ok(trainer)
    }

    fn assemble(
        config: Config,
        data: CatDog,
        model: CatDogCnn,
        opt: Sgd,
        state: TrainState,
    ) -> Result<Trainer, TrainError> {
        check(&config)?;
        let isa = match config.isa {
            Some(isa) => isa,
            None => Kernels::best()?.isa(),
        };
        let k = Kernels::for_isa_precision(isa, config.conv.unwrap_or_default(), config.precision.unwrap_or_default())
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let par = DataParallel::new(config.threads)?;
        let split = split(&data, &config)?;
        if split.train.len() < config.batch_size {
            return Err(TrainError::Config(format!(
                "{} training images are fewer than one batch of {}",
                split.train.len(),
                config.batch_size
            )));
        }
        Ok(Trainer { config, k, par, data, split, model, opt, state, saved_at: None })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn kernels(&self) -> &'static Kernels {
        self.k
    }

    pub fn threads(&self) -> usize {
        self.par.threads()
    }

    pub fn data(&self) -> &CatDog {
        &self.data
    }

    pub fn split(&self) -> &Split {
        &self.split
    }

    pub fn model(&self) -> &CatDogCnn {
        &self.model
    }

    pub fn optimizer(&self) -> &Sgd {
        &self.opt
    }

    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// Batches per training epoch (the last, incomplete batch is dropped).
    pub fn batches_per_epoch(&self) -> usize {
        self.split.train.len() / self.config.batch_size
    }

    // ANCHOR: run
    /// Trains until every epoch is done or `stop` is raised (checked after every step).
    /// After every epoch: a validation pass, then a checkpoint if a save path was given.
    pub fn run(&mut self, stop: &AtomicBool, on: &mut dyn FnMut(Event)) -> Result<Outcome, TrainError> {
        let options = LoaderOptions {
            augment: self.config.augment,
            ..LoaderOptions::train(self.config.batch_size, self.state.seed)
        };
        let loader = self.data.loader(&self.split.train, options);
        let batches = loader.batches_per_epoch();
        let total_steps = (self.config.epochs * batches) as u64;
        let mut guard = LossGuard::with_window(batches.min(LossGuard::WINDOW));
        while self.state.epoch < self.config.epochs {
            let (epoch, skip) = (self.state.epoch, self.state.batch);
            on(Event::EpochStart { epoch: epoch + 1, batches, skip });
            let (started, seconds_before, seen_before) =
                (Instant::now(), self.state.current_seconds, self.state.current.seen());
            for batch in loader.epoch_from(epoch as u64, skip) {
                let batch = batch?;
                self.opt.lr = self.config.schedule.lr(self.config.lr, self.state.step, total_steps);
                // The guard sees the loss before any weight changes: a diverged step is not taken.
                let (x, labels) = (batch.x.as_slice(), &batch.labels[..]);
                let step =
                    self.par.train_step(&mut self.model, self.k, x, labels, &mut self.opt, |s| guard.check(s.loss));
                let stats = match step {
                    Ok(stats) => stats,
                    Err(divergence) => return Err(self.diverged(divergence)),
                };
                self.state.record_batch(stats, batch.len());
                let elapsed = started.elapsed().as_secs_f64();
                let images_per_second = (self.state.current.seen() - seen_before) as f64 / elapsed.max(1e-9);
                let running = &self.state.current;
                on(Event::Step {
                    epoch: epoch + 1,
                    batch: self.state.batch,
                    stats,
                    running,
                    images_per_second,
                    lr: self.opt.lr,
                });
                if stop.load(Ordering::Relaxed) {
                    self.state.current_seconds = seconds_before + elapsed;
                    let outcome = Outcome::Stopped { epoch: epoch + 1, batch: self.state.batch };
                    self.save_checkpoint(on)?;
                    return Ok(outcome);
                }
            }
            let seconds = seconds_before + started.elapsed().as_secs_f64();
            let (val_loss, val_accuracy) = match self.evaluate()? {
                Some((loss, accuracy)) => (Some(loss), Some(accuracy)),
                None => (None, None),
            };
            let metrics = self.state.finish_epoch(val_loss, val_accuracy, seconds);
            on(Event::EpochEnd { metrics: &metrics });
            self.save_checkpoint(on)?;
        }
        Ok(Outcome::Finished)
    }
    // ANCHOR_END: run

    // ANCHOR: evaluate
    /// Mean loss and accuracy on the validation images, or `None` when there are none.
    pub fn evaluate(&mut self) -> Result<Option<(f64, f64)>, TrainError> {
        if self.split.val.is_empty() {
            return Ok(None);
        }
        let loader = self.data.loader(&self.split.val, LoaderOptions::eval(EVAL_BATCH));
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut scratch = Vec::new();
        for batch in loader.epoch(0) {
            let batch = batch?;
            let logits = self.par.forward(&mut self.model, self.k, batch.x.as_slice());
            scratch.resize(logits.len(), 0.0);
            loss_sum += loss::bce_with_logits(self.k, logits, &batch.labels, &mut scratch) as f64 * batch.len() as f64;
            correct += logits.iter().zip(&batch.labels).filter(|&(&z, &t)| (z > 0.0) == (t > 0.5)).count();
        }
        let n = self.split.val.len() as f64;
        Ok(Some((loss_sum / n, correct as f64 / n)))
    }
    // ANCHOR_END: evaluate

    /// The probability of "dog" for each image of `x` (`[n, size, size, 3]` in [0, 1]).
    pub fn predict_proba(&mut self, x: &[f32]) -> Vec<f32> {
        self.par.predict_proba(&mut self.model, self.k, x)
    }

    fn save_checkpoint(&mut self, on: &mut dyn FnMut(Event)) -> Result<(), TrainError> {
        if let Some(path) = &self.config.save {
            checkpoint::save(path, &self.model, &self.opt, &self.state)?;
            self.saved_at = Some((self.state.epoch, self.state.batch));
            on(Event::Saved { path });
        }
        Ok(())
    }

    fn diverged(&self, divergence: Divergence) -> TrainError {
        let saved = match (&self.config.save, self.saved_at) {
            (Some(path), Some((epoch, batch))) => {
                format!(" and {} keeps the state after epoch {epoch}, batch {batch}", path.display())
            }
            _ => " before anything was saved".to_string(),
        };
        let momentum_hint = if self.opt.momentum > 0.0 {
            format!(" or less momentum (this run had {})", self.opt.momentum)
        } else {
            String::new()
        };
        TrainError::Diverged {
            epoch: self.state.epoch + 1,
            batch: self.state.batch + 1,
            divergence,
            lr: self.opt.lr,
            saved,
            momentum_hint,
        }
    }
}

/// The most epochs a run may ask for: a million epochs of the whole data set would take a
/// decade here, and the step counter (epochs x batches) stays far inside a `u64`.
pub const MAX_EPOCHS: usize = 1_000_000;
/// The most threads a pool may have: far more than any CPU's cores, far fewer than would take
/// minutes to start.
pub const MAX_THREADS: usize = 1024;

fn check(config: &Config) -> Result<(), TrainError> {
    let bad = |what: String| Err(TrainError::Config(what));
    if !(1..=MAX_EPOCHS).contains(&config.epochs) {
        return bad(format!("--epochs must be between 1 and {MAX_EPOCHS}, not {}", config.epochs));
    }
    if !(1..=MAX_THREADS).contains(&config.threads) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        return bad(format!(
            "--threads must be between 1 and {MAX_THREADS}, not {} (this machine has {cpus} logical CPUs)",
            config.threads
        ));
    }
    if config.batch_size == 0 {
        return bad("--batch-size must be at least 1".into());
    }
    if !(config.lr.is_finite() && config.lr > 0.0) {
        return bad(format!("--lr {} must be a positive number", config.lr));
    }
    if !(0.0..1.0).contains(&config.momentum) {
        return bad(format!("--momentum {} must be in [0, 1)", config.momentum));
    }
    if !(0.0..1.0).contains(&config.val_fraction) {
        return bad(format!("--val-fraction {} must be in [0, 1)", config.val_fraction));
    }
    if config.limit == Some(0) {
        return bad("--limit must be at least 1".into());
    }
    Ok(())
}

// ANCHOR: check_outputs
/// Before any training: the checkpoint's two files can be written, and the run replaces no
/// checkpoint unasked (one it resumes from, `resumed`, is its own). Finding out after an epoch
/// would cost the epoch; finding out never would cost an earlier run. [`Trainer::new`] and
/// [`Trainer::resume`] call it; a program calls it sooner, before it opens the photos.
pub fn check_outputs(config: &Config, resumed: Option<&Path>) -> Result<(), TrainError> {
    let Some(save) = &config.save else { return Ok(()) };
    for path in [save.clone(), checkpoint::state_path(save)] {
        files::check_writable(&path).map_err(|source| TrainError::Unwritable { path, source })?;
    }
    let own = resumed.is_some_and(|r| same_file(r, save));
    let exists = save.is_file() || checkpoint::state_path(save).is_file();
    if exists && !own && !config.overwrite {
        return Err(TrainError::WouldReplace { path: save.clone() });
    }
    Ok(())
}
// ANCHOR_END: check_outputs

/// Whether two paths name the same file (the same path, or two ways to reach it).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// The convolutions of a new run: the asked ones, else the fastest of its instruction set.
fn new_run_conv(config: &Config) -> Result<ConvAlgorithm, TrainError> {
    if let Some(conv) = config.conv {
        return Ok(conv);
    }
    if config.precision == Some(Precision::Bf16) {
        return Ok(ConvAlgorithm::Direct);
    }
    let isa = match config.isa {
        Some(isa) => isa,
        None => Kernels::best()?.isa(),
    };
    Ok(ConvAlgorithm::fastest_for(isa))
}

fn hyperparameters(config: &Config) -> Hyperparameters {
    Hyperparameters {
        batch_size: config.batch_size,
        augment: config.augment,
        val_fraction: config.val_fraction,
        epochs: config.epochs,
        base_lr: config.lr,
        schedule: config.schedule,
        limit: config.limit,
        conv: config.conv.unwrap_or_default(),
        precision: config.precision.unwrap_or_default(),
    }
}

/// The training and validation photos a run of `config` uses (its seed, validation fraction and
/// limit): for programs that evaluate a trained network on the photos it never saw.
pub fn run_split(data: &CatDog, config: &Config) -> Result<Split, TrainError> {
    split(data, config)
}

// ANCHOR: split
/// The images of the run (all, or a seeded choice of `limit`) split into training and
/// validation images by class, from the seed.
fn split(data: &CatDog, config: &Config) -> Result<Split, TrainError> {
    let mut chosen: Vec<usize> = (0..data.len()).collect();
    if let Some(limit) = config.limit.filter(|&l| l < data.len()) {
        chosen.shuffle(&mut rng(sub_seed(config.seed, 4, 0)));
        chosen.truncate(limit);
        chosen.sort_unstable();
    }
    let labels: Vec<u8> = chosen.iter().map(|&i| data.labels()[i]).collect();
    let split = Split::new(&labels, config.val_fraction, sub_seed(config.seed, 5, 0))?;
    Ok(Split {
        train: split.train.iter().map(|&i| chosen[i]).collect(),
        val: split.val.iter().map(|&i| chosen[i]).collect(),
    })
}
// ANCHOR_END: split
