//! Classifies photos as cat or dog with a trained network.
//!
//! ```text
//! cargo run --release --example predict -- --weights runs/catdog.safetensors my_cat.jpg
//! cargo run --release --example predict -- --weights runs/catdog.safetensors photos/          # every image in it
//! cargo run --release --example predict -- --weights runs/catdog.safetensors data/catdog --json-out p.json
//! cargo run --release --example predict -- --weights runs/catdog.safetensors --validation data/catdog --int8
//! ```
//!
//! A folder laid out like `PetImages` (`Cat/` and `Dog/` inside it, or inside its `PetImages/`)
//! gives each photo its label, and the accuracy. The network's output is the probability of
//! "dog". Files that are not photos are reported and skipped. `--validation` classifies the
//! photos a training run with the same `--seed` and `--val-fraction` held out. `--int8`
//! (chapter 11) also classifies every photo with the network quantised to int8, calibrated on
//! training photos, and counts how often the two agree.
#[path = "common/cli.rs"]
mod cli;
#[cfg(feature = "ch11")]
#[path = "predict/int8.rs"]
mod int8;
#[cfg(not(feature = "ch11"))]
#[path = "predict/before_chapter11.rs"]
mod int8;
#[path = "common/open.rs"]
mod open;

use clap::Parser;
use int8::Quantized;
use open::open_catdog;
use simd_cnn::checkpoint::load_weights;
use simd_cnn::data::catdog::{CLASSES, CatDog, DOG, OpenOptions, decode_file_to, find_pet_images, to_unit_f32};
use simd_cnn::files::{check_output, write_atomic};
use simd_cnn::kernels::{Isa, Kernels};
use simd_cnn::parallel::DataParallel;
use simd_cnn::trainer::{Config, run_split};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "Classify photos as cat or dog")]
struct Args {
    /// A checkpoint written by train_catdog (or PyTorch's state_dict of the same network)
    #[arg(long)]
    weights: PathBuf,
    /// Photos, or folders of photos
    #[arg(required_unless_present = "validation")]
    paths: Vec<PathBuf>,
    /// Classify the validation photos of this PetImages folder instead: those a train_catdog
    /// run with the same --seed and --val-fraction held out
    #[arg(long, value_name = "DIR")]
    validation: Option<PathBuf>,
    /// The seed of the training run whose split --validation and --calibrate use
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The validation fraction of that run
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Also classify with the network quantised to int8 (chapter 11) and count how often the
    /// two answers agree
    #[arg(long)]
    int8: bool,
    /// The PetImages folder whose training photos calibrate --int8 [default: the --validation
    /// folder]
    #[arg(long, value_name = "DIR")]
    calibrate: Option<PathBuf>,
    /// Training photos that calibrate --int8, 1 to 4096
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=4096))]
    calibration_photos: u16,
    /// Write every prediction (and the accuracy, when the folders give labels) as JSON here
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Replace the --json-out file if it exists
    #[arg(long)]
    overwrite: bool,
    /// scalar, sse, avx2 or avx512 [default: the best this CPU has]
    #[arg(long)]
    isa: Option<Isa>,
    /// Threads, 1 to 1024 [default: one per core]
    #[arg(long, value_parser = thread_count)]
    threads: Option<usize>,
    /// Print only the summary, not a line per photo
    #[arg(long)]
    quiet: bool,
}

/// A photo to classify and its label, if its folder says it.
struct Item {
    path: PathBuf,
    label: Option<u8>,
    /// Its index in the opened data set (`--validation`), else it is read from `path`.
    cached: Option<usize>,
}

/// More threads than this is a typing mistake, not a machine.
const MAX_THREADS: usize = 1024;

fn thread_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a whole number from 1 to {MAX_THREADS}")),
    }
}

fn main() -> ExitCode {
    let args = match cli::parse::<Args>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    cli::finish(run(&args).map(|()| ExitCode::SUCCESS))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = &args.json_out {
        check_output(path, args.overwrite).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut model = load_weights(&args.weights, None)?;
    let k = match args.isa {
        Some(isa) => Kernels::for_isa(isa)?,
        None => Kernels::best()?,
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut par = DataParallel::new(threads)?;
    let (h, w) = model.image_size();
    let config = Config { seed: args.seed, val_fraction: args.val_fraction, ..Config::default() };
    let options = OpenOptions { image_size: h, ..OpenOptions::default() };
    let open = |dir: &Path| {
        if h != w {
            return Err(format!("the photos are cached square; these weights take {h}x{w} images"));
        }
        open_catdog(dir, &options).map_err(|e| format!("{}: {e}", dir.display()))
    };
    let validation = args.validation.as_deref().map(open).transpose()?;
    let items = match &validation {
        Some(data) => {
            let split = run_split(data, &config)?;
            split
                .val
                .iter()
                .map(|&i| Item { path: data.source(i), label: Some(data.labels()[i]), cached: Some(i) })
                .collect()
        }
        None => collect(&args.paths)?,
    };
    if items.is_empty() {
        return Err("no photos found in the paths given".into());
    }
    let mut quantized = match (args.int8, args.calibrate.as_deref().or(args.validation.as_deref())) {
        (false, _) => None,
        (true, None) => return Err("--int8 needs training photos to calibrate on: give --calibrate DIR".into()),
        (true, Some(dir)) => {
            let opened;
            let data = match (&validation, &args.calibrate) {
                (Some(data), None) => data,
                _ => {
                    opened = open(dir)?;
                    &opened
                }
            };
            let photos = calibration_photos(data, &config, usize::from(args.calibration_photos))?;
            Some(Quantized::new(&mut model, k, &photos)?)
        }
    };

    let mut predictions = Vec::new();
    let (mut right, mut labelled, mut skipped) = (0usize, 0usize, 0usize);
    let (mut right_int8, mut agree) = (0usize, 0usize);
    // ANCHOR: predict
    for chunk in items.chunks(64) {
        let mut x = Vec::with_capacity(chunk.len() * model.image_len());
        let mut kept = Vec::new();
        for item in chunk {
            match read_photo(item, validation.as_ref(), w, h) {
                Ok(pixels) => {
                    let start = x.len();
                    x.resize(start + pixels.len(), 0.0);
                    to_unit_f32(&pixels, &mut x[start..]);
                    kept.push(item);
                }
                Err(reason) => {
                    skipped += 1;
                    eprintln!("skipped {}: {reason}", item.path.display());
                }
            }
        }
        if kept.is_empty() {
            continue;
        }
        let probabilities = par.predict_proba(&mut model, k, &x);
        let int8 = quantized.as_mut().map(|q| q.predict_proba(k, &x));
        for (i, (item, &p)) in kept.iter().zip(&probabilities).enumerate() {
            let predicted = u8::from(p > 0.5);
            let p8 = int8.as_ref().map(|p8| p8[i]);
            let predicted8 = p8.map(|p8| u8::from(p8 > 0.5));
            agree += usize::from(predicted8 == Some(predicted));
            if let Some(label) = item.label {
                labelled += 1;
                right += usize::from(label == predicted);
                right_int8 += usize::from(Some(label) == predicted8);
            }
            if !args.quiet {
                let answer = |p: f32, predicted: u8| {
                    let confidence = if predicted == DOG { p } else { 1.0 - p };
                    format!("{} ({:.1} %)", CLASSES[predicted as usize].to_lowercase(), 100.0 * confidence)
                };
                let int8 = p8.zip(predicted8).map_or(String::new(), |(p8, c)| format!("; int8: {}", answer(p8, c)));
                println!("{}: {}{int8}", item.path.display(), answer(p, predicted));
            }
            predictions.push(Prediction {
                path: item.path.clone(),
                dog_probability: p,
                predicted: CLASSES[predicted as usize].to_lowercase(),
                label: item.label.map(|l| CLASSES[l as usize].to_lowercase()),
                int8_dog_probability: p8,
            });
        }
    }
    // ANCHOR_END: predict

    let accuracy = (labelled > 0).then(|| right as f64 / labelled as f64);
    match accuracy {
        Some(a) => println!(
            "{} photos, {labelled} with labels: accuracy {a:.4} ({right} right); {skipped} skipped",
            predictions.len()
        ),
        None => println!("{} photos classified; {skipped} skipped", predictions.len()),
    }
    let int8 = quantized.is_some().then(|| {
        let accuracy = (labelled > 0).then(|| right_int8 as f64 / labelled as f64);
        let agreement = agree as f64 / predictions.len().max(1) as f64;
        let accuracy_text = accuracy.map_or(String::new(), |a| format!("accuracy {a:.4} ({right_int8} right), "));
        println!(
            "int8: {accuracy_text}the same answer as fp32 on {agree} of {} photos ({:.2} %)",
            predictions.len(),
            100.0 * agreement
        );
        Int8Summary { accuracy, agreement, calibration_photos: args.calibration_photos }
    });
    if let Some(path) = &args.json_out {
        let out = Output { predictions: &predictions, skipped, weights: &args.weights, accuracy, int8 };
        write_atomic(path, serde_json::to_string_pretty(&out)?.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The pixels of `item`, from the opened data set or decoded from its file.
fn read_photo(item: &Item, data: Option<&CatDog>, w: usize, h: usize) -> Result<Vec<u8>, String> {
    match (item.cached, data) {
        (Some(i), Some(data)) => {
            let mut pixels = vec![0u8; data.image_len()];
            data.read_image(i, &mut pixels).map_err(|e| e.to_string())?;
            Ok(pixels)
        }
        _ => decode_file_to(&item.path, w as u32, h as u32).map_err(|reason| reason.describe().to_string()),
    }
}

// ANCHOR: calibration_photos
/// `count` training photos of `data` (the split of `config`), spread evenly over the sorted
/// indices so that both classes are in them, as floats in [0, 1].
fn calibration_photos(data: &CatDog, config: &Config, count: usize) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let train = run_split(data, config)?.train;
    let count = count.min(train.len());
    let mut pixels = vec![0u8; data.image_len()];
    let mut photos = vec![0.0f32; count * data.image_len()];
    for (j, out) in photos.chunks_exact_mut(data.image_len()).enumerate() {
        data.read_image(train[j * train.len() / count], &mut pixels)?;
        to_unit_f32(&pixels, out);
    }
    Ok(photos)
}
// ANCHOR_END: calibration_photos

/// One photo's answer, as `--json-out` writes it.
#[derive(serde::Serialize)]
struct Prediction {
    path: PathBuf,
    dog_probability: f32,
    predicted: String,
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    int8_dog_probability: Option<f32>,
}

/// What `--int8` adds to `--json-out`.
#[derive(serde::Serialize)]
struct Int8Summary {
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    /// Photos on which int8 and fp32 give the same answer, as a fraction.
    agreement: f64,
    calibration_photos: u16,
}

/// Everything `--json-out` writes; `accuracy` only when some photos had labels.
#[derive(serde::Serialize)]
struct Output<'a> {
    predictions: &'a [Prediction],
    skipped: usize,
    weights: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    int8: Option<Int8Summary>,
}

/// The photos behind `paths`: a file is one photo; a folder laid out like `PetImages` gives
/// its photos with their labels; any other folder gives the files in it, unlabelled.
fn collect(paths: &[PathBuf]) -> Result<Vec<Item>, Box<dyn std::error::Error>> {
    let mut items = Vec::new();
    for path in paths {
        if path.is_file() {
            items.push(Item { path: path.clone(), label: None, cached: None });
        } else if path.is_dir() {
            match find_pet_images(path) {
                Ok(root) => {
                    for (label, class) in CLASSES.iter().enumerate() {
                        items.extend(files_in(&root.join(class))?.into_iter().map(|p| Item {
                            path: p,
                            label: Some(label as u8),
                            cached: None,
                        }));
                    }
                }
                Err(_) => {
                    items.extend(files_in(path)?.into_iter().map(|p| Item { path: p, label: None, cached: None }))
                }
            }
        } else {
            return Err(format!("{}: no such file or folder", path.display()).into());
        }
    }
    Ok(items)
}

/// The files in `dir`, sorted by name.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
