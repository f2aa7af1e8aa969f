//! Chapter 11: the bf16 records of the report. Each is an op of the fp32 report run with the
//! bf16 kernel table (`conv2_forward_bf16` is `conv2_forward`, `train_step_catdog_bf16` is
//! `train_step_catdog`), with the same FLOP count; `peak_bf16` is the peak loop of
//! `vdpbf16ps`; `inference_catdog` is a forward pass of the cat/dog network alone, in fp32, so
//! that images per second of prediction stand beside those of training.

use super::ops::{CATDOG_BATCH, CATDOG_IMAGE, LayerShape, Model, Op, OpKind, catdog_layers, forward_flops};
use super::report::{Measurement, Report, fmt_rate};
use super::timing::{TimingSettings, time_calls, time_fastest_call};
use crate::kernels::{ConvAlgorithm, Isa, Kernels, Precision, PrecisionError};
use crate::model::CatDogCnn;
use crate::tensor::init::{rng, uniform};
use std::fmt::Write;
use std::hint::black_box;

/// The suffix of the bf16 records' names.
pub const BF16_SUFFIX: &str = "_bf16";

/// The name of the bf16 peak record.
pub const BF16_PEAK: &str = "peak_bf16";

/// The name of the forward-only record.
pub const INFERENCE_CATDOG: &str = "inference_catdog";

const PEAK_ITERATIONS: u64 = 1 << 20;

// ANCHOR: bf16_ops
/// The passes of the three convolutions and the whole cat/dog training step, each named
/// `<fp32 name>_bf16`; none in a build without the bf16 table.
pub fn bf16_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    if !Precision::Bf16.is_compiled() {
        return ops;
    }
    for layer in catdog_layers() {
        let LayerShape::Conv2d(s) = layer.shape else { continue };
        let op = |direction: &str, kind| Op::new(format!("{}_{direction}{BF16_SUFFIX}", layer.name), layer.name, kind);
        ops.push(op("forward", OpKind::Conv2dForward(s)));
        if layer.grad_input {
            ops.push(op("backward_input", OpKind::Conv2dBackwardInput(s)));
        }
        ops.push(op("backward_weight", OpKind::Conv2dBackwardWeight(s)));
    }
    ops.push(Op::new(format!("train_step_catdog{BF16_SUFFIX}"), "catdog", OpKind::TrainStep(Model::CatDog)));
    ops
}
// ANCHOR_END: bf16_ops

/// The bf16 table, or why it cannot run here.
fn bf16_table() -> Result<&'static Kernels, PrecisionError> {
    Kernels::for_isa_precision(Isa::Avx512, ConvAlgorithm::Direct, Precision::Bf16)
}

/// Times `op` with the bf16 kernel table, as [`super::measure_op`] does with the fp32 one.
pub fn measure_bf16_op(op: &Op, settings: &TimingSettings) -> Result<Measurement, PrecisionError> {
    let k = bf16_table()?;
    let mut workload = op.workload();
    let timing = time_calls(settings, || workload.run(k));
    Ok(Measurement { op: op.name.clone(), isa: Isa::Avx512, flops: op.flops(), images: op.images(), timing })
}

// ANCHOR: measure_bf16_peak
/// The peak loop of `vdpbf16ps` (12 independent chains, 64 FLOPs per instruction: 16 lanes, two
/// products each, a multiply and an add per product), timed like the fp32 peaks.
pub fn measure_bf16_peak(settings: &TimingSettings) -> Result<Measurement, PrecisionError> {
    let k = bf16_table()?;
    let (flops, _) = k.peak(PEAK_ITERATIONS, 1.0, 1.0);
    let timing = time_fastest_call(settings, || {
        black_box(k.peak(PEAK_ITERATIONS, black_box(1.0), black_box(1.0)));
    });
    Ok(Measurement { op: BF16_PEAK.to_string(), isa: Isa::Avx512, flops, images: None, timing })
}
// ANCHOR_END: measure_bf16_peak

// ANCHOR: measure_inference
/// A forward pass of the cat/dog network on a batch of 16 images with the table `k` (no loss,
/// no gradients): `inference_catdog`, or `inference_catdog_bf16` with the bf16 table.
pub fn measure_inference(k: &Kernels, settings: &TimingSettings) -> Measurement {
    let mut model = CatDogCnn::new(CATDOG_IMAGE, CATDOG_IMAGE, 0);
    let images = uniform(&[CATDOG_BATCH, CATDOG_IMAGE, CATDOG_IMAGE, 3], 0.0, 1.0, &mut rng(1));
    let timing = time_calls(settings, || {
        black_box(model.forward(k, images.as_slice()));
    });
    let op = match k.precision() {
        Precision::Fp32 => INFERENCE_CATDOG.to_string(),
        Precision::Bf16 => format!("{INFERENCE_CATDOG}{BF16_SUFFIX}"),
    };
    let flops = forward_flops(&catdog_layers());
    Measurement { op, isa: k.isa(), flops, images: Some(CATDOG_BATCH), timing }
}
// ANCHOR_END: measure_inference

/// [`measure_inference`] with the bf16 table.
pub fn measure_bf16_inference(settings: &TimingSettings) -> Result<Measurement, PrecisionError> {
    Ok(measure_inference(bf16_table()?, settings))
}

// ANCHOR: bf16_markdown
/// The bf16 records of `report` beside their fp32 ops of the same instruction set (AVX-512):
/// GFLOP/s, the share of the bf16 peak that makes, and the speed-up over fp32 in this run.
/// Empty if the report has no bf16 record.
pub fn bf16_markdown(report: &Report) -> String {
    let mut md = String::new();
    let peak = report.records.iter().find(|r| r.op == BF16_PEAK).map(|r| r.gflops);
    let fp32_peak = report.peaks.iter().find(|p| p.isa == Isa::Avx512).map(|p| p.gflops);
    for r in report.records.iter().filter(|r| r.op.ends_with(BF16_SUFFIX) || r.op == BF16_PEAK) {
        if md.is_empty() {
            md.push_str("\n| bf16 op | GFLOP/s | % of bf16 peak | vs fp32 |\n| --- | ---: | ---: | ---: |\n");
        }
        let fp32 = report.records.iter().find(|d| d.op == r.op.trim_end_matches(BF16_SUFFIX) && d.isa == r.isa);
        let speedup = match (r.op == BF16_PEAK, fp32_peak, fp32) {
            (true, Some(p), _) => format!("{:.2}x", r.gflops / p),
            (false, _, Some(d)) => format!("{:.2}x", d.seconds / r.seconds),
            _ => "–".to_string(),
        };
        let share = peak.map_or("–".to_string(), |p| format!("{:.0} %", 100.0 * r.gflops / p));
        let _ = writeln!(md, "| {} | {} | {share} | {speedup} |", r.op, fmt_rate(r.gflops));
    }
    md
}
// ANCHOR_END: bf16_markdown
