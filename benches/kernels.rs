//! Chapters 4-6: every kernel of the two networks, on the layer shapes of a real training step
//! (the cat/dog CNN at 16 images of 128x128, the MNIST MLP at 32 images), once per instruction
//! set this build and CPU can run.
//!
//! ```text
//! cargo bench --bench kernels                        # everything, about 6 minutes on 2 cores
//! cargo bench --bench kernels -- conv2d_forward/avx2 # one group, one instruction set
//! cargo test --benches                               # each benchmark once, as a test
//! ```
//!
//! One criterion group per kernel, one `BenchmarkId` per (instruction set, layer), and the
//! throughput in FLOPs, so that criterion prints `Gelem/s`, which here means GFLOP/s. Two
//! exceptions: max-pooling counts its comparisons (3 per output), and the element-wise ops
//! (ReLU, the SGD updates) count one per element. Those ops are memory-bound: their figure says
//! how fast the data streams through, not how fast the core computes.
//! `SIMD_CNN_MAX_ISA=avx2 cargo bench` leaves out AVX-512.

mod common;

use common::{available_kernels, measuring};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use simd_cnn::bench::{Op, OpKind, kernel_ops};
use simd_cnn::kernels::Kernels;
use std::time::{Duration, Instant};

/// How long to measure the benchmarks of a group.
#[derive(Clone, Copy)]
struct Budget {
    samples: usize,
    warm_up: Duration,
    measurement: Duration,
    /// For kernels that take up to a second per call (the convolutions at batch 16 in scalar
    /// code): every sample is a fixed number of calls, and the measurement time follows the
    /// time of one call so that each sample holds two of them.
    slow: bool,
}

const FAST: Budget =
    Budget { samples: 30, warm_up: Duration::from_millis(300), measurement: Duration::from_secs(1), slow: false };
const SLOW: Budget =
    Budget { samples: 10, warm_up: Duration::from_millis(10), measurement: Duration::from_secs(1), slow: true };

// ANCHOR: bench_group
/// One criterion group: every op in `ops` with every instruction set in `isas`.
fn bench_group(c: &mut Criterion, name: &str, ops: &[&Op], isas: &[&'static Kernels], budget: Budget) {
    let mut group = c.benchmark_group(name);
    group.sample_size(budget.samples).warm_up_time(budget.warm_up).measurement_time(budget.measurement);
    if budget.slow {
        group.sampling_mode(SamplingMode::Flat);
    }
    for op in ops {
        group.throughput(Throughput::Elements(op.flops()));
        for &k in isas {
            let mut workload = op.workload();
            if budget.slow && measuring() {
                // One untimed call sets the measurement time to 1.5 calls per sample, which
                // criterion rounds up to 2 (with a single call per sample it warns that it
                // cannot fit the samples in the time).
                let start = Instant::now();
                workload.run(k);
                let per_call = start.elapsed().as_secs_f64();
                let needed = Duration::from_secs_f64(1.5 * per_call * budget.samples as f64);
                group.measurement_time(budget.measurement.max(needed));
            }
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

/// The groups, in the order of a training step, and the budget of each.
const GROUPS: [(&str, &[&str], Budget); 11] = [
    ("conv2d_forward", &["conv2d_forward"], SLOW),
    ("conv2d_backward_input", &["conv2d_backward_input"], SLOW),
    ("conv2d_backward_weight", &["conv2d_backward_weight"], SLOW),
    ("max_pool2d_forward", &["max_pool2d_forward"], FAST),
    ("max_pool2d_backward", &["max_pool2d_backward"], FAST),
    ("linear_forward", &["linear_forward"], FAST),
    ("linear_backward_input", &["linear_backward_input"], FAST),
    ("linear_backward_weight", &["linear_backward_weight"], FAST),
    ("relu_forward", &["relu_forward"], FAST),
    ("relu_backward", &["relu_backward"], FAST),
    ("sgd_update", &["axpy", "sgd_momentum_update"], FAST),
];

fn kernels(c: &mut Criterion) {
    let isas = available_kernels();
    let ops = kernel_ops();
    for (group, kernels, budget) in GROUPS {
        let members: Vec<&Op> = ops.iter().filter(|op| kernels.contains(&op.kind.kernel_name())).collect();
        bench_group(c, group, &members, &isas, budget);
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
