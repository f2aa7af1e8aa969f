//! Draws what a trained network has learned: the 32 filters of its first convolution, and the
//! feature maps its three convolutions make of one photo.
//!
//! ```text
//! cargo run --release --example pictures -- --weights runs/catdog.safetensors --photo my_dog.jpg --out-dir runs/pictures
//! ```
#[path = "common/cli.rs"]
mod cli;

use clap::Parser;
use simd_cnn::checkpoint::load_weights;
use simd_cnn::kernels::Kernels;
use simd_cnn::trainer::{conv1_filters, feature_maps, photo_input, save_png};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "Draw conv1's filters and the feature maps of one photo as PNG")]
struct Args {
    #[arg(long)]
    weights: PathBuf,
    #[arg(long)]
    photo: PathBuf,
    #[arg(long, default_value = "runs/pictures")]
    out_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = match cli::parse::<Args>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    cli::finish(run(&args).map(|()| ExitCode::SUCCESS))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut model = load_weights(&args.weights, None)?;
    let x = photo_input(&model, &args.photo)?; // at the network's size, square or not
    std::fs::create_dir_all(&args.out_dir).map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    let write = |name: &str, result: std::io::Result<()>| -> Result<(), Box<dyn std::error::Error>> {
        let path = args.out_dir.join(name);
        result.map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
        Ok(())
    };
    write("conv1_filters.png", save_png(&conv1_filters(&model, 12), &args.out_dir.join("conv1_filters.png")))?;
    let maps = feature_maps(&mut model, Kernels::best()?, &x);
    for (i, map) in maps.iter().enumerate() {
        let name = format!("conv{}_maps.png", i + 1);
        write(&name, save_png(map, &args.out_dir.join(&name)))?;
    }
    Ok(())
}
