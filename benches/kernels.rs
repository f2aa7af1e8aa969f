//! Chapters 4-6: every kernel of the two networks, on the layer shapes of a real training step
//! (the cat/dog CNN at 16 images of 128x128, the MNIST MLP at 32 images), once per instruction
//! set this build and CPU can run.
//!
//! ```text
//! cargo bench --bench kernels                        # everything, about 5 minutes on 2 cores
//! cargo bench --bench kernels -- conv2d_forward/avx2 # one group, one instruction set
//! cargo test --benches                               # each benchmark once, as a test
//! cargo bench -- --plotting-backend plotters         # with criterion's HTML report
//! ```
//!
//! One criterion group per kernel, one `BenchmarkId` per (instruction set, layer), and the
//! throughput in FLOPs, so that criterion prints `Gelem/s`, which here means GFLOP/s. Two
//! exceptions: max-pooling counts its comparisons (3 per output), and the element-wise ops
//! (ReLU, the SGD updates) count one per element. Those ops are memory-bound: their figure says
//! how fast the data streams through, not how fast the core computes.
//! `SIMD_CNN_MAX_ISA=avx2 cargo bench` leaves out AVX-512.

mod common;

use common::{available_kernels, criterion, prepare};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_cnn::bench::{Op, OpKind, kernel_ops};
use simd_cnn::kernels::Kernels;

// ANCHOR: bench_group
/// One criterion group: every op in `ops` with every instruction set in `isas`.
fn bench_group(c: &mut Criterion, name: &str, ops: &[&Op], isas: &[&'static Kernels]) {
    let mut group = c.benchmark_group(name);
    for op in ops {
        group.throughput(Throughput::Elements(op.flops()));
        for &k in isas {
            let mut workload = prepare(&mut group, op, k);
            let id = match op.kind {
                OpKind::Axpy(_) | OpKind::SgdMomentumUpdate(_) => BenchmarkId::new(k.isa().name(), &op.name),
                _ => BenchmarkId::new(k.isa().name(), &op.layer),
            };
            group.bench_function(id, |b| b.iter(|| workload.run(k)));
        }
    }
    group.finish();
}
// ANCHOR_END: bench_group

/// The groups, in the order of a training step, and the kernels each one holds.
const GROUPS: [(&str, &[&str]); 11] = [
    ("conv2d_forward", &["conv2d_forward"]),
    ("conv2d_backward_input", &["conv2d_backward_input"]),
    ("conv2d_backward_weight", &["conv2d_backward_weight"]),
    ("max_pool2d_forward", &["max_pool2d_forward"]),
    ("max_pool2d_backward", &["max_pool2d_backward"]),
    ("linear_forward", &["linear_forward"]),
    ("linear_backward_input", &["linear_backward_input"]),
    ("linear_backward_weight", &["linear_backward_weight"]),
    ("relu_forward", &["relu_forward"]),
    ("relu_backward", &["relu_backward"]),
    ("sgd_update", &["axpy", "sgd_momentum_update"]),
];

fn kernels(c: &mut Criterion) {
    let isas = available_kernels();
    let ops = kernel_ops();
    for (group, kernels) in GROUPS {
        let members: Vec<&Op> = ops.iter().filter(|op| kernels.contains(&op.kind.kernel_name())).collect();
        bench_group(c, group, &members, &isas);
    }
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = kernels
}
criterion_main!(benches);
