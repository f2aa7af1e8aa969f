//! Trains the MNIST network (784-128-64-10, ReLU, softmax) with plain SGD and reports the test
//! accuracy after every epoch.
//!
//! ```text
//! cargo run --release --example train_mnist -- --data ../shared/data/mnist --json-out mnist.json
//! ```
//!
//! The data folder defaults to `$SIMD_CNN_DATA/mnist`, else `data/mnist`; files missing from it
//! are downloaded (see `data/README.md`). `--isa` picks the kernels (the best this CPU and build
//! allow by default). `--json-out` writes the run's settings, per-epoch figures and timings.
//! Every error is one line on stderr and a non-zero exit status.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/progress.rs"]
mod progress;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use simd_cnn::data::mnist::{IMAGE_LEN, Mnist};
use simd_cnn::files::{check_output, write_atomic};
use simd_cnn::kernels::{Isa, Kernels};
use simd_cnn::model::Mlp;
use simd_cnn::train::{EpochOrder, EpochStats, LossGuard, MnistEvaluator, Sgd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Train the MNIST MLP (784-128-64-10) with SGD on the CPU.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder with the four MNIST files (raw or .gz); missing ones are downloaded
    /// [default: $SIMD_CNN_DATA/mnist, else data/mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Passes over the 60,000 training images
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    epochs: u32,
    /// Images per SGD step (more than the training images means all of them)
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    batch_size: u32,
    /// Learning rate
    #[arg(long, default_value_t = 0.01, value_parser = positive_finite)]
    lr: f64,
    /// Seed of the initial weights and of the shuffling
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Kernels to run: scalar, sse, avx2 or avx512 [default: the best available]
    #[arg(long, value_name = "ISA")]
    isa: Option<String>,
    /// Write the settings, per-epoch figures and timings of the run to this JSON file
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Replace the --json-out file if it exists
    #[arg(long)]
    overwrite: bool,
}

fn at_least_one(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}

fn positive_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive number")),
    }
}

/// Images per forward pass when measuring test accuracy.
const EVAL_CHUNK: usize = 1000;

/// What `--json-out` writes: the settings, the result, and every epoch.
#[derive(serde::Serialize)]
struct Report {
    model: &'static str,
    dataset: &'static str,
    data: String,
    isa: &'static str,
    epochs: u32,
    batch_size: usize,
    lr: f64,
    momentum: f32,
    seed: u64,
    train_images: usize,
    test_images: usize,
    test_accuracy: f64,
    train_seconds: f64,
    images_per_second: f64,
    per_epoch: Vec<EpochJson>,
}

#[derive(serde::Serialize)]
struct EpochJson {
    epoch: u32,
    train_loss: f64,
    train_accuracy: f64,
    test_accuracy: f64,
    train_seconds: f64,
    images_per_second: f64,
}

/// What one epoch measured.
struct EpochReport {
    epoch: u32,
    stats: EpochStats,
    test_accuracy: f64,
    train_seconds: f64,
}

fn main() -> ExitCode {
    let args = match cli::parse::<Args>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    cli::finish(run(&args).map(|()| ExitCode::SUCCESS))
}

fn run(args: &Args) -> Result<(), String> {
    let k = match &args.isa {
        Some(name) => name.parse::<Isa>().and_then(Kernels::for_isa),
        None => Kernels::best(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(path) = &args.json_out {
        check_output(path, args.overwrite).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let dir = args.data.clone().unwrap_or_else(|| simd_cnn::data::default_dir("mnist"));
    let chosen = if args.isa.is_some() { "as asked" } else { "the best available" };
    println!("isa: {} ({chosen})", k.isa());
    println!("data: {}", dir.display());
    let mut shown = progress::Shown::default();
    let data =
        Mnist::load_or_download_reporting(&dir, &mut |event| shown.download(event)).map_err(|e| e.to_string())?;
    for notice in &data.notices {
        eprintln!("note: {notice}");
    }
    println!("{} training images, {} test images", data.train.len(), data.test.len());
    // A batch holds at most every training image: the buffers below are sized from it.
    let batch_size = (args.batch_size as usize).min(data.train.len());
    if batch_size < args.batch_size as usize {
        eprintln!(
            "note: --batch-size {} is more than the {batch_size} training images; using {batch_size}",
            args.batch_size
        );
    }

    let mut model = Mlp::new(args.seed);
    let mut opt = Sgd::new(args.lr as f32, 0.0);
    let mut order = EpochOrder::new(data.train.len(), args.seed);
    let mut guard = LossGuard::new();
    let mut evaluator = MnistEvaluator::new(EVAL_CHUNK);
    let mut x = vec![0f32; batch_size * IMAGE_LEN];
    let mut y = vec![0u8; batch_size];
    let batches = data.train.len().div_ceil(batch_size) as u64;
    let mut reports = Vec::new();

    // ANCHOR: train_loop
    for epoch in 1..=args.epochs {
        let bar = epoch_bar(epoch, args.epochs, batches);
        let mut stats = EpochStats::default();
        let start = Instant::now();
        for (step, indices) in order.next_epoch().chunks(batch_size).enumerate() {
            let n = indices.len();
            data.train.batch(indices, &mut x[..n * IMAGE_LEN], &mut y[..n]);
            let step_stats = model.forward_backward(k, &x[..n * IMAGE_LEN], &y[..n]);
            if let Err(diverged) = guard.check(step_stats.loss) {
                bar.abandon();
                let batch = step + 1;
                return Err(format!("epoch {epoch}, batch {batch}: {diverged}; try a lower --lr than {}", args.lr));
            }
            opt.step(k, &mut model.params_mut());
            stats.add(step_stats, n);
            bar.inc(1);
        }
        let train_seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let test_accuracy = evaluator.accuracy(k, &mut model, &data.test);
        println!(
            "epoch {epoch:>2}/{}: train loss {:.4}, train accuracy {:.4}, test accuracy {test_accuracy:.4}, {:.0} images/s",
            args.epochs,
            stats.mean_loss(),
            stats.accuracy(),
            stats.seen() as f64 / train_seconds,
        );
        reports.push(EpochReport { epoch, stats, test_accuracy, train_seconds });
    }
    // ANCHOR_END: train_loop

    let train_seconds: f64 = reports.iter().map(|r| r.train_seconds).sum();
    let images: usize = reports.iter().map(|r| r.stats.seen()).sum();
    let test_accuracy = reports.last().map_or(0.0, |r| r.test_accuracy);
    println!(
        "test accuracy {test_accuracy:.4} after {} epoch{}; {train_seconds:.1} s of training, {:.0} images/s",
        args.epochs,
        if args.epochs == 1 { "" } else { "s" },
        images as f64 / train_seconds
    );
    if let Some(path) = &args.json_out {
        let report = Report {
            model: "mlp-784-128-64-10",
            dataset: "mnist",
            data: dir.display().to_string(),
            isa: k.isa().name(),
            epochs: args.epochs,
            batch_size,
            lr: args.lr,
            momentum: opt.momentum,
            seed: args.seed,
            train_images: data.train.len(),
            test_images: data.test.len(),
            test_accuracy,
            train_seconds,
            images_per_second: images as f64 / train_seconds,
            per_epoch: reports
                .iter()
                .map(|r| EpochJson {
                    epoch: r.epoch,
                    train_loss: r.stats.mean_loss(),
                    train_accuracy: r.stats.accuracy(),
                    test_accuracy: r.test_accuracy,
                    train_seconds: r.train_seconds,
                    images_per_second: r.stats.seen() as f64 / r.train_seconds,
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
        write_atomic(path, text.as_bytes()).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A progress bar for one epoch, counted in batches; hidden when stderr is not a terminal.
fn epoch_bar(epoch: u32, epochs: u32, batches: u64) -> ProgressBar {
    let bar = ProgressBar::new(batches);
    if let Ok(style) = ProgressStyle::with_template("epoch {msg} {wide_bar} {pos}/{len} batches, {per_sec}, ETA {eta}")
    {
        bar.set_style(style);
    }
    bar.set_message(format!("{epoch}/{epochs}"));
    bar
}
