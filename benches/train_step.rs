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

mod common;

use common::{available_kernels, criterion, prepare};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_cnn::bench::{Model, Op, OpKind, training_flops};

// ANCHOR: train_step_bench
fn train_step(c: &mut Criterion) {
    let isas = available_kernels();
    let mut group = c.benchmark_group("train_step");
    for model in [Model::CatDog, Model::Mnist] {
        let op = Op::new(format!("train_step_{}", model.name()), model.name(), OpKind::TrainStep(model));
        let per_image = training_flops(&model.layers()) as f64 / model.batch() as f64;
        eprintln!("{}: {:.4} MFLOP per training image, batch {}", model.name(), per_image * 1e-6, model.batch());
        group.throughput(Throughput::Elements(model.batch() as u64));
        for &k in &isas {
            let mut workload = prepare(&mut group, &op, k);
            group.bench_function(BenchmarkId::new(k.isa().name(), model.name()), |b| b.iter(|| workload.run(k)));
        }
    }
    group.finish();
}
// ANCHOR_END: train_step_bench

criterion_group! {
    name = benches;
    config = criterion();
    targets = train_step
}
criterion_main!(benches);
