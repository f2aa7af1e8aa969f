//! Chapters 4-6: every kernel of the two networks, on the layer shapes of a real training step
//! (the cat/dog CNN at 16 images of 128x128, the MNIST MLP at 32 images), once per instruction
//! set this build and CPU can run.
//!
//! ```text
//! cargo bench --bench kernels                           # everything, about 5 minutes on 2 cores
//! cargo bench --bench kernels -- conv2_forward          # one op, every instruction set
//! cargo bench --bench kernels -- '^fc1_backward.*/avx2' # a regex: fc1's two backward kernels, AVX2
//! cargo test --benches                                  # each benchmark once, as a test
//! cargo bench -- --plotting-backend plotters            # with criterion's HTML report
//! ```
//!
//! One criterion group per op, named as `bench_report` names it (`conv2_forward`,
//! `mlp_fc1_backward_weight`; a linear layer's backward pass is two ops here,
//! `fc1_backward_input` and `fc1_backward_weight`, where the report times them together as
//! `fc1_backward`), one benchmark per instruction set in it (`conv2_forward/avx512`), and the
//! throughput in FLOPs, so that criterion prints `Gelem/s`, which here means GFLOP/s. Two
//! exceptions: max-pooling counts its comparisons (3 per output), and the element-wise ops
//! (ReLU, the SGD updates) count one per element. Those ops are memory-bound: their figure says
//! how fast the data streams through, not how fast the core computes.
//! `SIMD_CNN_MAX_ISA=avx2 cargo bench` leaves out AVX-512.

mod common;

use common::{available_kernels, criterion, prepare};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_cnn::bench::{Op, kernel_ops};
use simd_cnn::kernels::Kernels;

// ANCHOR: bench_group
/// One criterion group per op, named after it, with one benchmark per instruction set in
/// `isas`: `conv2_forward/avx512`, so that the op names of `bench_report` select them.
fn bench_op(c: &mut Criterion, op: &Op, isas: &[&'static Kernels]) {
    let mut group = c.benchmark_group(&op.name);
    group.throughput(Throughput::Elements(op.flops()));
    for &k in isas {
        let mut workload = prepare(&mut group, op, k);
        group.bench_function(BenchmarkId::from_parameter(k.isa().name()), |b| b.iter(|| workload.run(k)));
    }
    group.finish();
}
// ANCHOR_END: bench_group

/// The kernels in the order of a training step: every op of one kernel, then the next kernel.
const KERNELS: [&str; 12] = [
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "linear_forward",
    "linear_backward_input",
    "linear_backward_weight",
    "relu_forward",
    "relu_backward",
    "axpy",
    "sgd_momentum_update",
];

fn kernels(c: &mut Criterion) {
    let isas = available_kernels();
    let ops = kernel_ops();
    for kernel in KERNELS {
        for op in ops.iter().filter(|op| op.kind.kernel_name() == kernel) {
            bench_op(c, op, &isas);
        }
    }
    // A kernel left out of the list above would go unmeasured without a word.
    if let Some(op) = ops.iter().find(|op| !KERNELS.contains(&op.kind.kernel_name())) {
        panic!("{} runs kernel {}, which benches/kernels.rs does not list", op.name, op.kind.kernel_name());
    }
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = kernels
}
criterion_main!(benches);
