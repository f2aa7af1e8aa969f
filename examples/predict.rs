//! Classifies photos as cat or dog with a trained network.
//!
//! ```text
//! cargo run --release --example predict -- --weights runs/catdog.safetensors my_cat.jpg
//! cargo run --release --example predict -- --weights runs/catdog.safetensors photos/          # every image in it
//! cargo run --release --example predict -- --weights runs/catdog.safetensors data/catdog --json-out p.json
//! ```
//!
//! A folder laid out like `PetImages` (`Cat/` and `Dog/` inside it, or inside its `PetImages/`)
//! gives each photo its label, and the accuracy. The network's output is the probability of
//! "dog". Files that are not photos are reported and skipped.
#[path = "common/cli.rs"]
mod cli;

use clap::Parser;
use simd_cnn::checkpoint::load_weights;
use simd_cnn::data::catdog::{CLASSES, DOG, decode_file_to, find_pet_images, to_unit_f32};
use simd_cnn::files::{check_output, write_atomic};
use simd_cnn::kernels::{Isa, Kernels};
use simd_cnn::parallel::DataParallel;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "Classify photos as cat or dog")]
struct Args {
    /// A checkpoint written by train_catdog (or PyTorch's state_dict of the same network)
    #[arg(long)]
    weights: PathBuf,
    /// Photos, or folders of photos
    #[arg(required = true)]
    paths: Vec<PathBuf>,
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
    let items = collect(&args.paths)?;
    if items.is_empty() {
        return Err("no photos found in the paths given".into());
    }

    let mut predictions = Vec::new();
    let (mut right, mut labelled, mut skipped) = (0usize, 0usize, 0usize);
    // ANCHOR: predict
    for chunk in items.chunks(64) {
        let mut x = Vec::with_capacity(chunk.len() * model.image_len());
        let mut kept = Vec::new();
        for item in chunk {
            match decode_file_to(&item.path, w as u32, h as u32) {
                Ok(pixels) => {
                    let start = x.len();
                    x.resize(start + pixels.len(), 0.0);
                    to_unit_f32(&pixels, &mut x[start..]);
                    kept.push(item);
                }
                Err(reason) => {
                    skipped += 1;
                    eprintln!("skipped {}: {}", item.path.display(), reason.describe());
                }
            }
        }
        if kept.is_empty() {
            continue;
        }
        let probabilities = par.predict_proba(&mut model, k, &x);
        for (item, &p) in kept.iter().zip(&probabilities) {
            let predicted = u8::from(p > 0.5);
            if let Some(label) = item.label {
                labelled += 1;
                right += usize::from(label == predicted);
            }
            if !args.quiet {
                let confidence = if predicted == DOG { p } else { 1.0 - p };
                println!(
                    "{}: {} ({:.1} %)",
                    item.path.display(),
                    CLASSES[predicted as usize].to_lowercase(),
                    100.0 * confidence
                );
            }
            predictions.push(Prediction {
                path: item.path.clone(),
                dog_probability: p,
                predicted: CLASSES[predicted as usize].to_lowercase(),
                label: item.label.map(|l| CLASSES[l as usize].to_lowercase()),
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
    if let Some(path) = &args.json_out {
        let out = Output { predictions: &predictions, skipped, weights: &args.weights, accuracy };
        write_atomic(path, serde_json::to_string_pretty(&out)?.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// One photo's answer, as `--json-out` writes it.
#[derive(serde::Serialize)]
struct Prediction {
    path: PathBuf,
    dog_probability: f32,
    predicted: String,
    label: Option<String>,
}

/// Everything `--json-out` writes; `accuracy` only when some photos had labels.
#[derive(serde::Serialize)]
struct Output<'a> {
    predictions: &'a [Prediction],
    skipped: usize,
    weights: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
}

/// The photos behind `paths`: a file is one photo; a folder laid out like `PetImages` gives
/// its photos with their labels; any other folder gives the files in it, unlabelled.
fn collect(paths: &[PathBuf]) -> Result<Vec<Item>, Box<dyn std::error::Error>> {
    let mut items = Vec::new();
    for path in paths {
        if path.is_file() {
            items.push(Item { path: path.clone(), label: None });
        } else if path.is_dir() {
            match find_pet_images(path) {
                Ok(root) => {
                    for (label, class) in CLASSES.iter().enumerate() {
                        items.extend(
                            files_in(&root.join(class))?
                                .into_iter()
                                .map(|p| Item { path: p, label: Some(label as u8) }),
                        );
                    }
                }
                Err(_) => items.extend(files_in(path)?.into_iter().map(|p| Item { path: p, label: None })),
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
