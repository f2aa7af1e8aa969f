//! Prepares the cat/dog photos and measures the pipeline: how long the cache takes to build and
//! to open, and how many images per second the loader serves, with and without augmentation.
//!
//! ```text
//! cargo run --example catdog_data -- --data ../shared/data/catdog
//! cargo run --example catdog_data -- --cache-dir /tmp/caches    # a separate cache, there
//! /usr/bin/time -v cargo run --example catdog_data -- --open-only   # peak memory of a build
//! ```
//!
//! Every error is one line on stderr and a non-zero exit status.
#[path = "common/cli.rs"]
mod cli;
#[path = "common/open.rs"]
mod open;
#[path = "common/progress.rs"]
mod progress;

use clap::Parser;
use open::open_catdog;
use simd_cnn::data::catdog::{Loader, LoaderOptions, MAX_THREADS, OpenOptions, extract_pet_images_reporting};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    /// The folder that holds PetImages/ (default: $SIMD_CNN_DATA/catdog, else data/catdog).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the image cache goes (default: beside PetImages/, or ~/.cache/simd-cnn when that
    /// folder is read-only).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Decoding threads, up to 1024 (default: one per core).
    #[arg(long, default_value_t = 0, value_parser = thread_count)]
    threads: usize,
    /// Images per batch, from 1 to the number of training images.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    batch_size: usize,
    /// The Microsoft zip (kagglecatsanddogs_5340.zip) to extract first, if the folder has no
    /// PetImages yet.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Open (and build if needed) the cache, then stop.
    #[arg(long)]
    open_only: bool,
}

fn thread_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_THREADS => Ok(n),
        _ => Err(format!("'{s}' is not a whole number from 0 (one per core) to {MAX_THREADS}")),
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}

fn main() -> ExitCode {
    let args = match cli::parse::<Args>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    cli::finish(run(&args).map(|()| ExitCode::SUCCESS))
}

type Error = Box<dyn std::error::Error>;

fn run(args: &Args) -> Result<(), Error> {
    let dir = args.data.clone().unwrap_or_else(|| simd_cnn::data::default_dir("catdog"));
    let options = OpenOptions { threads: args.threads, cache_dir: args.cache_dir.clone(), ..OpenOptions::default() };

    if let Some(archive) = &args.archive
        && !dir.join("PetImages").exists()
    {
        let t = Instant::now();
        let mut shown = progress::Shown::default();
        let done = extract_pet_images_reporting(archive, &dir, &mut |done, total| shown.extracting(done, total))?;
        println!(
            "extracted {} photos ({} other entries left out) to {} in {:.1} s",
            done.files,
            done.ignored,
            done.root.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let data = open_catdog(&dir, &options)?;
    println!(
        "{:?} {} in {:.2} s: {} images ({} cats, {} dogs), {}",
        data.origin(),
        data.cache_path().display(),
        t.elapsed().as_secs_f64(),
        data.len(),
        data.count(0),
        data.count(1),
        data.skipped()
    );
    if args.open_only {
        return Ok(());
    }
    let t = Instant::now();
    let again = open_catdog(&dir, &options)?;
    println!("{:?} again in {:.3} s", again.origin(), t.elapsed().as_secs_f64());

    let split = data.split(0.2, 0)?;
    println!("split: {} train, {} validation", split.train.len(), split.val.len());
    if args.batch_size > split.train.len() {
        return Err(format!(
            "--batch-size {}: more than the {} training images (the loader serves full batches only)",
            args.batch_size,
            split.train.len()
        )
        .into());
    }
    for options in [LoaderOptions::train(args.batch_size, 0), LoaderOptions::train(args.batch_size, 0).augmented()] {
        let loader = data.loader(&split.train, options);
        let (images, seconds) = drain(&loader)?;
        let what = if loader.options().augment { "augmented" } else { "plain" };
        println!("loader, {what}: {images} images in {seconds:.2} s = {:.0} images/s", images as f64 / seconds);
    }
    Ok(())
}

/// Runs one epoch of `loader` with nothing to do per batch but touch it.
fn drain(loader: &Loader) -> Result<(usize, f64), Error> {
    let t = Instant::now();
    let mut images = 0;
    let mut checksum = 0.0f64;
    for batch in loader.epoch(0) {
        let batch = batch?;
        images += batch.len();
        checksum += f64::from(batch.x.as_slice()[0]);
    }
    std::hint::black_box(checksum);
    Ok((images, t.elapsed().as_secs_f64()))
}
