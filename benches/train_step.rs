//! Chapters 4-6: a whole training step (forward, loss, backward, SGD update) of each network,
//! once per instruction set this build and CPU can run.
//!
//! ```text
//! cargo bench --bench train_step
//! ```
//!
//! The throughput is in images, so criterion's `elem/s` reads as images per second. The FLOPs
//! of one image, counted from the layer shapes (a multiply-add is two; pooling, ReLU, the loss
//! and the update do no multiply-adds and are left out):
//!
//! - cat/dog CNN, 128x128 RGB, batch 16: 987.8 MFLOP per image (forward 338.7 MFLOP);
//! - MNIST MLP 784-128-64-10, batch 32: 0.4544 MFLOP per image (forward 0.2184 MFLOP).
//!
//! So images/s times MFLOP per image is the MFLOP/s of the whole step, which can be set
//! against the machine's peak (`cargo run --release --example bench_report` does that).
//!
//! From chapter 8 on, `train_step_threads` times the CNN's step as the trainer runs it, on the
//! thread pool with 1, 2, ... threads up to the machine's count, with the best kernel table:
//! the images converted from bytes, forward, backward, SGD update. Chapter 8 compares these
//! with PyTorch's (`cargo bench --bench train_step -- threads`).

mod common;

use common::{available_kernels, criterion, prepare};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_cnn::bench::{Model, Op, OpKind, training_flops};

// ANCHOR: train_step_bench
fn train_step(c: &mut Criterion) {
    let isas = available_kernels();
    for model in [Model::CatDog, Model::Mnist] {
        // One group per op, named as bench_report names it: `-- train_step_catdog` selects it.
        let op = Op::new(format!("train_step_{}", model.name()), model.name(), OpKind::TrainStep(model));
        let mut group = c.benchmark_group(op.name.clone());
        let per_image = training_flops(&model.layers()) as f64 / model.batch() as f64;
        eprintln!("{}: {:.4} MFLOP per training image, batch {}", model.name(), per_image * 1e-6, model.batch());
        group.throughput(Throughput::Elements(model.batch() as u64));
        for &k in &isas {
            let mut workload = prepare(&mut group, &op, k);
            group.bench_function(BenchmarkId::from_parameter(k.isa().name()), |b| b.iter(|| workload.run(k)));
        }
        group.finish();
    }
}
// ANCHOR_END: train_step_bench

/// From chapter 8 on: the step on the thread pool. (A chapter gates a whole module, never a
/// function: before chapter 8 the module holds an empty benchmark.)
#[cfg(feature = "ch8")]
mod threads {
    use super::*;

    // ANCHOR: train_step_threads
    pub fn train_step_threads(c: &mut Criterion) {
        use simd_cnn::model::CatDogCnn;
        use simd_cnn::parallel::DataParallel;
        use simd_cnn::train::Sgd;

        let k = *available_kernels().last().expect("the scalar table is always available");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (batch, side) = (Model::CatDog.batch(), 128);
        // A batch as the loader hands it over: bytes, converted to [0, 1] in every step.
        let bytes: Vec<u8> = (0..batch * side * side * 3).map(|i| (i * 7919 % 251) as u8).collect();
        let labels: Vec<f32> = (0..batch).map(|i| (i % 2) as f32).collect();
        let mut x = vec![0.0f32; bytes.len()];
        let mut group = c.benchmark_group("train_step_threads");
        group.throughput(Throughput::Elements(batch as u64));
        group.sampling_mode(criterion::SamplingMode::Flat).sample_size(10);
        for threads in 1..=cpus {
            let mut pool = DataParallel::new(threads).expect("at least one thread");
            let mut net = CatDogCnn::new(side, side, 0);
            let mut opt = Sgd::new(0.01, 0.0);
            let id = BenchmarkId::new(k.isa().name(), format!("catdog/{threads}"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    for (v, &byte) in x.iter_mut().zip(&bytes) {
                        *v = f32::from(byte) / 255.0;
                    }
                    pool.forward_backward(&mut net, k, &x, &labels);
                    pool.sgd_step(&mut opt, k, &mut net.params_mut());
                })
            });
        }
        group.finish();
    }
    // ANCHOR_END: train_step_threads
}

#[cfg(not(feature = "ch8"))]
mod threads {
    pub fn train_step_threads(_: &mut criterion::Criterion) {}
}
use threads::train_step_threads;

criterion_group! {
    name = benches;
    config = criterion();
    targets = train_step, train_step_threads
}
criterion_main!(benches);
