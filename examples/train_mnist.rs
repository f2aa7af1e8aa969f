//! Trains the MNIST MLP (784-128-64-10) with SGD and reports test accuracy.
//!
//! ```text
//! cargo run --release --example train_mnist -- --data ../shared/data/mnist --json-out m.json
//! ```
use clap::Parser;
use rand::seq::SliceRandom;
use simd_cnn::data::mnist::{IMAGE_LEN, Mnist};
use simd_cnn::kernels::{Isa, Kernels};
use simd_cnn::model::Mlp;
use simd_cnn::tensor::init::rng;
use simd_cnn::train::Sgd;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    isa: Option<Isa>,
    #[arg(long)]
    json_out: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = args.data.clone().unwrap_or_else(|| simd_cnn::data::default_dir("mnist"));
    let data = Mnist::load(&dir)?;
    let k = match args.isa {
        Some(isa) => Kernels::for_isa(isa)?,
        None => Kernels::best()?,
    };
    let mut model = Mlp::new(args.seed);
    let mut opt = Sgd::new(args.lr, 0.0);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let mut shuffle = rng(args.seed ^ 0x5eed);
    let bs = args.batch_size;
    let mut x = vec![0f32; bs * IMAGE_LEN];
    let mut y = vec![0u8; bs];
    let mut train_time = 0.0;
    for epoch in 1..=args.epochs {
        order.shuffle(&mut shuffle);
        let t0 = Instant::now();
        let (mut loss, mut correct, mut seen) = (0.0f64, 0, 0);
        for idx in order.chunks_exact(bs) {
            data.train.batch(idx, &mut x, &mut y);
            let s = model.forward_backward(k, &x, &y);
            opt.step(k, &mut model.params_mut());
            loss += s.loss as f64 * bs as f64;
            correct += s.correct;
            seen += bs;
        }
        let dt = t0.elapsed().as_secs_f64();
        train_time += dt;
        let acc = evaluate(&mut model, k, &data);
        println!(
            "epoch {epoch}: loss {:.4} train acc {:.4} test acc {acc:.4} {:.0} img/s",
            loss / seen as f64,
            correct as f64 / seen as f64,
            seen as f64 / dt
        );
    }
    let _ = train_time;
    Ok(())
}

fn evaluate(model: &mut Mlp, k: &Kernels, data: &Mnist) -> f64 {
    let n = data.test.len();
    let idx: Vec<usize> = (0..n).collect();
    let mut correct = 0;
    for chunk in idx.chunks(1000) {
        let mut x = vec![0f32; chunk.len() * IMAGE_LEN];
        let mut y = vec![0u8; chunk.len()];
        data.test.batch(chunk, &mut x, &mut y);
        correct += model.predict(k, &x).iter().zip(&y).filter(|(a, b)| a == b).count();
    }
    correct as f64 / n as f64
}
