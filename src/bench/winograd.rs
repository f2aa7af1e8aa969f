//! Chapter 10: the Winograd records of the report. Each is the op of the direct report with the
//! Winograd kernel table (`conv2_forward_winograd` is `conv2_forward`, `train_step_catdog_winograd`
//! is `train_step_catdog`), and its FLOPs are the direct convolution's: its GFLOP/s are
//! *effective*, the rate a direct convolution would need to finish in the same time, so a figure
//! above the FMA peak means fewer multiplications. Beside them, [`winograd_markdown`] shows the
//! rate of the multiply-adds actually done in the products and the speed-up over the direct op
//! of the same run.

use super::ops::{LayerShape, Model, Op, OpKind, catdog_layers};
use super::report::{Measurement, Report, fmt_rate, isa_label};
use super::timing::{TimingSettings, time_calls};
use crate::kernels::{Conv2dShape, ConvAlgorithm, ConvAlgorithmError, Isa, Kernels, winograd_pays};
use std::fmt::Write;

/// The suffix of the Winograd records' names.
pub const WINOGRAD_SUFFIX: &str = "_winograd";

// ANCHOR: winograd_ops
/// The forward and backward-input passes of the convolutions the Winograd table takes (conv2 and
/// conv3), and the whole cat/dog training step, each named `<direct name>_winograd`; none in a
/// build without Winograd kernels (before chapter 10).
pub fn winograd_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    if !ConvAlgorithm::Winograd.is_compiled() {
        return ops;
    }
    for layer in catdog_layers() {
        let LayerShape::Conv2d(s) = layer.shape else { continue };
        let op =
            |direction: &str, kind| Op::new(format!("{}_{direction}{WINOGRAD_SUFFIX}", layer.name), layer.name, kind);
        if winograd_pays(s.c_in) {
            ops.push(op("forward", OpKind::Conv2dForward(s)));
        }
        if layer.grad_input && winograd_pays(s.c_out) {
            ops.push(op("backward_input", OpKind::Conv2dBackwardInput(s)));
        }
    }
    ops.push(Op::new(format!("train_step_catdog{WINOGRAD_SUFFIX}"), "catdog", OpKind::TrainStep(Model::CatDog)));
    ops
}
// ANCHOR_END: winograd_ops

/// Times `op` with the Winograd kernel table of `isa`, as [`super::measure_op`] does with the
/// direct one.
pub fn measure_winograd_op(op: &Op, isa: Isa, settings: &TimingSettings) -> Result<Measurement, ConvAlgorithmError> {
    let k = Kernels::for_isa_with(isa, ConvAlgorithm::Winograd)?;
    let mut workload = op.workload();
    let timing = time_calls(settings, || workload.run(k));
    Ok(Measurement { op: op.name.clone(), isa, flops: op.flops(), images: op.images(), timing })
}

/// FLOPs of the products F(4x4, 3x3) does for one convolution: 36 multiply-adds per 4x4 tile and
/// pair of channels, where the direct convolution does 144.
pub fn winograd_product_flops(s: &Conv2dShape) -> u64 {
    let tiles = s.n * s.h.div_ceil(4) * s.w.div_ceil(4);
    2 * (tiles * 36 * s.c_in * s.c_out) as u64
}

/// The FLOPs the Winograd table actually spends on products in `op`: those of the convolutions it
/// takes Winograd for, the direct FLOPs for everything else.
fn actual_flops(op: &OpKind) -> u64 {
    match *op {
        OpKind::Conv2dForward(s) | OpKind::Conv2dBackwardInput(s) => winograd_product_flops(&s),
        OpKind::TrainStep(Model::CatDog) => catdog_layers()
            .iter()
            .map(|layer| match layer.shape {
                LayerShape::Conv2d(s) => {
                    let pass = |c_in| if winograd_pays(c_in) { winograd_product_flops(&s) } else { s.flops() };
                    pass(s.c_in) + s.flops() + if layer.grad_input { pass(s.c_out) } else { 0 }
                }
                _ => layer.training_flops(),
            })
            .sum(),
        _ => op.flops(),
    }
}

// ANCHOR: winograd_markdown
/// The Winograd records of `report` beside their direct ops: effective GFLOP/s (direct FLOPs over
/// the time), the share of the instruction set's peak that makes, the GFLOP/s of the products
/// actually done, and the speed-up over the direct op of the same instruction set in this run.
/// Empty if the report has no Winograd record.
pub fn winograd_markdown(report: &Report) -> String {
    let mut md = String::new();
    let ops = winograd_ops();
    let peak = |isa: Isa| report.peaks.iter().find(|p| p.isa == isa).map(|p| p.gflops);
    for r in report.records.iter().filter(|r| r.op.ends_with(WINOGRAD_SUFFIX)) {
        let Some(op) = ops.iter().find(|op| op.name == r.op) else { continue };
        if md.is_empty() {
            md.push_str("\n| op | ISA | effective GFLOP/s | % of ISA peak | products' GFLOP/s | vs direct |\n");
            md.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
        }
        let direct_name = r.op.trim_end_matches(WINOGRAD_SUFFIX);
        let direct = report.records.iter().find(|d| d.op == direct_name && d.isa == r.isa);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.op,
            isa_label(r.isa),
            fmt_rate(r.gflops),
            peak(r.isa).map_or("–".to_string(), |p| format!("{:.0} %", 100.0 * r.gflops / p)),
            fmt_rate(actual_flops(&op.kind) as f64 / r.seconds * 1e-9),
            direct.map_or("–".to_string(), |d| format!("{:.2}x", d.seconds / r.seconds)),
        );
    }
    md
}
// ANCHOR_END: winograd_markdown
