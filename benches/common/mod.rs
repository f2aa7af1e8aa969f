//! What both benchmark files need: the instruction sets to run, and criterion settings that
//! suit each op, from a few microseconds (the MLP's last layer) to seconds (a scalar training
//! step of the CNN).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use simd_cnn::bench::{Op, Workload};
use simd_cnn::kernels::{Isa, Kernels};
use std::time::{Duration, Instant};

/// Criterion without its HTML report, whose charts take longer to draw than most of these
/// benchmarks take to run (`cargo bench -- --plotting-backend plotters` brings them back;
/// `examples/bench_report.rs` draws the charts of the book).
pub fn criterion() -> Criterion {
    Criterion::default().without_plots()
}

/// The kernel tables of every instruction set available here, and a line on stderr for each
/// one that is not (not compiled in, not supported by this CPU, or above `SIMD_CNN_MAX_ISA`).
pub fn available_kernels() -> Vec<&'static Kernels> {
    Isa::ALL
        .into_iter()
        .filter_map(|isa| match Kernels::for_isa(isa) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("skipping {isa}: {e}");
                None
            }
        })
        .collect()
}

/// Whether criterion is measuring (`cargo bench` passes `--bench`) rather than running each
/// benchmark once as a test (`cargo test --benches`, or `cargo bench -- --test`).
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

// ANCHOR: prepare
/// The buffers of `op`, and the group's settings for its next benchmark. When measuring, one
/// untimed call (which also brings the buffers into the caches) tells how long a call takes:
///
/// - up to 2 ms: 30 samples in 1 s, criterion's usual linear sampling (1, 2, 3, ... calls per
///   sample, 465 calls in all);
/// - longer (the convolutions at batch 16, the training steps): 10 samples of 2 calls each
///   (`SamplingMode::Flat`). With a single call per sample criterion warns that it cannot fit
///   the samples in the time, so the time is set to 1.5 calls per sample, which it rounds up.
pub fn prepare(group: &mut BenchmarkGroup<'_, WallTime>, op: &Op, k: &Kernels) -> Workload {
    let mut workload = op.workload();
    if measuring() {
        let start = Instant::now();
        workload.run(k);
        let per_call = start.elapsed();
        if per_call <= Duration::from_millis(2) {
            group.sampling_mode(SamplingMode::Auto).sample_size(30);
            group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        } else {
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
            let time = per_call.mul_f64(1.5 * 10.0).max(Duration::from_secs(1));
            group.warm_up_time(Duration::from_millis(10)).measurement_time(time);
        }
    }
    workload
}
// ANCHOR_END: prepare
