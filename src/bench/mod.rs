//! Chapters 4-6: measuring the kernels. What to time (the layers of both networks at their
//! training batch sizes, with FLOP counts worked out from the shapes), how to time it on a
//! shared machine, and how to turn the timings into the tables of the book.
//!
//! `benches/kernels.rs` and `benches/train_step.rs` (criterion) and `examples/bench_report.rs`
//! (the tables, the JSON and the charts of the book) are built on this module.

#[cfg(feature = "ch11")]
pub mod asm;
mod bf16;
#[cfg(feature = "ch11")]
mod int8;
#[cfg(feature = "ch7")]
pub mod memory;
mod ops;
mod report;
#[cfg(feature = "ch7")]
pub mod roofline;
pub mod staircase;
mod timing;
mod winograd;

pub use bf16::{
    BF16_PEAK, BF16_SUFFIX, INFERENCE_CATDOG, bf16_markdown, bf16_ops, measure_bf16_inference, measure_bf16_op,
    measure_bf16_peak, measure_inference,
};
#[cfg(feature = "ch11")]
pub use int8::{
    INFERENCE_CATDOG_WINOGRAD, INT8_PEAK, INT8_SUFFIX, int8_markdown, measure_int8_inference, measure_int8_peak,
    measure_winograd_inference,
};
pub use ops::{
    CATDOG_BATCH, CATDOG_IMAGE, Layer, LayerShape, MNIST_BATCH, Model, Op, OpKind, Workload, catdog_layers, filter_ops,
    forward_flops, kernel_ops, mnist_layers, report_ops, training_flops,
};
pub use report::{
    Machine, Measurement, Peak, Record, Report, RooflinePoint, cpu_model, fmt_percent, fmt_rate, fmt_seconds,
    isa_label, measure_op, measure_peak,
};
pub use timing::{
    MachineCpu, Noise, Timing, TimingSettings, min_median_max, parse_schedstat, thread_cpu_seconds, time_calls,
    time_fastest_call,
};
pub use winograd::{WINOGRAD_SUFFIX, measure_winograd_op, winograd_markdown, winograd_ops, winograd_product_flops};
