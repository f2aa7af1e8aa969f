//! Trains the cat/dog network: finds (or downloads) the photos, trains, validates after every
//! epoch, saves a checkpoint PyTorch can load, and draws the curves.
//!
//! ```text
//! cargo run --release --example train_catdog                      # the original recipe
//! cargo run --release --example train_catdog -- --augment --momentum 0.9 --schedule cosine --epochs 20
//! cargo run --release --example train_catdog -- --resume runs/catdog.safetensors
//! ```
//!
//! Ctrl-C saves the exact position and exits; `--resume` continues from there, and a run
//! killed outright loses at most the epoch it was in.
#[path = "common/cli.rs"]
mod cli;
#[path = "common/open.rs"]
mod open;
#[path = "common/progress.rs"]
mod progress;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use open::open_catdog;
use simd_cnn::checkpoint::state_path;
use simd_cnn::data::catdog::{self, OpenOptions, archive_url, find_pet_images};
use simd_cnn::data::download::DownloadOptions;
use simd_cnn::files::write_atomic;
use simd_cnn::kernels::{ConvAlgorithm, Isa, Precision};
use simd_cnn::train::LrSchedule;
use simd_cnn::trainer::{Config, EpochMetrics, Event, Outcome, Trainer, training_curves};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Parser, Debug)]
#[command(about = "Train the cat/dog CNN (conv 3->32->64->128, dense 32768->128->1) on the Kaggle/Microsoft photos")]
struct Args {
    /// Folder holding PetImages/Cat and PetImages/Dog [default: $SIMD_CNN_DATA/catdog, else data/catdog]
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// SGD momentum (PyTorch's definition); 0 is plain SGD
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// How the learning rate changes over the run
    #[arg(long, default_value_t = LrSchedule::Constant)]
    schedule: LrSchedule,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random horizontal flips and crops of the training images
    #[arg(long)]
    augment: bool,
    /// Fraction of the photos held out for validation
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Use only N photos (a seeded choice), for quick runs
    #[arg(long)]
    limit: Option<usize>,
    /// scalar, sse, avx2 or avx512 [default: the best this CPU has]
    #[arg(long)]
    isa: Option<Isa>,
    /// direct or winograd (chapter 10) [default: winograd where the instruction set has it and
    /// the precision is fp32, else direct; a resumed run keeps its own]
    #[arg(long)]
    conv: Option<ConvAlgorithm>,
    /// fp32 or bf16 (chapter 11: bf16 products with fp32 sums and fp32 weights, on a CPU with
    /// AVX-512 BF16) [default: fp32, or the resumed run's]
    #[arg(long)]
    precision: Option<Precision>,
    /// Threads [default: one per core]
    #[arg(long)]
    threads: Option<usize>,
    /// Checkpoint written after every epoch and on Ctrl-C; the training state goes beside it
    /// [default: the --resume checkpoint, else runs/catdog.safetensors]
    #[arg(long)]
    save: Option<PathBuf>,
    /// Continue the run saved in this checkpoint
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Replace the checkpoint (and its curves) at --save, and the --json-out file, if they exist
    #[arg(long)]
    overwrite: bool,
    /// Write a summary of the run as JSON here
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Download the photos without asking if they are missing
    #[arg(long)]
    download: bool,
}

fn main() -> ExitCode {
    let args = match cli::parse::<Args>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    cli::finish(run(&args))
}

type Error = Box<dyn std::error::Error>;

fn run(args: &Args) -> Result<ExitCode, Error> {
    let save = args.save.clone().or_else(|| args.resume.clone()).unwrap_or_else(|| "runs/catdog.safetensors".into());
    let config = Config {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        momentum: args.momentum,
        schedule: args.schedule,
        seed: args.seed,
        augment: args.augment,
        val_fraction: args.val_fraction,
        limit: args.limit,
        threads: args.threads.unwrap_or(Config::default().threads),
        isa: args.isa,
        conv: args.conv,
        precision: args.precision,
        save: Some(save.clone()),
        overwrite: args.overwrite,
    };
    let outputs = Outputs::beside(&save);
    check_outputs(args, &config, &outputs)?;
    let dir = args.data.clone().unwrap_or_else(|| simd_cnn::data::default_dir("catdog"));
    ensure_photos(&dir, args.download)?;
    let data = open_catdog(&dir, &OpenOptions::default())?;
    let mut trainer = match &args.resume {
        Some(path) => Trainer::resume(path, config, data)?,
        None => Trainer::new(config, data)?,
    };
    describe(&trainer, &dir, args);

    // ANCHOR: ctrlc
    // Ctrl-C once: finish the step, save, exit. Twice: exit at once.
    let stop = Arc::new(AtomicBool::new(false));
    let presses = Arc::new(AtomicUsize::new(0));
    let (s, p) = (stop.clone(), presses.clone());
    ctrlc::set_handler(move || {
        if p.fetch_add(1, Ordering::SeqCst) > 0 {
            eprintln!("\ninterrupted twice: exiting without saving");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving after this step (press Ctrl-C again to exit at once)");
        s.store(true, Ordering::SeqCst);
    })?;
    // ANCHOR_END: ctrlc

    let mut bar = ProgressBar::hidden();
    let mut failure: Option<Error> = None;
    let mut history = trainer.state().history.clone();
    // ANCHOR: events
    let outcome = trainer.run(&stop, &mut |event| match event {
        Event::EpochStart { epoch, batches, skip } => {
            bar = epoch_bar(epoch, args.epochs, batches, skip);
        }
        Event::Step { running, images_per_second, .. } => {
            bar.set_message(format!(
                "loss {:.4}  acc {:.3}  {:.0} img/s",
                running.mean_loss(),
                running.accuracy(),
                images_per_second
            ));
            bar.inc(1);
        }
        Event::EpochEnd { metrics } => {
            bar.finish_and_clear();
            println!("{}", epoch_line(metrics, args.epochs));
            history.push(*metrics);
            if let Err(e) = outputs.write(&history) {
                failure.get_or_insert(e);
            }
        }
        Event::Saved { .. } => {}
    });
    // ANCHOR_END: events
    bar.finish_and_clear();
    let outcome = outcome?;
    if let Some(e) = failure {
        return Err(e);
    }
    match outcome {
        Outcome::Stopped { epoch, batch } => {
            println!(
                "stopped in epoch {epoch} after batch {batch}; saved to {} (and {}). Continue with --resume {}",
                save.display(),
                state_path(&save).display(),
                save.display()
            );
            Ok(ExitCode::from(130))
        }
        Outcome::Finished => {
            let summary = summary(&trainer, &save);
            println!(
                "validation accuracy {:.4} after {}; {:.0} s of training, {:.0} images/s on {} ({})",
                summary.val_accuracy.unwrap_or(f64::NAN),
                plural(trainer.state().epoch, "epoch"),
                summary.train_seconds,
                summary.images_per_second,
                plural(trainer.threads(), "thread"),
                trainer.kernels().isa(),
            );
            println!("weights: {}  curves: {}", save.display(), outputs.curves.display());
            if let Some(path) = &args.json_out {
                write_atomic(path, serde_json::to_string_pretty(&summary)?.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ANCHOR: check_outputs
/// Before the photos are even opened: every file the run will write can be written, and none
/// of them replaces an earlier result unasked. The trainer's own check covers the checkpoint;
/// this adds the files only the example writes.
fn check_outputs(args: &Args, config: &Config, outputs: &Outputs) -> Result<(), Error> {
    let save = config.save.as_deref().unwrap_or(Path::new(""));
    for path in [Some(save), args.json_out.as_deref()].into_iter().flatten() {
        let parent = simd_cnn::files::parent(path);
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: cannot create the folder: {e}", parent.display()))?;
    }
    simd_cnn::trainer::check_outputs(config, args.resume.as_deref())?;
    let resuming_here = args.resume.as_deref().is_some_and(|r| r == save);
    let beside = [(&outputs.metrics, "--save"), (&outputs.curves, "--save")].into_iter();
    for (path, flag) in beside.chain(args.json_out.as_ref().map(|p| (p, "--json-out"))) {
        simd_cnn::files::check_writable(path).map_err(|e| format!("{}: cannot write there: {e}", path.display()))?;
        let own = resuming_here && flag == "--save";
        if path.exists() && !own && !args.overwrite {
            return Err(format!(
                "{} already exists (an earlier run's result): pass --overwrite to replace it, or choose another {flag}",
                path.display()
            )
            .into());
        }
    }
    Ok(())
}
// ANCHOR_END: check_outputs

/// The per-epoch metrics (JSON lines) and the curves (SVG), beside the checkpoint.
struct Outputs {
    metrics: PathBuf,
    curves: PathBuf,
}

impl Outputs {
    fn beside(save: &Path) -> Outputs {
        let stem = save.with_extension("");
        Outputs { metrics: stem.with_extension("metrics.jsonl"), curves: stem.with_extension("curves.svg") }
    }

    /// Rewrites both files from the history of the run.
    fn write(&self, history: &[EpochMetrics]) -> Result<(), Error> {
        if history.is_empty() {
            return Ok(());
        }
        let mut lines = String::new();
        for m in history {
            lines.push_str(&m.to_json().to_string());
            lines.push('\n');
        }
        write_atomic(&self.metrics, lines.as_bytes()).map_err(|e| format!("{}: {e}", self.metrics.display()))?;
        training_curves(history, &self.curves)?;
        Ok(())
    }
}

fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let val = match (m.val_loss, m.val_accuracy) {
        (Some(l), Some(a)) => format!("val loss {l:.4} acc {a:.4}"),
        _ => "no validation images".to_string(),
    };
    format!(
        "epoch {:>2}/{epochs}: train loss {:.4} acc {:.4} | {val} | {:.1} s",
        m.epoch, m.train_loss, m.train_accuracy, m.seconds
    )
}

fn epoch_bar(epoch: usize, epochs: usize, batches: usize, skip: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(batches as u64).with_position(skip as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} {wide_bar} {pos}/{len} {msg} ({eta})")
            .expect("the template is valid"),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// Says what is about to happen: where the photos are, what was skipped, on what hardware.
fn describe(trainer: &Trainer, dir: &Path, args: &Args) {
    let data = trainer.data();
    let origin = match data.origin() {
        catdog::CacheOrigin::Opened => "opened",
        catdog::CacheOrigin::Built => "built",
    };
    println!(
        "photos: {} ({} decoded: {} cats, {} dogs; cache {origin}: {})",
        dir.display(),
        data.len(),
        data.count(catdog::CAT),
        data.count(catdog::DOG),
        data.cache_path().display()
    );
    let skipped = data.skipped();
    if skipped.total() > 0 {
        let reasons: Vec<String> = catdog::SkipReason::ALL
            .iter()
            .filter(|&&r| skipped.get(r) > 0)
            .map(|&r| format!("{} {}", skipped.get(r), r.describe()))
            .collect();
        println!("skipped {} files that are not usable photos: {}", skipped.total(), reasons.join(", "));
    }
    let split = trainer.split();
    let c = trainer.config();
    println!(
        "training on {} photos, validating on {}; {} of {} batches of {}, lr {} ({}), momentum {}{}",
        split.train.len(),
        split.val.len(),
        plural(c.epochs, "epoch"),
        trainer.batches_per_epoch(),
        c.batch_size,
        c.lr,
        c.schedule,
        c.momentum,
        if c.augment { ", augmented" } else { "" }
    );
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "kernels: {} ({} lanes), {} convolutions{}, {}",
        trainer.kernels().isa(),
        trainer.kernels().isa().lanes(),
        trainer.kernels().conv_algorithm(),
        match trainer.kernels().precision() {
            Precision::Fp32 => "",
            Precision::Bf16 => " in bf16 (fp32 sums and weights)",
        },
        plural(trainer.threads(), "thread", "threads")
    );
    if let Some(path) = &args.resume {
        let s = trainer.state();
        let done = plural(s.epoch, "epoch", "epochs");
        if s.epoch >= trainer.config().epochs {
            println!("resuming {}: {done} done already; --epochs larger than {} trains on", path.display(), s.epoch);
        } else {
            println!(
                "resuming {}: {done} done, continuing with epoch {} at batch {}",
                path.display(),
                s.epoch + 1,
                s.batch + 1
            );
        }
    }
}

/// When the photos are missing: download them (after asking, unless `--download`), or say
/// where to put them.
fn ensure_photos(dir: &Path, download: bool) -> Result<(), Error> {
    if find_pet_images(dir).is_ok() {
        return Ok(());
    }
    let url = archive_url();
    let by_hand = format!(
        "put the photos in {}/PetImages/Cat and {}/PetImages/Dog (unzip {url} there), or point --data or SIMD_CNN_DATA at a folder that has them (see data/README.md)",
        dir.display(),
        dir.display()
    );
    let asked =
        download || ask(&format!("No photos in {}. Download them (about 790 MB) from {url}? [y/N] ", dir.display()));
    if !asked {
        return Err(format!("no photos in {}: {by_hand}", dir.display()).into());
    }
    let mut shown = progress::Shown::default();
    let fetched = catdog::fetch_reporting(&url, dir, &DownloadOptions::default(), &mut |event| match event {
        catdog::FetchEvent::Download(event) => shown.download(event),
        catdog::FetchEvent::Extracting { done, total } => shown.extracting(done, total),
    })
    .map_err(|e| format!("{e}; or {by_hand}"))?;
    println!(
        "downloaded {} bytes (SHA-256 {}), extracted {} photos to {}",
        fetched.download.bytes,
        fetched.download.sha256,
        fetched.extracted.files,
        fetched.extracted.root.display()
    );
    Ok(())
}

/// Asks a yes/no question on the terminal; without one, the answer is no.
fn ask(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// `3 epochs`, `1 epoch`.
fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// The summary JSON: how the run went, and everything needed to reproduce it. (serde writes an
/// `f32` such as `--lr 0.01` as `0.01`, the shortest decimal that reads back to the same `f32`.)
#[derive(serde::Serialize)]
struct Summary<'a> {
    val_accuracy: Option<f64>,
    best_val_accuracy: Option<f64>,
    val_loss: Option<f64>,
    train_seconds: f64,
    images_per_second: f64,
    isa: &'static str,
    conv: &'static str,
    precision: &'static str,
    threads: usize,
    skipped_files: u64,
    train_images: usize,
    val_images: usize,
    epochs: usize,
    batch_size: usize,
    lr: f32,
    momentum: f32,
    schedule: String,
    augment: bool,
    seed: u64,
    limit: Option<usize>,
    weights: &'a Path,
    per_epoch: &'a [EpochMetrics],
}

fn summary<'a>(trainer: &'a Trainer, save: &'a Path) -> Summary<'a> {
    let s = trainer.state();
    let c = trainer.config();
    let train_seconds: f64 = s.history.iter().map(|m| m.seconds).sum();
    let images = (s.history.len() * trainer.batches_per_epoch() * c.batch_size) as f64;
    let last = s.history.last();
    Summary {
        val_accuracy: last.and_then(|m| m.val_accuracy),
        best_val_accuracy: s.history.iter().filter_map(|m| m.val_accuracy).reduce(f64::max),
        val_loss: last.and_then(|m| m.val_loss),
        train_seconds,
        images_per_second: images / train_seconds.max(1e-9),
        isa: trainer.kernels().isa().name(),
        conv: trainer.kernels().conv_algorithm().name(),
        precision: trainer.kernels().precision().name(),
        threads: trainer.threads(),
        skipped_files: trainer.data().skipped().total(),
        train_images: trainer.split().train.len(),
        val_images: trainer.split().val.len(),
        epochs: s.epoch,
        batch_size: c.batch_size,
        lr: c.lr,
        momentum: c.momentum,
        schedule: c.schedule.to_string(),
        augment: c.augment,
        seed: c.seed,
        limit: c.limit,
        weights: save,
        per_epoch: &s.history,
    }
}
