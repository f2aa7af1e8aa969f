//! Chapter 11: the race between the compiler's AVX-512 convolution tile and the one written
//! with `asm!`. Each record is a convolution forward pass of the cat/dog network that takes the
//! 6 x 4 tile (64 or more output channels), run with [`Kernels::avx512_asm`] and named
//! `<direct name>_asm` (`conv2_forward_asm` beside `conv2_forward`); [`asm_markdown`] sets each
//! beside the AVX-512 record of its direct op in the same run.

use super::ops::{LayerShape, Op, OpKind, catdog_layers};
use super::report::{Measurement, Report, fmt_rate};
use super::timing::{TimingSettings, time_calls};
use crate::kernels::{Isa, IsaError, Kernels};
use std::fmt::Write;

/// The suffix of the asm records' names.
pub const ASM_SUFFIX: &str = "_asm";

/// The forward passes of the convolutions whose interior tiles are the 6 x 4 one.
pub fn asm_ops() -> Vec<Op> {
    catdog_layers()
        .into_iter()
        .filter_map(|layer| match layer.shape {
            LayerShape::Conv2d(s) if s.c_out.div_ceil(16) >= 4 => {
                Some(Op::new(format!("{}_forward{ASM_SUFFIX}", layer.name), layer.name, OpKind::Conv2dForward(s)))
            }
            _ => None,
        })
        .collect()
}

/// Times `op` with the asm table, as [`super::measure_op`] does with the AVX-512 one.
pub fn measure_asm_op(op: &Op, settings: &TimingSettings) -> Result<Measurement, IsaError> {
    let k = Kernels::avx512_asm()?;
    let mut workload = op.workload();
    let timing = time_calls(settings, || workload.run(k));
    Ok(Measurement { op: op.name.clone(), isa: Isa::Avx512, flops: op.flops(), images: op.images(), timing })
}

// ANCHOR: asm_markdown
/// The asm records of `report` beside the AVX-512 records of their direct ops: GFLOP/s of each
/// and the asm tile's speed-up (above 1: the hand-written loop is faster). Empty if the report
/// has no asm record.
pub fn asm_markdown(report: &Report) -> String {
    let mut md = String::new();
    for r in report.records.iter().filter(|r| r.op.ends_with(ASM_SUFFIX)) {
        let direct_name = r.op.trim_end_matches(ASM_SUFFIX);
        let Some(direct) = report.records.iter().find(|d| d.op == direct_name && d.isa == Isa::Avx512) else {
            continue;
        };
        if md.is_empty() {
            md.push_str("\n| op | compiler's tile GFLOP/s | asm tile GFLOP/s | asm vs compiler |\n");
            md.push_str("| --- | ---: | ---: | ---: |\n");
        }
        let _ = writeln!(
            md,
            "| {direct_name} | {} | {} | {:.3}x |",
            fmt_rate(direct.gflops),
            fmt_rate(r.gflops),
            direct.seconds / r.seconds
        );
    }
    md
}
// ANCHOR_END: asm_markdown
