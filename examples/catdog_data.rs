//! Prepares the cat/dog photos and measures the pipeline: how long the cache takes to build and
//! to open, and how many images per second the loader serves, with and without augmentation.
//!
//! ```text
//! cargo run --example catdog_data -- --data ../shared/data/catdog
//! /usr/bin/time -v cargo run --example catdog_data -- --open-only   # peak memory of a build
//! ```
use clap::Parser;
use simd_cnn::data::catdog::{CatDog, Loader, LoaderOptions, OpenOptions, extract_pet_images};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    /// The folder that holds PetImages/ (default: $SIMD_CNN_DATA/catdog, else data/catdog).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the cache goes when the data folder is read-only (default: ~/.cache/simd-cnn).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Decoding threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// The Microsoft zip (kagglecatsanddogs_5340.zip) to extract first, if the folder has no
    /// PetImages yet.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Open (and build if needed) the cache, then stop.
    #[arg(long)]
    open_only: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = args.data.clone().unwrap_or_else(|| simd_cnn::data::default_dir("catdog"));
    let options = OpenOptions { threads: args.threads, cache_dir: args.cache_dir.clone(), ..OpenOptions::default() };

    if let Some(archive) = &args.archive
        && !dir.join("PetImages").exists()
    {
        let t = Instant::now();
        let done = extract_pet_images(archive, &dir)?;
        println!(
            "extracted {} photos ({} other entries left out) to {} in {:.1} s",
            done.files,
            done.ignored,
            done.root.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let data = CatDog::open_with(&dir, &options)?;
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
    let again = CatDog::open_with(&dir, &options)?;
    println!("{:?} again in {:.3} s", again.origin(), t.elapsed().as_secs_f64());

    let split = data.split(0.2, 0)?;
    println!("split: {} train, {} validation", split.train.len(), split.val.len());
    for options in [LoaderOptions::train(args.batch_size, 0), LoaderOptions::train(args.batch_size, 0).augmented()] {
        let loader = data.loader(&split.train, options);
        let (images, seconds) = drain(&loader)?;
        let what = if loader.options().augment { "augmented" } else { "plain" };
        println!("loader, {what}: {images} images in {seconds:.2} s = {:.0} images/s", images as f64 / seconds);
    }
    Ok(())
}

/// Runs one epoch of `loader` with nothing to do per batch but touch it.
fn drain(loader: &Loader) -> Result<(usize, f64), Box<dyn std::error::Error>> {
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
